"""Reading an evaluator's input files: every record checked, a bad one named by file, record and field.

An evaluator may be handed a file it was not written for (a raw question file,
another benchmark's outputs, the other Arena-Hard version's answers). Each
reader checks the fields it uses with :func:`require` and, when a field is
missing, says what the record looks like instead (:data:`LAYOUTS`), so the
message points at the mix-up rather than at a bare ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from suite.data import DataError, Where, record_normaliser
from suite.io import plain_suffix, read_json, read_jsonl

# Record layouts the suite meets, most specific first: description -> the keys that identify it.
LAYOUTS: dict[str, frozenset[str]] = {
    "an arena-hard-auto answer record (uid, model, messages)": frozenset({"uid", "model", "messages"}),
    "an arena-hard-auto question record (uid, category, prompt)": frozenset({"uid", "category", "prompt"}),
    "a FastChat answer record (question_id, model_id, choices)": frozenset({"question_id", "model_id", "choices"}),
    "a FastChat question record (question_id, category, turns)": frozenset({"question_id", "category", "turns"}),
    "a FastChat judge prompt (name, system_prompt, prompt_template)": frozenset({"name", "prompt_template"}),
    "an alpaca_eval output record (instruction, output, generator)": frozenset({"instruction", "output", "generator"}),
    "an alpaca_eval instruction (instruction)": frozenset({"instruction"}),
    "a harmless/hh_helpful output record (id, prompt, output)": frozenset({"id", "prompt", "output"}),
    "a normalised preference record (prompt, chosen, rejected)": frozenset({"prompt", "chosen", "rejected"}),
    "a raw Anthropic-HH record (chosen, rejected)": frozenset({"chosen", "rejected"}),
}
TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


def layout_of(record: Mapping[str, Any]) -> str | None:
    """The description of the first known layout whose keys the record has, or None."""
    return next((name for name, keys in LAYOUTS.items() if keys <= set(record)), None)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``.json`` list or a ``.jsonl`` file (or its ``.gz``); anything else names the record."""
    path = Path(path)
    records = read_json(path) if plain_suffix(path) == ".json" else read_jsonl(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {number}: expected a JSON object, got {type(record).__name__}")
    return records


def numbered(records: list[dict[str, Any]], origin: str) -> Iterator[tuple[Where, dict[str, Any]]]:
    """Each record with its location (1-based record number) for error messages."""
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise DataError(f"{origin}: record {number}: expected a JSON object, got {type(record).__name__}")
        yield Where(origin, number), record


def require(
    record: Mapping[str, Any], name: str, where: Where, expected: str, kind: type | tuple[type, ...] = str
) -> Any:
    """``record[name]``, checked to be a ``kind``; ``expected`` says what the record should be, for the message."""
    if name not in record:
        looks = layout_of(record)
        hint = f"; the record looks like {looks}, not {expected}" if looks else f" ({expected} needs it)"
        raise where.error(name, f"missing{hint}")
    value = record[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or isinstance(value, bool):
        wanted = " or ".join(TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise where.error(name, f"expected {wanted}, got {type(value).__name__}")
    return value


def normalised_records(path: str | Path, kind: str) -> list[dict[str, Any]]:
    """A prepared file's records checked again by the :mod:`suite.data` normaliser of ``kind`` (a raw file passes too).

    So an evaluator given a file that was not prepared, or was prepared as
    something else, names its file, record and field.
    """
    check = record_normaliser(kind, kind)
    return [check(record, where, set()) for where, record in numbered(read_records(path), str(path))]
