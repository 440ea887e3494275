"""Load, validate and normalise every data set the suite trains or evaluates on.

The training engine and the workflow read only three normalised formats, so
that the code which touches hub-specific shapes lives in this one module:

* preference (JSON lines): ``{"id", "prompt": [messages ending with a user turn],
  "chosen": [one assistant message], "rejected": [one assistant message],
  "score_chosen": float | None, "score_rejected": float | None}`` -- TRL's
  conversational preference format with an explicit prompt;
* sft (JSON lines): ``{"id", "messages": [system?, user, assistant, ..., assistant]}``;
* alpaca_eval (JSON list): alpaca_eval's own ``instruction/output/generator/dataset`` records;
* mt_bench (JSON lines): FastChat's MT-Bench ``question.jsonl`` records
  ``{"question_id", "category", "turns": [str, ...], "reference"?: [str, ...]}``;
* arena_hard (JSON lines): arena-hard-auto's ``question.jsonl`` records, in
  either of its layouts, each kept in its own: ``{"question_id", "category",
  "cluster"?, "turns": [{"content": str}]}`` (v0.1 as the paper used it) or
  ``{"uid", "category", "subcategory"?, "cluster"?, "prompt"}`` (v2.0, and
  v0.1 since arena-hard-auto's restructuring); ``evals.arena_hard`` checks the
  file against the protocol version.

Inputs come from a local ``.jsonl``/``.json`` file, from the Hugging Face hub,
or from a pinned URL (``url``: downloaded once into a local cache, see
:func:`fetch_url`; benchmark files live on GitHub, not on the hub).
Bad input fails early with a :class:`DataError` that names the file (or hub id
and split), the 1-based record number and the field, because a silently
skipped or mangled record would only show up much later as a puzzling
training curve.

Command line (exit status 2 on bad data)::

    python -m suite.data preference --out results/data/hh.jsonl --limit 100 \\
        --source '{"format": "hh", "path": "workflow/resources/smoke/hh_smoke.jsonl"}'
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from suite.io import atomic_path, write_json, write_jsonl

Kind = Literal["preference", "sft", "alpaca_eval", "mt_bench", "arena_hard"]
KINDS: tuple[str, ...] = ("preference", "sft", "alpaca_eval", "mt_bench", "arena_hard")
FORMATS: tuple[str, ...] = ("ultrafeedback", "hh", "ultrachat", "alpaca_eval", "mt_bench", "arena_hard")
# Which input formats can feed which output kind.
KIND_FORMATS: dict[str, tuple[str, ...]] = {
    "preference": ("ultrafeedback", "hh"),
    "sft": ("ultrachat", "ultrafeedback", "hh"),
    "alpaca_eval": ("alpaca_eval",),
    "mt_bench": ("mt_bench",),
    "arena_hard": ("arena_hard",),
}
ROLES = ("system", "user", "assistant")
SOURCE_KEYS = frozenset({"format", "path", "hub", "url", "name", "sample"})
LOCATION_KEYS = ("path", "hub", "url")
URL_PATTERN = re.compile(r"https?://\S+")
DOWNLOAD_TIMEOUT_S = 120.0
HUB_KEYS = frozenset({"id", "split", "revision", "config", "data_dir", "filename"})
ALPACA_EVAL_FILE = "alpaca_eval_gpt4_baseline.json"
ALPACA_EVAL_FIELDS = ("instruction", "output", "generator", "dataset")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
HH_MARKER = re.compile(r"\n\n(Human|Assistant): ?")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class DataError(ValueError):
    """Input data or a source description is malformed; the message says where and why."""


@dataclass(frozen=True)
class Where:
    """Location of one record, used to build precise error messages."""

    origin: str
    number: int  # 1-based

    def error(self, field: str | None, problem: str) -> DataError:
        location = f"{self.origin}: record {self.number}"
        if field is not None:
            location += f": field '{field}'"
        return DataError(f"{location}: {problem}")


# --------------------------------------------------------------------------- sources


def check_source(source: Any, kind: str | None = None) -> str:
    """Validate a source mapping up front (typos in it would silently change the data); return its format."""
    if not isinstance(source, Mapping):
        raise DataError(f"source: expected a mapping, got {type(source).__name__}")
    unknown = sorted(set(source) - SOURCE_KEYS)
    if unknown:
        raise DataError(f"source: unknown key(s) {unknown}; allowed: {sorted(SOURCE_KEYS)}")
    fmt = source.get("format")
    if fmt not in FORMATS:
        raise DataError(f"source: 'format' must be one of {list(FORMATS)}, got {fmt!r}")
    if kind is not None and fmt not in KIND_FORMATS[kind]:
        raise DataError(f"source: format {fmt!r} cannot produce {kind} data (use one of {list(KIND_FORMATS[kind])})")
    if sum(key in source for key in LOCATION_KEYS) != 1:
        raise DataError("source: give exactly one of 'path' or 'hub' (or 'url')")
    if "url" in source and not (isinstance(source["url"], str) and URL_PATTERN.fullmatch(source["url"])):
        raise DataError(f"source: 'url' must be an http(s) URL, got {source['url']!r}")
    if "path" in source and not isinstance(source["path"], str | Path):
        raise DataError(f"source: 'path' must be a string, got {type(source['path']).__name__}")
    if "hub" in source:
        _check_hub(source["hub"], fmt)
    name = source.get("name", fmt)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise DataError(f"source: 'name' must match {NAME_PATTERN.pattern} (it prefixes record ids), got {name!r}")
    if source.get("sample", "first") not in ("first", "random"):
        raise DataError(f"source: 'sample' must be 'first' or 'random', got {source['sample']!r}")
    return fmt


def _check_hub(hub: Any, fmt: str) -> None:
    """A hub source needs an id, and a split unless it is the alpaca_eval JSON file."""
    if not isinstance(hub, Mapping):
        raise DataError(f"source: 'hub' must be a mapping, got {type(hub).__name__}")
    unknown = sorted(set(hub) - HUB_KEYS)
    if unknown:
        raise DataError(f"source: unknown hub key(s) {unknown}; allowed: {sorted(HUB_KEYS)}")
    required = ("id",) if fmt == "alpaca_eval" else ("id", "split")
    for key in required:
        if not isinstance(hub.get(key), str) or not hub[key]:
            raise DataError(f"source: hub '{key}' must be a non-empty string, got {hub.get(key)!r}")
    for key in HUB_KEYS - set(required):
        if hub.get(key) is not None and not isinstance(hub[key], str):
            raise DataError(f"source: hub '{key}' must be a string, got {type(hub[key]).__name__}")


def hub_origin(hub: Mapping[str, Any], fmt: str) -> str:
    """Human-readable label for a hub source, e.g. ``hub:Anthropic/hh-rlhf[train]@abc123``."""
    if fmt == "alpaca_eval":
        label = f"hub:{hub['id']}/{hub.get('filename') or ALPACA_EVAL_FILE}"
    else:
        config = f":{hub['config']}" if hub.get("config") else ""
        data_dir = f"/{hub['data_dir']}" if hub.get("data_dir") else ""
        label = f"hub:{hub['id']}{config}{data_dir}[{hub['split']}]"
    return label + (f"@{hub['revision']}" if hub.get("revision") else "")


def load_records(source: Mapping[str, Any], limit: int | None = None) -> tuple[list[dict], str]:
    """Read raw records (the first ``limit`` if given) and return them with an origin label for errors."""
    fmt = check_source(source)
    _check_limit(limit)
    if "path" in source:
        path = Path(source["path"])
        origin = str(source["path"])
        records = _read_file(path, origin, limit)
    elif "url" in source:
        origin = source["url"]
        records = _read_file(fetch_url(source["url"]), origin, limit)
    else:
        origin = hub_origin(source["hub"], fmt)
        records = _read_hub(source["hub"], fmt, origin, limit)
    if not records:
        raise DataError(f"{origin}: no records")
    return records, origin


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive integer, got {limit!r}")


def download_cache_dir() -> Path:
    """Where URL sources are cached: ``$AAO_SUITE_CACHE``, else ``$XDG_CACHE_HOME/aao-suite``, else ``~/.cache``."""
    if os.environ.get("AAO_SUITE_CACHE"):
        return Path(os.environ["AAO_SUITE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aao-suite"


def fetch_url(url: str, download: bool = True) -> Path:
    """Local copy of ``url`` (pin a commit in it: the cache never re-downloads), downloaded on first use.

    The file keeps the URL's base name (its suffix says how to read it) in a
    directory named by the URL's hash. With ``download=False`` a missing copy
    is an error, for compute nodes without network access.
    """
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    target = download_cache_dir() / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if target.is_file():
        return target
    if not download:
        raise DataError(f"{url}: not downloaded yet (expected at {target}); fetch it on a machine with network")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, atomic_path(target) as tmp:
            tmp.write_bytes(response.read())
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(f"{url}: download failed: {exc}") from None
    return target


def _read_file(path: Path, origin: str, limit: int | None) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{origin}: no such file")
    try:
        if path.suffix == ".jsonl":
            return _read_jsonl(path, origin, limit)
        if path.suffix == ".json":
            return _read_json_list(path, origin, limit)
    except UnicodeDecodeError as exc:
        raise DataError(f"{origin}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    raise DataError(f"{origin}: unsupported file type {path.suffix!r} (expected .jsonl or .json)")


def _read_jsonl(path: Path, origin: str, limit: int | None) -> list[dict]:
    """One JSON object per non-blank line; record numbers count non-blank lines."""
    records: list[dict] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if limit is not None and len(records) >= limit:
                break
            if not line.strip():
                continue
            where = f"{origin}: record {len(records) + 1} (line {line_number})"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: invalid JSON: {exc.msg} at column {exc.colno}") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object, got {_type_name(record)}")
            records.append(record)
    return records


def _read_json_list(path: Path, origin: str, limit: int | None) -> list[dict]:
    """A JSON file holding a list of objects (alpaca_eval's layout)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{origin}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{origin}: expected a JSON list of objects, got {_type_name(data)}")
    data = data if limit is None else data[:limit]
    for number, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise Where(origin, number).error(None, f"expected a JSON object, got {_type_name(record)}")
    return data


def _read_hub(hub: Mapping[str, Any], fmt: str, origin: str, limit: int | None) -> list[dict]:
    """Thin hub access; runs on the cluster only (no hub access on development machines)."""
    if fmt == "alpaca_eval":
        # datasets>=4 cannot run alpaca_eval's loading script, so fetch the JSON file itself.
        from huggingface_hub import hf_hub_download

        local = hf_hub_download(
            repo_id=hub["id"],
            filename=hub.get("filename") or ALPACA_EVAL_FILE,
            repo_type="dataset",
            revision=hub.get("revision"),
        )
        return _read_json_list(Path(local), origin, limit)
    import datasets

    dataset = datasets.load_dataset(
        hub["id"],
        hub.get("config"),
        split=hub["split"],
        revision=hub.get("revision"),
        data_dir=hub.get("data_dir"),
    )
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset.to_list()


# --------------------------------------------------------------------------- field checks


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _mapping(record: Any, where: Where) -> Mapping[str, Any]:
    if not isinstance(record, Mapping):
        raise where.error(None, f"expected a JSON object, got {_type_name(record)}")
    return record


def _required(record: Mapping[str, Any], key: str, where: Where) -> Any:
    if key not in record:
        raise where.error(key, "missing")
    return record[key]


def _text(value: Any, field: str, where: Where) -> str:
    """A response or prompt must be a non-blank string: blank ones poison log-probability averages."""
    if not isinstance(value, str):
        raise where.error(field, f"expected a string, got {_type_name(value)}")
    if not value.strip():
        raise where.error(field, "empty string")
    return value


def _messages(value: Any, field: str, where: Where) -> list[dict[str, str]]:
    """A non-empty list of {role, content} messages; extra keys are dropped."""
    if not isinstance(value, list):
        raise where.error(field, f"expected a list of messages, got {_type_name(value)}")
    if not value:
        raise where.error(field, "empty list")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise where.error(f"{field}[{i}]", f"expected a message object, got {_type_name(message)}")
        if "role" not in message:
            raise where.error(f"{field}[{i}].role", "missing")
        role = message["role"]
        if role not in ROLES:
            raise where.error(f"{field}[{i}].role", f"expected one of {list(ROLES)}, got {role!r}")
        if "content" not in message:
            raise where.error(f"{field}[{i}].content", "missing")
        messages.append({"role": role, "content": _text(message["content"], f"{field}[{i}].content", where)})
    return messages


def _check_turns(messages: list[dict[str, str]], field: str, where: Where, last: str) -> None:
    """Optional leading system message, then user/assistant alternating from user, ending with ``last``."""
    start = 1 if messages[0]["role"] == "system" else 0
    for i in range(start, len(messages)):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if messages[i]["role"] != expected:
            raise where.error(
                f"{field}[{i}].role",
                f"expected {expected!r}, got {messages[i]['role']!r} "
                "(after an optional system message, turns alternate user/assistant starting with user)",
            )
    if messages[-1]["role"] != last:
        raise where.error(f"{field}[{len(messages) - 1}].role", f"the last message must be {last!r}")


def _check_shared_prompt(chosen: list[dict], rejected: list[dict], where: Where, names: Sequence[str]) -> None:
    """Chosen and rejected must continue the same conversation, or the pair compares different prompts."""
    field, other = names
    if len(chosen) != len(rejected):
        raise where.error(
            field,
            f"has {len(rejected)} messages but '{other}' has {len(chosen)}; they must share every message but the last",
        )
    for i, (a, b) in enumerate(zip(chosen[:-1], rejected[:-1], strict=True)):
        for key in ("role", "content"):
            if a[key] != b[key]:
                raise where.error(
                    f"{field}[{i}].{key}",
                    f"differs from '{other}[{i}].{key}'; chosen and rejected must share the prompt",
                )


def _score(record: Mapping[str, Any], key: str, where: Where) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(key, f"expected a finite number or null, got {value!r}")
    return float(value)


def parse_hh(value: Any, field: str, where: Where) -> list[dict[str, str]]:
    """Split an Anthropic HH transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") into messages."""
    text = _text(value, field, where)
    pieces = HH_MARKER.split(text)
    if pieces[0].strip() or len(pieces) < 3:
        raise where.error(field, "transcript must start with '\\n\\nHuman: '")
    messages = []
    for turn, k in enumerate(range(1, len(pieces), 2), start=1):
        speaker, content = pieces[k], pieces[k + 1].strip()
        expected = "Human" if turn % 2 == 1 else "Assistant"
        if speaker != expected:
            raise where.error(field, f"turn {turn}: expected {expected}, got {speaker} (turns must alternate)")
        if not content:
            raise where.error(field, f"turn {turn} ({speaker}): empty string")
        messages.append({"role": HH_ROLES[speaker], "content": content})
    if messages[-1]["role"] != "assistant":
        raise where.error(field, f"turn {len(messages)}: the last turn must be Assistant")
    return messages


# --------------------------------------------------------------------------- normalisers


def record_id(name: str, position: int) -> str:
    """Stable id from the record's 0-based position in the source, so per-record artifacts can be keyed."""
    return f"{name}-{position:06d}"


def _numbered(
    records: Sequence[Any], origin: str, positions: Sequence[int] | None
) -> Iterator[tuple[int, Where, Mapping[str, Any]]]:
    """Each record, checked to be an object, with its 0-based position in the source and where it is (for errors).

    No records at all is an error.
    """
    if not records:
        raise DataError(f"{origin}: no records")
    if positions is None:
        positions = range(len(records))
    elif len(positions) != len(records):
        raise ValueError("positions must have one entry per record")
    for position, raw in zip(positions, records, strict=True):
        where = Where(origin, position + 1)
        yield position, where, _mapping(raw, where)


def _require_format(fmt: str, kind: str, origin: str) -> None:
    if fmt not in KIND_FORMATS[kind]:
        raise DataError(f"{origin}: format {fmt!r} cannot produce {kind} data (use one of {list(KIND_FORMATS[kind])})")


def _pair_from_ultrafeedback(record: Mapping[str, Any], where: Where) -> tuple[list[dict], list[dict]]:
    chosen = _messages(_required(record, "chosen", where), "chosen", where)
    rejected = _messages(_required(record, "rejected", where), "rejected", where)
    _check_turns(chosen, "chosen", where, last="assistant")
    _check_turns(rejected, "rejected", where, last="assistant")
    _check_shared_prompt(chosen, rejected, where, ("rejected", "chosen"))
    return chosen, rejected


def _pair_from_hh(record: Mapping[str, Any], where: Where) -> tuple[list[dict], list[dict]]:
    chosen = parse_hh(_required(record, "chosen", where), "chosen", where)
    rejected = parse_hh(_required(record, "rejected", where), "rejected", where)
    if len(chosen) != len(rejected):
        raise where.error(
            "rejected",
            f"has {len(rejected)} turns but 'chosen' has {len(chosen)}; they must share all turns but the last",
        )
    for turn, (a, b) in enumerate(zip(chosen[:-1], rejected[:-1], strict=True), start=1):
        if a != b:
            raise where.error("rejected", f"turn {turn} differs from 'chosen'; they must share all turns but the last")
    return chosen, rejected


PAIR_READERS: dict[str, Callable[[Mapping[str, Any], Where], tuple[list[dict], list[dict]]]] = {
    "ultrafeedback": _pair_from_ultrafeedback,
    "hh": _pair_from_hh,
}


def normalise_preference(
    records: Sequence[Any],
    origin: str,
    fmt: str,
    *,
    name: str | None = None,
    positions: Sequence[int] | None = None,
) -> list[dict]:
    """Validate preference pairs and convert them to the suite's preference format.

    ``positions`` are the records' 0-based positions in the source (default: 0..n-1);
    they set both the record numbers in error messages and the ids.
    """
    _require_format(fmt, "preference", origin)
    out = []
    for position, where, record in _numbered(records, origin, positions):
        chosen, rejected = PAIR_READERS[fmt](record, where)
        out.append(
            {
                "id": record_id(name or fmt, position),
                "prompt": chosen[:-1],
                "chosen": chosen[-1:],
                "rejected": rejected[-1:],
                "score_chosen": _score(record, "score_chosen", where),
                "score_rejected": _score(record, "score_rejected", where),
            }
        )
    return out


def _dialogue(record: Mapping[str, Any], fmt: str, where: Where) -> list[dict]:
    """The conversation an SFT record trains on, for each supported input format."""
    if fmt == "hh":
        return parse_hh(_required(record, "chosen", where), "chosen", where)
    field = "messages" if fmt == "ultrachat" else "chosen"
    messages = _messages(_required(record, field, where), field, where)
    _check_turns(messages, field, where, last="assistant")
    return messages


def normalise_sft(
    records: Sequence[Any],
    origin: str,
    fmt: str,
    *,
    name: str | None = None,
    positions: Sequence[int] | None = None,
) -> list[dict]:
    """Validate dialogues (UltraChat messages, or the chosen side of preference data) for SFT."""
    _require_format(fmt, "sft", origin)
    out = []
    for position, where, record in _numbered(records, origin, positions):
        messages = _dialogue(record, fmt, where)
        out.append({"id": record_id(name or fmt, position), "messages": messages})
    return out


def normalise_alpaca_eval(records: Sequence[Any], origin: str, *, positions: Sequence[int] | None = None) -> list[dict]:
    """Validate alpaca_eval records; instructions must be unique because alpaca_eval joins on them."""
    out = []
    seen: dict[str, int] = {}
    for _, where, record in _numbered(records, origin, positions):
        clean = {}
        for key in ALPACA_EVAL_FIELDS:
            value = _required(record, key, where)
            if key == "dataset" and isinstance(value, str):
                clean[key] = value  # may legitimately be empty
            else:
                clean[key] = _text(value, key, where)
        if clean["instruction"] in seen:
            raise where.error("instruction", f"duplicate of record {seen[clean['instruction']]}")
        seen[clean["instruction"]] = where.number
        out.append(clean)
    return out


def _question_id(record: Mapping[str, Any], where: Where, seen: dict[Any, int]) -> int | str:
    """A benchmark question id: a non-negative integer or a non-empty string, unique in the file."""
    qid = _required(record, "question_id", where)
    if isinstance(qid, bool) or not ((isinstance(qid, int) and qid >= 0) or (isinstance(qid, str) and qid.strip())):
        raise where.error("question_id", f"expected a non-negative integer or a non-empty string, got {qid!r}")
    if qid in seen:
        raise where.error("question_id", f"duplicate of record {seen[qid]}")
    seen[qid] = where.number
    return qid


def _strings(value: Any, field: str, where: Where) -> list[str]:
    if not isinstance(value, list) or not value:
        raise where.error(field, f"expected a non-empty list of strings, got {_type_name(value)}")
    return [_text(item, f"{field}[{i}]", where) for i, item in enumerate(value)]


def normalise_mt_bench(records: Sequence[Any], origin: str, *, positions: Sequence[int] | None = None) -> list[dict]:
    """Validate FastChat MT-Bench questions (two turns each in MT-Bench; one or two are accepted)."""
    out, seen = [], {}
    for _, where, record in _numbered(records, origin, positions):
        clean: dict[str, Any] = {
            "question_id": _question_id(record, where, seen),
            "category": _text(_required(record, "category", where), "category", where),
            "turns": _strings(_required(record, "turns", where), "turns", where),
        }
        if len(clean["turns"]) > 2:
            raise where.error("turns", f"MT-Bench questions have one or two turns, got {len(clean['turns'])}")
        if record.get("reference") is not None:
            reference = _list(record["reference"], "reference", where)
            for i, text in enumerate(reference):
                if not isinstance(text, str):  # FastChat's own file has an empty one
                    raise where.error(f"reference[{i}]", f"expected a string, got {_type_name(text)}")
            clean["reference"] = reference
        out.append(clean)
    return out


def _list(value: Any, field: str, where: Where) -> list:
    if not isinstance(value, list):
        raise where.error(field, f"expected a list, got {_type_name(value)}")
    return value


def normalise_arena_hard(records: Sequence[Any], origin: str, *, positions: Sequence[int] | None = None) -> list[dict]:
    """Validate arena-hard-auto questions: one user turn each, as ``{"content": str}`` or a ``prompt`` string."""
    out, seen = [], {}
    for _, where, record in _numbered(records, origin, positions):
        if "uid" in record or "prompt" in record:
            out.append(_arena_hard_prompt(record, where, seen))
            continue
        qid = _question_id(record, where, seen)
        turns = _list(_required(record, "turns", where), "turns", where)
        if len(turns) != 1:
            raise where.error("turns", f"arena-hard prompts have exactly one turn, got {len(turns)}")
        if not isinstance(turns[0], Mapping) or "content" not in turns[0]:
            raise where.error("turns[0].content", "missing (each turn is an object with a 'content' string)")
        clean: dict[str, Any] = {
            "question_id": qid,
            "category": _text(_required(record, "category", where), "category", where),
            "turns": [{"content": _text(turns[0]["content"], "turns[0].content", where)}],
        }
        if record.get("cluster") is not None:
            clean["cluster"] = _text(record["cluster"], "cluster", where)
        out.append(clean)
    return out


def _arena_hard_prompt(record: Mapping[str, Any], where: Where, seen: dict[Any, int]) -> dict[str, Any]:
    """One question of arena-hard-auto's current layout: ``{uid, category, subcategory?, cluster?, prompt}``."""
    uid = _text(_required(record, "uid", where), "uid", where)
    if uid in seen:
        raise where.error("uid", f"duplicate of record {seen[uid]}")
    seen[uid] = where.number
    clean = {"uid": uid, "category": _text(_required(record, "category", where), "category", where)}
    for key in ("subcategory", "cluster"):
        if record.get(key) is not None:
            clean[key] = _text(record[key], key, where)
    clean["prompt"] = _text(_required(record, "prompt", where), "prompt", where)
    return clean


QUESTION_NORMALISERS: dict[str, Callable[..., list[dict]]] = {
    "mt_bench": normalise_mt_bench,
    "arena_hard": normalise_arena_hard,
}


# --------------------------------------------------------------------------- prepare + CLI


def prepare(
    kind: Kind,
    source: Mapping[str, Any],
    out: Path,
    limit: int | None = None,
    seed: int = 0,
) -> int:
    """Load, validate and normalise ``source`` into ``out`` (written atomically); return the record count.

    With ``limit``, only the first ``limit`` records are read and validated (hub
    data sets are large), or, if the source says ``"sample": "random"``, a
    ``seed``-determined random subset of that size (kept in source order).
    Ids always reflect positions in the full source, so they do not change with ``limit``.
    """
    if kind not in KINDS:
        raise DataError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    fmt = check_source(source, kind)
    _check_limit(limit)
    sample = source.get("sample", "first") == "random" and limit is not None
    records, origin = load_records(source, limit=None if sample else limit)
    positions: list[int] = list(range(len(records)))
    if sample:
        positions = sorted(random.Random(seed).sample(positions, min(limit, len(positions))))
        records = [records[i] for i in positions]
    name = source.get("name", fmt)
    if kind == "alpaca_eval":
        write_json(out, normalise_alpaca_eval(records, origin, positions=positions))
        return len(records)
    if kind in QUESTION_NORMALISERS:
        return write_jsonl(out, QUESTION_NORMALISERS[kind](records, origin, positions=positions))
    normalise = normalise_preference if kind == "preference" else normalise_sft
    return write_jsonl(out, normalise(records, origin, fmt, name=name, positions=positions))


def parse_source(text: str) -> Mapping[str, Any]:
    """Parse the CLI's ``--source`` JSON string."""
    try:
        source = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"--source: invalid JSON: {exc.msg} at column {exc.colno}") from None
    check_source(source)
    return source


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; bad data exits with status 2 and a one-line message, not a traceback."""
    parser = argparse.ArgumentParser(
        prog="python -m suite.data", description="Validate and normalise a data set for the suite."
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument(
        "--source",
        required=True,
        help='JSON object, e.g. {"format": "ultrafeedback", "path": "x.jsonl"} or '
        '{"format": "hh", "hub": {"id": "Anthropic/hh-rlhf", "split": "train", "revision": "..."}}',
    )
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N records")
    parser.add_argument("--seed", type=int, default=0, help='subset seed when the source has "sample": "random"')
    args = parser.parse_args(argv)
    try:
        count = prepare(args.kind, parse_source(args.source), args.out, limit=args.limit, seed=args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {count} {args.kind} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
