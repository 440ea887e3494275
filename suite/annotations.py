"""Reading the per-item annotation files the benchmarks write, for the tables' paired statistics.

Each benchmark module's ``item_scores(annotations_path)`` turns its own
annotation layout into one outcome per item; this module holds the checks they
share, so a malformed file fails naming the file, the record and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from suite.io import read_json


def annotation_records(path: str | Path, fields: Sequence[str]) -> list[dict[str, Any]]:
    """The records of an annotations JSON list, each checked to carry ``fields``."""
    records = read_json(path)
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of annotation records, got {type(records).__name__}")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ValueError(f"{path}: record {number}: expected an object, got {type(record).__name__}")
        for field in fields:
            if field not in record:
                raise ValueError(f"{path}: record {number}: field {field!r} is missing")
    return records
