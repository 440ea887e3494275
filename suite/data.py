"""Load, validate and normalise every data set the suite trains or evaluates on.

The training engine and the workflow read only these normalised formats, so
that the code which touches hub-specific shapes lives in this one module:

* preference (JSON lines): ``{"id", "prompt": [messages ending with a user turn],
  "chosen": [one assistant message], "rejected": [one assistant message],
  "score_chosen": float | None, "score_rejected": float | None}`` -- TRL's
  conversational preference format with an explicit prompt;
* sft (JSON lines): ``{"id", "messages": [system?, user, assistant, ..., assistant]}``;
* prompts (JSON lines): ``{"id", "prompt": [...], "chosen"?: [one assistant message]}`` -- a
  prompt set (the harmless rate's, hh_helpful's) that checks only what it uses: the prompt,
  and the chosen reply when the dataset keeps it (``with_chosen``);
* alpaca_eval (JSON list): alpaca_eval's own ``instruction/output/generator/dataset`` records;
* mt_bench (JSON lines): FastChat's MT-Bench ``question.jsonl`` records
  ``{"question_id", "category", "turns": [str, ...], "reference"?: [str, ...]}``;
* arena_hard (JSON lines): arena-hard-auto's ``question.jsonl`` records, in
  either of its layouts, each kept in its own: ``{"question_id", "category",
  "cluster"?, "turns": [{"content": str}]}`` (v0.1 as the paper used it) or
  ``{"uid", "category", "subcategory"?, "cluster"?, "prompt"}`` (v2.0, and
  v0.1 since arena-hard-auto's restructuring); ``evals.arena_hard`` checks the
  file against the protocol version.

Inputs come from a local ``.jsonl``/``.json`` file (or its ``.gz``), from the
Hugging Face hub (the commit actually read is recorded), or from a URL
(``url``, with the file's ``sha256``: downloaded once, verified, cached under
its hash, see :func:`fetch_url`; benchmark files live on GitHub, not on the hub).

A malformed record is a :class:`DataError` that names the file (or hub id and
split), the 1-based record number and the field. What happens next is the
dataset's :class:`Policy`: ``on_invalid: error`` (the default) stops at it;
``skip`` leaves it out and counts it by reason, up to ``max_invalid_fraction``
of the records read. Pairs whose two responses are identical and duplicated
records are counted, and dropped if the policy says so. Every count lands in
a manifest written beside the prepared file (:func:`manifest`), so nothing is
ever dropped silently.

Command line (exit status 2 on bad data)::

    python -m pipeline.data preference --out results/data/hh.jsonl --manifest results/data/hh.manifest.json \\
        --source '{"format": "hh", "path": "workflow/resources/smoke/hh_smoke.jsonl.gz"}' \\
        --policy '{"on_invalid": "skip", "max_invalid_fraction": 0.05}'
"""

from __future__ import annotations

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
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from suite.io import atomic_path, open_binary, plain_suffix, write_json, write_jsonl
from suite.provenance import file_sha256

Kind = Literal["preference", "sft", "prompts", "alpaca_eval", "mt_bench", "arena_hard"]
KINDS: tuple[str, ...] = ("preference", "sft", "prompts", "alpaca_eval", "mt_bench", "arena_hard")
FORMATS: tuple[str, ...] = ("ultrafeedback", "hh", "ultrachat", "alpaca_eval", "mt_bench", "arena_hard")
# Which input formats can feed which output kind.
KIND_FORMATS: dict[str, tuple[str, ...]] = {
    "preference": ("ultrafeedback", "hh"),
    "sft": ("ultrachat", "ultrafeedback", "hh"),
    "prompts": ("hh", "ultrafeedback"),
    "alpaca_eval": ("alpaca_eval",),
    "mt_bench": ("mt_bench",),
    "arena_hard": ("arena_hard",),
}
# Kinds whose records get a positional id and can repeat one another (benchmarks have ids of their own).
ID_KINDS = ("preference", "sft", "prompts")
ROLES = ("system", "user", "assistant")
SOURCE_KEYS = frozenset({"format", "path", "hub", "url", "sha256", "name", "sample"})
LOCATION_KEYS = ("path", "hub", "url")
URL_PATTERN = re.compile(r"https?://\S+")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
DOWNLOAD_TIMEOUT_S = 120.0
HUB_KEYS = frozenset({"id", "split", "revision", "config", "data_dir", "filename"})
ALPACA_EVAL_FILE = "alpaca_eval_gpt4_baseline.json"
ALPACA_EVAL_FIELDS = ("instruction", "output", "generator", "dataset")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# HH's turn marker: a blank line (or the start of the transcript), the speaker, a colon. "Human:" anywhere
# else (mid-line, after a single newline) is text of the turn it stands in, as HH writes it.
HH_MARKER = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]*")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}
MERGED_TURNS = "HH: two turns of one role in a row, joined into one turn"
EXAMPLES = 5  # invalid records quoted by name in the manifest
ON_INVALID = ("error", "skip")


class DataError(ValueError):
    """Input data or a source description is malformed; the message says where and why.

    ``reason`` is the problem without its location (``chosen: empty final Assistant turn``),
    the key under which a skipped record is counted.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


@dataclass(frozen=True)
class Where:
    """Location of one record, used to build precise error messages."""

    origin: str
    number: int  # 1-based

    def error(self, field: str | None, problem: str, reason: str | None = None) -> DataError:
        """The error for ``field`` of this record; ``reason`` (default: ``problem``) is what it is counted as."""
        location = f"{self.origin}: record {self.number}"
        if field is None:
            return DataError(f"{location}: {problem}", reason or problem)
        return DataError(f"{location}: field '{field}': {problem}", f"{generic_field(field)}: {reason or problem}")


def generic_field(field: str) -> str:
    """``chosen[3].content`` -> ``chosen[].content``: the field without its indices, to count by."""
    return re.sub(r"\[\d+\]", "[]", field)


def json_problem(exc: json.JSONDecodeError, line: bool = False) -> str:
    """json's message with its position; some messages already end in "at" ("... starting at")."""
    position = f"line {exc.lineno} column {exc.colno}" if line else f"column {exc.colno}"
    return f"{exc.msg}{' ' if exc.msg.endswith(' at') else ' at '}{position}"


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """What a dataset does with records that are malformed, repeated, or compare a response with itself.

    The default stops at the first malformed record: a reproduction should run on
    exactly the data it names, so leaving records out is the researcher's explicit
    choice (``on_invalid: skip``), bounded by ``max_invalid_fraction`` (more bad
    records than that means a wrong format or a broken file, not a few odd ones).
    Identical and duplicate pairs are kept by default (the published data as it is)
    and always counted.
    """

    on_invalid: str = "error"
    max_invalid_fraction: float = 0.01
    drop_duplicates: bool = False
    drop_identical: bool = False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Policy:
        """A policy from the CLI's / config's mapping; a bad key or value is a DataError naming it."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"policy: unknown key(s) {unknown}; allowed: {sorted(known)}")
        policy = cls(**values)
        if policy.on_invalid not in ON_INVALID:
            raise DataError(f"policy: 'on_invalid' must be one of {list(ON_INVALID)}, got {policy.on_invalid!r}")
        fraction = policy.max_invalid_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
            raise DataError(f"policy: 'max_invalid_fraction' must be a number in [0, 1], got {fraction!r}")
        for key in ("drop_duplicates", "drop_identical"):
            if not isinstance(getattr(policy, key), bool):
                raise DataError(f"policy: {key!r} must be true or false, got {getattr(policy, key)!r}")
        return policy


@dataclass
class Tally:
    """What happened to the records of one source: the counts a manifest reports."""

    policy: Policy
    read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    repaired: Counter[str] = field(default_factory=Counter)
    identical_pairs: int = 0
    dropped_identical: int = 0
    duplicates: int = 0
    dropped_duplicates: int = 0

    def invalid(self, error: DataError) -> None:
        """Stop at ``error`` (``on_invalid: error``), or count it and remember the first few."""
        if self.policy.on_invalid == "error":
            raise error
        self.skipped[error.reason] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(str(error))

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def check_fraction(self, origin: str) -> None:
        """Too many invalid records is an error with the counts, however the policy treats single ones."""
        if self.read and self.n_skipped / self.read > self.policy.max_invalid_fraction:
            raise DataError(
                f"{origin}: {self.n_skipped} of {self.read} records are invalid "
                f"({100 * self.n_skipped / self.read:.2f}%), more than max_invalid_fraction "
                f"{self.policy.max_invalid_fraction}: {describe_counts(self.skipped)}; first: {self.examples[0]}"
            )


def describe_counts(counts: Mapping[str, int]) -> str:
    """``reason: count, ...``, the most frequent first."""
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


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
    if "sha256" in source:
        _check_sha256(source)
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


def _check_sha256(source: Mapping[str, Any]) -> None:
    """A content hash belongs to a downloaded file (a local file is a rule input, a hub dataset has a revision)."""
    if "url" not in source:
        raise DataError("source: 'sha256' goes with 'url' (the hash the download must have)")
    if not (isinstance(source["sha256"], str) and SHA256_PATTERN.fullmatch(source["sha256"])):
        raise DataError(f"source: 'sha256' must be 64 lower-case hex digits, got {source['sha256']!r}")


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


@dataclass
class Reading:
    """An opened source: its label for messages, what it is (hash or commit), and its raw records in order.

    A record that cannot even be read (bad JSON, a byte that is not UTF-8) arrives
    as the :class:`DataError` that says so, so the policy treats it like any other
    malformed record.
    """

    origin: str
    identity: dict[str, Any]
    records: Iterator[Any]


def open_source(source: Mapping[str, Any]) -> Reading:
    """Open a checked source: a local file, a verified download, or a hub dataset at a resolved commit."""
    fmt = check_source(source)
    if "hub" in source:
        return _read_hub(source["hub"], fmt)
    if "path" in source:
        origin, local = str(source["path"]), Path(source["path"])
    else:
        origin, local = source["url"], fetch_url(source["url"], sha256=source.get("sha256"))
    records = _read_file(local, origin)
    location = {"path": origin} if "path" in source else {"url": origin}
    return Reading(origin, {**location, "sha256": file_sha256(local)}, records)


def download_cache_dir() -> Path:
    """Where URL sources are cached: ``$AAO_SUITE_CACHE``, else ``$XDG_CACHE_HOME/aao-suite``, else ``~/.cache``."""
    if os.environ.get("AAO_SUITE_CACHE"):
        return Path(os.environ["AAO_SUITE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aao-suite"


def fetch_url(url: str, download: bool = True, sha256: str | None = None) -> Path:
    """Local copy of ``url``, downloaded on first use; with ``sha256``, verified and cached under that hash.

    The file keeps the URL's base name (its suffix says how to read it) in a
    directory named by the URL's hash and the expected content hash, so a
    config that names another hash never reads the old copy. A download whose
    bytes do not match ``sha256`` is an error and is not kept. Without a hash,
    pin a commit in the URL: an unhashed copy is never re-downloaded. With
    ``download=False`` a missing copy is an error, for compute nodes without
    network access.
    """
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    folder = download_cache_dir() / "downloads" / key
    target = (folder if sha256 is None else folder / sha256) / name
    if target.is_file():
        return target
    if not download:
        raise DataError(f"{url}: not downloaded yet (expected at {target}); fetch it on a machine with network")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            body = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(f"{url}: download failed: {exc}") from None
    actual = hashlib.sha256(body).hexdigest()
    if sha256 is not None and actual != sha256:
        raise DataError(
            f"{url}: the download has sha256 {actual}, the config expects {sha256} "
            "(the file changed upstream, or the hash or URL is wrong); nothing was cached"
        )
    with atomic_path(target) as tmp:
        tmp.write_bytes(body)
    return target


def _read_file(path: Path, origin: str) -> Iterator[Any]:
    """The records of a ``.jsonl`` / ``.json`` file (or its ``.gz``), checked to exist and to have a known type."""
    if not path.is_file():
        raise DataError(f"{origin}: no such file")
    suffix = plain_suffix(path)
    if suffix == ".jsonl":
        return _read_jsonl(path, origin)
    if suffix == ".json":
        return iter(_read_json_list(path, origin))
    raise DataError(f"{origin}: unsupported file type {suffix!r} (expected .jsonl or .json, optionally .gz)")


def _read_jsonl(path: Path, origin: str) -> Iterator[Any]:
    """One JSON object per non-blank line; record numbers count non-blank lines, messages name both."""
    number = 0
    with open_binary(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                number += 1
                yield _json_record(line, f"{origin}: record {number} (line {line_number})")


def _json_record(line: bytes, location: str) -> Any:
    """One line as a JSON object, or the DataError that says why it is not one."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DataError(
            f"{location}: not UTF-8 text (byte 0x{line[exc.start]:02x} at byte {exc.start + 1} of the line)",
            "not UTF-8",
        )
    try:
        record = json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return DataError(f"{location}: invalid JSON: {json_problem(exc)}", "invalid JSON")
    if not isinstance(record, dict):
        return DataError(f"{location}: expected a JSON object, got {_type_name(record)}", "not a JSON object")
    return record


def _read_json_list(path: Path, origin: str) -> list[Any]:
    """A JSON file holding a list of objects (alpaca_eval's layout); it parses as a whole or not at all."""
    with open_binary(path) as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{origin}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, byte {column})"
        ) from None
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{origin}: invalid JSON: {json_problem(exc, line=True)}") from None
    if not isinstance(records, list):
        raise DataError(f"{origin}: expected a JSON list of objects, got {_type_name(records)}")
    return records


def _read_hub(hub: Mapping[str, Any], fmt: str) -> Reading:
    """Thin hub access, at the commit the revision resolves to now; runs on the cluster's login node only."""
    commit = resolve_hub_revision(hub["id"], hub.get("revision"))
    origin = hub_origin(hub, fmt)
    identity = {"hub": dict(hub), "resolved_revision": commit}
    if fmt == "alpaca_eval":
        # datasets>=4 cannot run alpaca_eval's loading script, so fetch the JSON file itself.
        from huggingface_hub import hf_hub_download

        local = hf_hub_download(
            repo_id=hub["id"],
            filename=hub.get("filename") or ALPACA_EVAL_FILE,
            repo_type="dataset",
            revision=commit or hub.get("revision"),
        )
        return Reading(origin, identity, iter(_read_json_list(Path(local), origin)))
    import datasets

    dataset = datasets.load_dataset(
        hub["id"],
        hub.get("config"),
        split=hub["split"],
        revision=commit or hub.get("revision"),
        data_dir=hub.get("data_dir"),
    )
    return Reading(origin, identity, iter(dataset))


def resolve_hub_revision(repo_id: str, revision: str | None) -> str | None:
    """The commit a dataset revision (a branch, a tag, or None for main) names now; None where the hub is off."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:
        return HfApi().dataset_info(repo_id, revision=revision).sha
    except OfflineModeIsEnabled:
        print(f"warning: {repo_id}: hub offline, the commit read is not recorded", file=sys.stderr)
        return None


# --------------------------------------------------------------------------- field checks


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _mapping(record: Any, where: Where) -> Mapping[str, Any]:
    if not isinstance(record, Mapping):
        raise where.error(None, f"expected a JSON object, got {_type_name(record)}", "not a JSON object")
    return record


def _required(record: Mapping[str, Any], key: str, where: Where) -> Any:
    if key not in record:
        raise where.error(key, "missing")
    return record[key]


def _text(value: Any, field: str, where: Where) -> str:
    """A response or prompt must be a non-blank string: blank ones poison log-probability averages."""
    if not isinstance(value, str):
        raise where.error(field, f"expected a string, got {_type_name(value)}", "not a string")
    if not value.strip():
        raise where.error(field, "empty string")
    return value


def _messages(value: Any, field: str, where: Where) -> list[dict[str, str]]:
    """A non-empty list of {role, content} messages; extra keys are dropped."""
    if not isinstance(value, list):
        raise where.error(field, f"expected a list of messages, got {_type_name(value)}", "not a list of messages")
    if not value:
        raise where.error(field, "empty list")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise where.error(
                f"{field}[{i}]", f"expected a message object, got {_type_name(message)}", "not a message object"
            )
        if "role" not in message:
            raise where.error(f"{field}[{i}].role", "missing")
        role = message["role"]
        if role not in ROLES:
            raise where.error(f"{field}[{i}].role", f"expected one of {list(ROLES)}, got {role!r}", "unknown role")
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
                "turns do not alternate",
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
            "prompt differs from the other response's",
        )
    for i, (a, b) in enumerate(zip(chosen[:-1], rejected[:-1], strict=True)):
        for key in ("role", "content"):
            if a[key] != b[key]:
                raise where.error(
                    f"{field}[{i}].{key}",
                    f"differs from '{other}[{i}].{key}'; chosen and rejected must share the prompt",
                    "prompt differs from the other response's",
                )


def _score(record: Mapping[str, Any], key: str, where: Where) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(key, f"expected a finite number or null, got {value!r}", "not a finite number")
    return float(value)


# --------------------------------------------------------------------------- Anthropic HH transcripts


def _hh_turns(value: Any, field: str, where: Where) -> list[tuple[str, str]]:
    """(speaker, text) of each marked turn of an HH transcript ("\\n\\nHuman: ...\\n\\nAssistant: ..."), in order.

    Whitespace around a turn's text (HH has double spaces after a marker and
    trailing newlines) is not part of it. A transcript must start with a Human turn.
    """
    text = _text(value, field, where)
    pieces = HH_MARKER.split(text)
    if pieces[0].strip() or len(pieces) < 3:
        raise where.error(field, "transcript must start with '\\n\\nHuman: ' (a turn marker)", "not an HH transcript")
    turns = [(pieces[k], pieces[k + 1].strip()) for k in range(1, len(pieces), 2)]
    if turns[0][0] != "Human":
        raise where.error(
            field, "turn 1 is Assistant: an HH transcript starts with a Human turn", "starts with Assistant"
        )
    return turns


def _hh_conversation(value: Any, field: str, where: Where, notes: set[str], final_may_be_empty: bool) -> list[dict]:
    """An HH transcript as alternating messages from user, ending with the Assistant turn it answers with.

    Two turns of one role in a row are, in HH, one speaker going on (the
    transcript has no turn of the other role between them): they become one
    message, their texts joined by the blank line HH put between them, and the
    record is noted (``MERGED_TURNS``). An empty turn is an error, except the
    final Assistant turn when only the prompt is wanted (``final_may_be_empty``).
    """
    turns = _hh_turns(value, field, where)
    if turns[-1][0] != "Assistant":
        raise where.error(field, f"turn {len(turns)}: the last turn must be Assistant", "ends with a Human turn")
    messages: list[dict[str, str]] = []
    for number, (speaker, content) in enumerate(turns, start=1):
        final = number == len(turns)
        if not content and not (final and final_may_be_empty):
            reason = "empty final Assistant turn" if final else "empty turn"
            raise where.error(field, f"turn {number} ({speaker}): empty string", reason)
        if messages and messages[-1]["role"] == HH_ROLES[speaker]:
            messages[-1]["content"] = "\n\n".join(text for text in (messages[-1]["content"], content) if text)
            notes.add(MERGED_TURNS)
        else:
            messages.append({"role": HH_ROLES[speaker], "content": content})
    return messages


def parse_hh(value: Any, field: str, where: Where, notes: set[str] | None = None) -> list[dict[str, str]]:
    """Split an Anthropic HH transcript into messages that end with a non-empty assistant reply."""
    return _hh_conversation(value, field, where, set() if notes is None else notes, final_may_be_empty=False)


def hh_prompt(value: Any, field: str, where: Where, notes: set[str] | None = None) -> list[dict[str, str]]:
    """The prompt of an HH transcript: every turn before its final Assistant turn, which is not checked.

    What a prompt set needs (the harmless rate answers the prompt itself), so a
    transcript whose reply is empty still gives a valid prompt.
    """
    return _hh_conversation(value, field, where, set() if notes is None else notes, final_may_be_empty=True)[:-1]


# --------------------------------------------------------------------------- one record of each kind

# A record normaliser checks one raw record and returns its normalised form (without an id); it may
# add to ``notes`` what it repaired. Benchmark normalisers keep state across records (unique ids).
Normaliser = Callable[[Mapping[str, Any], Where, set[str]], dict[str, Any]]


def record_id(name: str, position: int) -> str:
    """Stable id from the record's 0-based position in the source, so per-record artifacts can be keyed."""
    return f"{name}-{position:06d}"


def _pair_from_ultrafeedback(record: Mapping[str, Any], where: Where, notes: set[str]) -> tuple[list, list]:
    chosen = _messages(_required(record, "chosen", where), "chosen", where)
    rejected = _messages(_required(record, "rejected", where), "rejected", where)
    _check_turns(chosen, "chosen", where, last="assistant")
    _check_turns(rejected, "rejected", where, last="assistant")
    _check_shared_prompt(chosen, rejected, where, ("rejected", "chosen"))
    return chosen, rejected


def _pair_from_hh(record: Mapping[str, Any], where: Where, notes: set[str]) -> tuple[list, list]:
    chosen = parse_hh(_required(record, "chosen", where), "chosen", where, notes)
    rejected = parse_hh(_required(record, "rejected", where), "rejected", where, notes)
    if len(chosen) != len(rejected):
        raise where.error(
            "rejected",
            f"has {len(rejected)} turns but 'chosen' has {len(chosen)}; they must share all turns but the last",
            "prompt differs from the chosen transcript's",
        )
    for turn, (a, b) in enumerate(zip(chosen[:-1], rejected[:-1], strict=True), start=1):
        if a != b:
            raise where.error(
                "rejected",
                f"turn {turn} differs from 'chosen'; they must share all turns but the last",
                "prompt differs from the chosen transcript's",
            )
    return chosen, rejected


PAIR_READERS: dict[str, Callable[[Mapping[str, Any], Where, set[str]], tuple[list, list]]] = {
    "ultrafeedback": _pair_from_ultrafeedback,
    "hh": _pair_from_hh,
}


def _preference(fmt: str) -> Normaliser:
    def normalise(record: Mapping[str, Any], where: Where, notes: set[str]) -> dict[str, Any]:
        chosen, rejected = PAIR_READERS[fmt](record, where, notes)
        return {
            "prompt": chosen[:-1],
            "chosen": chosen[-1:],
            "rejected": rejected[-1:],
            "score_chosen": _score(record, "score_chosen", where),
            "score_rejected": _score(record, "score_rejected", where),
        }

    return normalise


def _sft(fmt: str) -> Normaliser:
    """The conversation an SFT record trains on: UltraChat's messages, or the chosen side of preference data."""

    def normalise(record: Mapping[str, Any], where: Where, notes: set[str]) -> dict[str, Any]:
        if fmt == "hh":
            return {"messages": parse_hh(_required(record, "chosen", where), "chosen", where, notes)}
        key = "messages" if fmt == "ultrachat" else "chosen"
        messages = _messages(_required(record, key, where), key, where)
        _check_turns(messages, key, where, last="assistant")
        return {"messages": messages}

    return normalise


def _ultrafeedback_prompt(record: Mapping[str, Any], where: Where, with_chosen: bool) -> list[dict[str, str]]:
    """``chosen`` up to its final assistant message (whose content is checked only ``with_chosen``)."""
    value = _required(record, "chosen", where)
    if with_chosen or not isinstance(value, list) or len(value) < 2:
        messages = _messages(value, "chosen", where)
        _check_turns(messages, "chosen", where, last="assistant")
        return messages if with_chosen else messages[:-1]
    final = value[-1]
    if not isinstance(final, Mapping) or final.get("role") != "assistant":
        raise where.error(f"chosen[{len(value) - 1}].role", "the last message must be 'assistant'")
    prompt = _messages(value[:-1], "chosen", where)
    _check_turns(prompt, "chosen", where, last="user")
    return prompt


def _prompts(fmt: str, with_chosen: bool) -> Normaliser:
    """A prompt set's record: the prompt, and the chosen reply when the set keeps it; nothing else is checked."""

    def normalise(record: Mapping[str, Any], where: Where, notes: set[str]) -> dict[str, Any]:
        if fmt == "hh":
            text = _required(record, "chosen", where)
            messages = (
                parse_hh(text, "chosen", where, notes) if with_chosen else hh_prompt(text, "chosen", where, notes)
            )
        else:
            messages = _ultrafeedback_prompt(record, where, with_chosen)
        if with_chosen:
            return {"prompt": messages[:-1], "chosen": messages[-1:]}
        return {"prompt": messages}

    return normalise


def _alpaca_eval() -> Normaliser:
    """alpaca_eval records; instructions must be unique because alpaca_eval joins on them."""
    seen: dict[str, int] = {}

    def normalise(record: Mapping[str, Any], where: Where, notes: set[str]) -> dict[str, Any]:
        clean = {}
        for key in ALPACA_EVAL_FIELDS:
            value = _required(record, key, where)
            if key == "dataset" and isinstance(value, str):
                clean[key] = value  # may legitimately be empty
            else:
                clean[key] = _text(value, key, where)
        if clean["instruction"] in seen:
            raise where.error("instruction", f"duplicate of record {seen[clean['instruction']]}", "duplicate")
        seen[clean["instruction"]] = where.number
        return clean

    return normalise


def _question_id(record: Mapping[str, Any], where: Where, seen: dict[Any, int]) -> int | str:
    """A benchmark question id: a non-negative integer or a non-empty string, unique in the file."""
    qid = _required(record, "question_id", where)
    if isinstance(qid, bool) or not ((isinstance(qid, int) and qid >= 0) or (isinstance(qid, str) and qid.strip())):
        raise where.error(
            "question_id", f"expected a non-negative integer or a non-empty string, got {qid!r}", "not a valid id"
        )
    if qid in seen:
        raise where.error("question_id", f"duplicate of record {seen[qid]}", "duplicate")
    seen[qid] = where.number
    return qid


def _strings(value: Any, field: str, where: Where) -> list[str]:
    if not isinstance(value, list) or not value:
        raise where.error(
            field, f"expected a non-empty list of strings, got {_type_name(value)}", "not a non-empty list of strings"
        )
    return [_text(item, f"{field}[{i}]", where) for i, item in enumerate(value)]


def _list(value: Any, field: str, where: Where) -> list:
    if not isinstance(value, list):
        raise where.error(field, f"expected a list, got {_type_name(value)}", "not a list")
    return value


def _mt_bench() -> Normaliser:
    """FastChat MT-Bench questions (two turns each in MT-Bench; one or two are accepted)."""
    seen: dict[Any, int] = {}

    def normalise(record: Mapping[str, Any], where: Where, notes: set[str]) -> dict[str, Any]:
        clean: dict[str, Any] = {
            "question_id": _question_id(record, where, seen),
            "category": _text(_required(record, "category", where), "category", where),
            "turns": _strings(_required(record, "turns", where), "turns", where),
        }
        if len(clean["turns"]) > 2:
            raise where.error(
                "turns", f"MT-Bench questions have one or two turns, got {len(clean['turns'])}", "more than two turns"
            )
        if record.get("reference") is not None:
            reference = _list(record["reference"], "reference", where)
            for i, text in enumerate(reference):
                if not isinstance(text, str):  # FastChat's own file has an empty one
                    raise where.error(f"reference[{i}]", f"expected a string, got {_type_name(text)}", "not a string")
            clean["reference"] = reference
        return clean

    return normalise


def _arena_hard() -> Normaliser:
    """arena-hard-auto questions: one user turn each, as ``{"content": str}`` or a ``prompt`` string."""
    seen: dict[Any, int] = {}

    def normalise(record: Mapping[str, Any], where: Where, notes: set[str]) -> dict[str, Any]:
        if "uid" in record or "prompt" in record:
            return _arena_hard_prompt(record, where, seen)
        qid = _question_id(record, where, seen)
        turns = _list(_required(record, "turns", where), "turns", where)
        if len(turns) != 1:
            raise where.error("turns", f"arena-hard prompts have exactly one turn, got {len(turns)}", "not one turn")
        if not isinstance(turns[0], Mapping) or "content" not in turns[0]:
            raise where.error("turns[0].content", "missing (each turn is an object with a 'content' string)", "missing")
        clean: dict[str, Any] = {
            "question_id": qid,
            "category": _text(_required(record, "category", where), "category", where),
            "turns": [{"content": _text(turns[0]["content"], "turns[0].content", where)}],
        }
        if record.get("cluster") is not None:
            clean["cluster"] = _text(record["cluster"], "cluster", where)
        return clean

    return normalise


def _arena_hard_prompt(record: Mapping[str, Any], where: Where, seen: dict[Any, int]) -> dict[str, Any]:
    """One question of arena-hard-auto's current layout: ``{uid, category, subcategory?, cluster?, prompt}``."""
    uid = _text(_required(record, "uid", where), "uid", where)
    if uid in seen:
        raise where.error("uid", f"duplicate of record {seen[uid]}", "duplicate uid")
    seen[uid] = where.number
    clean = {"uid": uid, "category": _text(_required(record, "category", where), "category", where)}
    for key in ("subcategory", "cluster"):
        if record.get(key) is not None:
            clean[key] = _text(record[key], key, where)
    clean["prompt"] = _text(_required(record, "prompt", where), "prompt", where)
    return clean


def record_normaliser(kind: str, fmt: str, with_chosen: bool = False) -> Normaliser:
    """The checker of one record of ``kind`` read in ``fmt`` (fresh state for each source)."""
    if fmt not in KIND_FORMATS[kind]:
        raise DataError(f"format {fmt!r} cannot produce {kind} data (use one of {list(KIND_FORMATS[kind])})")
    if with_chosen and kind != "prompts":
        raise DataError(f"with_chosen applies to prompt sets (kind prompts), not to {kind} data")
    makers: dict[str, Callable[[], Normaliser]] = {
        "preference": lambda: _preference(fmt),
        "sft": lambda: _sft(fmt),
        "prompts": lambda: _prompts(fmt, with_chosen),
        "alpaca_eval": _alpaca_eval,
        "mt_bench": _mt_bench,
        "arena_hard": _arena_hard,
    }
    return makers[kind]()


# --------------------------------------------------------------------------- the records a dataset keeps


def normalise(
    reading: Reading,
    kind: str,
    fmt: str,
    *,
    name: str,
    policy: Policy = Policy(),
    limit: int | None = None,
    sample: str = "first",
    seed: int = 0,
    with_chosen: bool = False,
) -> tuple[list[dict[str, Any]], Tally]:
    """Check and normalise every record read (up to ``limit`` kept ones), under ``policy``; returns them and the tally.

    With ``limit``, the first ``limit`` records that are kept, or, with
    ``sample="random"``, a ``seed``-determined random subset of that size of
    all kept records (in source order). Ids reflect positions in the full
    source, so they do not change with ``limit``.
    """
    check = record_normaliser(kind, fmt, with_chosen)
    tally = Tally(policy)
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for position, raw in enumerate(reading.records):
        tally.read += 1
        where = Where(reading.origin, position + 1)
        notes: set[str] = set()
        try:
            if isinstance(raw, DataError):
                raise raw
            record = check(_mapping(raw, where), where, notes)
        except DataError as exc:
            tally.invalid(exc)
            continue
        if kind in ID_KINDS and not _keep(record, kind, tally, seen):
            continue
        tally.repaired.update(notes)
        kept.append({"id": record_id(name, position), **record} if kind in ID_KINDS else record)
        if limit is not None and sample == "first" and len(kept) == limit:
            break
    if tally.read == 0:
        raise DataError(f"{reading.origin}: no records")
    tally.check_fraction(reading.origin)
    if not kept:
        raise DataError(f"{reading.origin}: no record was kept ({describe_counts(tally.skipped)})")
    if limit is not None and sample == "random" and limit < len(kept):
        kept = [kept[i] for i in sorted(random.Random(seed).sample(range(len(kept)), limit))]
    return kept, tally


def _keep(record: Mapping[str, Any], kind: str, tally: Tally, seen: set[str]) -> bool:
    """Count an identical pair and a repeat of an earlier record; False if the policy drops it."""
    if kind == "preference" and record["chosen"] == record["rejected"]:
        tally.identical_pairs += 1
        if tally.policy.drop_identical:
            tally.dropped_identical += 1
            return False
    key = json.dumps(record, sort_keys=True, ensure_ascii=False)
    if key in seen:
        tally.duplicates += 1
        if tally.policy.drop_duplicates:
            tally.dropped_duplicates += 1
            return False
    seen.add(key)
    return True


def manifest(
    name: str, kind: str, reading: Reading, tally: Tally, kept: int, *, limit: int | None, sample: str, seed: int
) -> dict[str, Any]:
    """What was read, kept and left out, and why: written beside the prepared file, read by the tables."""
    return {
        "dataset": name,
        "kind": kind,
        "origin": reading.origin,
        "source": reading.identity,
        "read": tally.read,
        "kept": kept,
        "skipped": dict(sorted(tally.skipped.items())),
        "examples": tally.examples,
        "repaired": dict(sorted(tally.repaired.items())),
        **asdict(tally.policy),
        "identical_pairs": tally.identical_pairs,
        "dropped_identical": tally.dropped_identical,
        "duplicates": tally.duplicates,
        "dropped_duplicates": tally.dropped_duplicates,
        "limit": limit,
        "sample": sample,
        "seed": seed,
    }


def manifest_summary(record: Mapping[str, Any]) -> str:
    """The manifest in a few lines, for the rule's log."""
    lines = [f"{record['dataset']}: read {record['read']}, kept {record['kept']} ({record['origin']})"]
    if record["skipped"]:
        lines.append(f"  skipped (on_invalid: skip): {describe_counts(record['skipped'])}")
        lines += [f"    e.g. {example}" for example in record["examples"]]
    if record["repaired"]:
        lines.append(f"  repaired: {describe_counts(record['repaired'])}")
    for count, dropped, label in (
        ("identical_pairs", "dropped_identical", "pairs with identical responses"),
        ("duplicates", "dropped_duplicates", "repeats of an earlier record"),
    ):
        if record[count]:
            lines.append(f"  {label}: {record[count]} ({record[dropped]} dropped)")
    return "\n".join(lines)


def default_manifest_path(out: str | Path) -> Path:
    """``results/data/hh.jsonl`` -> ``results/data/hh.manifest.json``."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(plain_suffix(out)) + ".manifest.json")


# --------------------------------------------------------------------------- prepare + CLI


def prepare(
    kind: Kind,
    source: Mapping[str, Any],
    out: Path,
    limit: int | None = None,
    seed: int = 0,
    *,
    policy: Policy = Policy(),
    with_chosen: bool = False,
    manifest_out: Path | None = None,
) -> int:
    """Load, validate and normalise ``source`` into ``out`` with its manifest (both atomic); return the record count.

    The manifest (default: beside ``out``, see :func:`default_manifest_path`) is
    written first, so a prepared file never sits beside a stale manifest.
    """
    if kind not in KINDS:
        raise DataError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    fmt = check_source(source, kind)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive integer, got {limit!r}")
    name, sample = source.get("name", fmt), source.get("sample", "first")
    reading = open_source(source)
    records, tally = normalise(
        reading, kind, fmt, name=name, policy=policy, limit=limit, sample=sample, seed=seed, with_chosen=with_chosen
    )
    report = manifest(name, kind, reading, tally, len(records), limit=limit, sample=sample, seed=seed)
    write_json(manifest_out or default_manifest_path(out), report)
    print(manifest_summary(report))
    if kind == "alpaca_eval":
        write_json(out, records)
        return len(records)
    return write_jsonl(out, records)


def parse_json_option(text: str, option: str) -> Any:
    """A JSON command-line value; invalid JSON is a DataError naming the option."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{option}: invalid JSON: {json_problem(exc)}") from None
