"""A results table (one per experiment): one row per (variant, method), one column per benchmark metric.

Each metric comes with its standard error (a column of its own in the CSV,
"value ± SE" in the markdown).
Numbers made by the offline stand-in judge, or at CPU scale, are labelled as
such in the table itself; a metric that could not be computed shows why.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evals import get_benchmark
from suite.io import atomic_path, read_json


def result_rows(paths: Sequence[Path], run_prefix: str = "") -> tuple[pd.DataFrame, list[str]]:
    """Wide table of all results and its footnotes.

    Paths are results/eval/{run}/{method}/{benchmark}.json; an experiment's run
    is its variant's name behind ``run_prefix`` (suite/experiments.py), which the
    table drops.
    """
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    notes: list[str] = []
    for path in paths:
        run, method, benchmark = path.parts[-3], path.parts[-2], path.stem
        variant = run.removeprefix(run_prefix)
        result = read_json(path)
        row = cells.setdefault((variant, method), {"variant": variant, "method": method})
        module = get_benchmark(benchmark)
        for key, column in module.COLUMNS.items():
            row[column] = result.get(key)
            row[f"{column} SE"] = result.get(module.ERRORS[key])
            reason = result.get(f"{key}_unavailable_reason")
            if result.get(key) is None and reason:
                _add_note(notes, f"{column}: not computed: {reason}")
        judge = f"{result['judge']}" + (
            " (offline stand-in, not a model judge)" if result.get("judge_is_offline") else ""
        )
        _add_note(notes, f"{benchmark}: judge {judge}; n = {result['n']}")
    table = pd.DataFrame(list(cells.values())).sort_values(["variant", "method"]).reset_index(drop=True)
    return table, notes


def _add_note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def to_markdown(table: pd.DataFrame, notes: Sequence[str], scale: str, title: str = "Main results") -> str:
    """A markdown table with its provenance, readable without opening the CSV."""
    columns = [c for c in table.columns if not c.endswith(" SE")]
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [header, rule]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row[c], row.get(f"{c} SE")) for c in columns) + " |")
    heading = f"# {title}" + (" (CPU scale: tiny models and shipped data, not paper numbers)" if scale == "cpu" else "")
    return "\n".join([heading, "", *lines, "", *(f"- {n}" for n in notes), ""])


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _cell(value: Any, error: Any = None) -> str:
    if _missing(value):
        return "n/a"
    if not isinstance(value, float):
        return str(value)
    return f"{value:.2f}" if _missing(error) else f"{value:.2f} ± {error:.2f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m suite.aggregate", description=__doc__)
    parser.add_argument("--results", type=Path, nargs="+", required=True)
    parser.add_argument("--scale", choices=["cpu", "paper"], required=True)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--md", type=Path, required=True)
    parser.add_argument("--title", default="Main results", help="the markdown table's title")
    parser.add_argument("--run-prefix", default="", help="what run names add to the variant's (dropped)")
    args = parser.parse_args(argv)
    table, notes = result_rows(args.results, args.run_prefix)
    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(args.md) as tmp:
        tmp.write_text(to_markdown(table, notes, args.scale, args.title))


if __name__ == "__main__":
    main()
