"""Small file helpers shared by every stage.

Every file a rule produces is written to a temporary sibling and renamed into
place, so a killed job never leaves a half-written output that looks complete.
The temporary files get the permissions an ordinary ``open`` would give under
the process umask (0644 files and 0755 directories under umask 022), not
``mkstemp``'s private 0600: on a cluster the lab's group must be able to read
the results.

Readers open ``.gz`` files (``x.jsonl.gz``, ``x.json.gz``, the way Anthropic HH
ships its splits) transparently.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

GZIP_SUFFIX = ".gz"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (other threads may be creating files)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~current_umask())
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~current_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object per line, atomically; return the number of records."""
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def is_gzip(path: str | Path) -> bool:
    return Path(path).suffix == GZIP_SUFFIX


def plain_suffix(path: str | Path) -> str:
    """The suffix that says how to read a file: ``.jsonl`` for both ``x.jsonl`` and ``x.jsonl.gz``."""
    path = Path(path)
    return Path(path.stem).suffix if is_gzip(path) else path.suffix


def open_binary(path: str | Path) -> IO[bytes]:
    """The file's bytes, decompressed if it is a ``.gz`` file."""
    return gzip.open(path, "rb") if is_gzip(path) else Path(path).open("rb")


def open_text(path: str | Path) -> IO[str]:
    """The file as UTF-8 text, decompressed if it is a ``.gz`` file."""
    return gzip.open(path, "rt", encoding="utf-8") if is_gzip(path) else Path(path).open(encoding="utf-8")


def copy_plain(source: str | Path, out: str | Path) -> None:
    """Copy ``source`` to ``out`` atomically, decompressing a ``.gz`` source, so readers downstream see plain text."""
    with open_binary(source) as src, atomic_path(out) as tmp, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file written by this suite (input files are validated by ``suite.data``)."""
    with open_text(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_json(path: str | Path) -> Any:
    with open_text(path) as handle:
        return json.load(handle)
