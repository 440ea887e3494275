"""Provenance: what determines an artifact, as a fingerprint, so that reuse is decided by content, not by luck.

Every resumable or reused artifact of the suite (training, SFT and reward-model
checkpoints, on-policy shards, reference log-probs) is keyed by, or stamped
with, a fingerprint of everything that determines it: the content of its
inputs, its parameters and, where it matters, the version of the code that
computes it. A rerun with any of them changed starts fresh (and says why); a
rerun with none changed resumes.

Identities are JSON-able mappings:

* a file: ``{"sha256": <bytes>}``;
* a model stage this suite wrote: the content hash recorded in its stamp
  (:data:`STAMP`, written once when the stage is published), so a consumer
  never re-reads gigabytes of weights;
* a pointer stage (``pointer.json``, a hub id or another directory): the hub
  id and revision, or the identity of the directory it points to;
* any other directory: the hash of its files' names and bytes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

STAMP = ".provenance.json"  # hidden: never part of the content it describes
POINTER = "pointer.json"  # the pointer stage's file (suite.models writes it)
CHUNK = 1 << 20
TORCH_SAVE_ID = "/.data/serialization_id"  # a per-process id inside every torch.save archive


def digest(obj: Any, length: int = 16) -> str:
    """Short sha256 of an object's canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[
        :length
    ]


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks; of a ``torch.save`` archive, of its records' contents.

    ``torch.save`` names the archive's folder after the file it writes (the suite writes a temporary file with a
    random name, then renames it) and records a serialization id, so two saves of equal tensors would otherwise
    have different identities, and a recomputed reference would never let training resume.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if any(name.endswith(TORCH_SAVE_ID) for name in names):
                h = hashlib.sha256()
                for name in sorted(n for n in names if not n.endswith(TORCH_SAVE_ID)):
                    h.update(name.split("/", 1)[-1].encode() + b"\0" + archive.read(name))
                return h.hexdigest()
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(path: str | Path) -> str:
    """Content hash of a directory: the relative name and bytes of every non-hidden file."""
    root = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p.relative_to(root)))
    for file in files:
        h.update(str(file.relative_to(root)).encode() + b"\0")
        h.update(file_sha256(file).encode())
    return h.hexdigest()


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def write_stamp(directory: str | Path, recipe: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Record the directory's content hash (and how it was made) in its stamp; returns the stamp.

    Call it on the finished directory before it is published, so the stamp
    always describes exactly the files beside it.
    """
    directory = Path(directory)
    stamp = {"content": tree_sha256(directory), "recipe": dict(recipe or {})}
    (directory / STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True, default=str) + "\n")
    return stamp


def read_stamp(directory: str | Path) -> dict[str, Any] | None:
    path = Path(directory) / STAMP
    return json.loads(path.read_text()) if path.is_file() else None


def identity(path: str | Path) -> dict[str, Any]:
    """What an input is, independent of where the repository lives (see the module docstring)."""
    path = Path(path)
    if path.is_file():
        return {"sha256": file_sha256(path)}
    if (path / POINTER).is_file():
        target = json.loads((path / POINTER).read_text())
        inner = target["name_or_path"]
        extra = {k: v for k, v in target.items() if k not in ("name_or_path", "revision") and v is not None}
        if Path(inner).is_dir():  # the content recorded when the pointer was made (its rule reruns when it changes)
            recorded = extra.pop("content", None)
            return {**extra, "target": recorded or identity(inner)}
        return {**extra, "hub": inner, "revision": target.get("revision")}
    if path.is_dir():
        stamp = read_stamp(path)
        return {"sha256": stamp["content"] if stamp else tree_sha256(path)}
    return {"hub": str(path), "revision": None}


def code_version(modules: Iterable[str]) -> str:
    """Hash of the source of the named modules: a changed loss or engine never resumes old work.

    Found by name (``python -m pipeline.sft`` runs as ``__main__``, but its file is the same).
    """
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and Path(spec.origin).is_file():
            h.update(name.encode() + b"\0" + Path(spec.origin).read_bytes())
    return h.hexdigest()[:16]


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: the leaves of a nested mapping by dotted path."""
    if isinstance(obj, Mapping) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): obj}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed between two provenance records, one line per leaf (``params.beta: 0.1 -> 0.5``)."""
    before, after = flatten(old), flatten(new)
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key, "<unset>") != after.get(key, "<unset>"):
            lines.append(f"{key}: {_short(before.get(key, '<unset>'))} -> {_short(after.get(key, '<unset>'))}")
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:12] + "..." + text[-6:]
