"""Every table of one experiment: the flat per-run table and the paper's (``pipeline.tables``).

The flat table (``results/tables/<experiment>.csv``, ``.md``) is the
machine-readable source: one row per (variant, method, seed), one column per
benchmark metric with its standard error in a column of its own, and per
benchmark the items scored (``n``), the items expected, whether the result is
partial and the mean response length in characters and tokens. Numbers made
by the offline stand-in judge, or at CPU scale, are labelled as such; a
metric that could not be computed shows why.

Beside it, with ``--paper-prefix``: Table 1 (``<prefix>_table1``), every
method against the control (``<prefix>_vs_dpo``), the treatment's own small
table (``<prefix>_aao_vs_dpo``), each as markdown, LaTeX, HTML and CSV, and
all paired comparisons in ``<prefix>_comparisons.csv`` (read by
``pipeline.claims``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evals import get_benchmark
from pipeline.lengths import item_lengths, token_counter
from pipeline.published import load_published
from pipeline.tables import (
    Bootstrap,
    Context,
    Score,
    Table,
    against_control_table,
    comparisons,
    judge_notes,
    load_scores,
    partial_notes,
    table_one,
    treatment_table,
)
from suite.io import atomic_path, read_json


def result_rows(
    paths: Sequence[Path],
    run_prefix: str = "",
    runs: Mapping[str, Mapping[str, Any]] | None = None,
    lengths: Mapping[Path, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The flat table of all results and its footnotes.

    Paths are results/eval/{run}/{method}/{benchmark}.json; ``runs`` maps a
    run to its variant and seed (else the run, less ``run_prefix``, is the
    variant: suite/experiments.py); ``lengths`` holds each result's per-item
    response lengths.
    """
    return score_rows(load_scores(paths, runs, run_prefix), lengths)


def score_rows(
    scores: Sequence[Score], lengths: Mapping[Path, pd.DataFrame] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """:func:`result_rows` of results already read."""
    cells: dict[tuple[str, str, Any], dict[str, Any]] = {}
    for s in scores:
        row = cells.setdefault((s.variant, s.method, s.seed), {"variant": s.variant, "method": s.method})
        if s.seed is not None:
            row["seed"] = s.seed
        module = get_benchmark(s.benchmark)
        for key, column in module.COLUMNS.items():
            row[column] = s.result.get(key)
            row[f"{column} SE"] = s.result.get(module.ERRORS[key])
        row.update({f"{s.benchmark} n": s.n, f"{s.benchmark} n_expected": s.n_expected})
        row[f"{s.benchmark} partial"] = s.partial
        if lengths and s.path in lengths:
            row[f"{s.benchmark} chars"] = lengths[s.path]["chars"].mean()
            row[f"{s.benchmark} tokens"] = lengths[s.path]["tokens"].mean()
    keys = ["variant", "method", "seed"] if any(s.seed is not None for s in scores) else ["variant", "method"]
    table = pd.DataFrame(list(cells.values())).sort_values(keys).reset_index(drop=True)
    return table, judge_notes(scores) + partial_notes(scores)


CSV_ONLY_SUFFIXES = (" SE", " n", " n_expected", " partial")  # the markdown shows SEs as "± SE" and no counts


def to_markdown(table: pd.DataFrame, notes: Sequence[str], scale: str, title: str = "Main results") -> str:
    """The flat table as markdown with its provenance, readable without opening the CSV."""
    return flat_table(table, notes, scale, title).to_markdown()


def flat_table(table: pd.DataFrame, notes: Sequence[str], scale: str, title: str) -> Table:
    """The flat table's cells: value ± SE, and "(partial n/N)" in the cells of a partial result."""
    columns = [c for c in table.columns if not c.endswith(CSV_ONLY_SUFFIXES)]
    benchmarks = [c.removesuffix(" partial") for c in table.columns if c.endswith(" partial")]
    benchmark_of = {label: b for b in benchmarks for label in get_benchmark(b).COLUMNS.values()}
    rows = []
    for _, row in table.iterrows():
        cells = []
        for c in columns:
            text, b = _cell(row[c], row.get(f"{c} SE")), benchmark_of.get(c)
            if b and _flag(row.get(f"{b} partial")) and text != "n/a":
                text += f" (partial {row[f'{b} n']}/{row[f'{b} n_expected']})"
            cells.append(text)
        rows.append(cells)
    heading = title + (" (CPU scale: tiny models and shipped data, not paper numbers)" if scale == "cpu" else "")
    return Table(heading, columns, rows, list(notes), label="flat")


def _flag(value: Any) -> bool:
    return not _missing(value) and bool(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _cell(value: Any, error: Any = None) -> str:
    if _missing(value):
        return "n/a"
    if not isinstance(value, float):
        return str(value)
    return f"{value:.2f}" if _missing(error) else f"{value:.2f} ± {error:.2f}"


def response_lengths(scores: Sequence[Score]) -> dict[Path, pd.DataFrame]:
    """Per result: its answers' per-item lengths (chars, and tokens of the model's own tokenizer)."""
    counters: dict[Path, Any] = {}
    out = {}
    for s in scores:
        generations, model = s.files("generations", f"{s.benchmark}.json"), s.files("train", "model")
        if not generations.exists() or not model.exists():
            continue
        if model not in counters:
            counters[model] = token_counter(model)
        out[s.path] = item_lengths(generations, counters[model])
    return out


def manifest_notes(paths: Sequence[Path]) -> list[str]:
    """Datasets feeding the experiment that skipped records: how many of how many, and why."""
    notes = []
    for path in paths:
        manifest = read_json(path)
        skipped = manifest.get("skipped") or {}
        if sum(skipped.values()):
            why = ", ".join(f"{reason}: {count}" for reason, count in skipped.items())
            notes.append(
                f"Data {manifest.get('dataset', path.stem)}: {sum(skipped.values())} of {manifest.get('read')} "
                f"records skipped ({why}); {manifest.get('kept')} kept."
            )
    return notes


def write_table(table: Table, prefix: Path, tidy: pd.DataFrame | None = None) -> None:
    """A table as markdown, LaTeX and HTML (and its tidy CSV), each written atomically."""
    for suffix, text in ((".md", table.to_markdown()), (".tex", table.to_latex()), (".html", table.to_html())):
        with atomic_path(prefix.with_name(prefix.name + suffix)) as tmp:
            tmp.write_text(text, encoding="utf-8")
    if tidy is not None:
        write_csv(tidy, prefix.with_name(prefix.name + ".csv"))


def write_csv(frame: pd.DataFrame, path: Path, float_format: str | None = None) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format)


def paper_tables(args: argparse.Namespace, scores: Sequence[Score], lengths: Mapping[Path, pd.DataFrame]) -> None:
    """Table 1, every method against the control, the treatment's own table and the comparisons CSV."""
    published = load_published(args.published)
    context = Context(args.scale, published, json.loads(args.models))
    prefix = args.paper_prefix
    table, tidy = table_one(scores, context, args.title, args.treatment)
    table.notes += manifest_notes(args.manifests)
    write_table(table, prefix.with_name(prefix.name + "_table1"), tidy)
    settings = Bootstrap(**json.loads(args.bootstrap))
    compared = comparisons(scores, lengths, args.control, settings)
    write_csv(compared, prefix.with_name(prefix.name + "_comparisons.csv"))
    vs = against_control_table(compared, published, f"{args.title}: every method − DPO", args.control, args.treatment)
    write_table(vs, prefix.with_name(prefix.name + "_vs_dpo"))
    own = treatment_table(compared, published, f"{args.title}: AAO − DPO", args.control, args.treatment)
    write_table(own, prefix.with_name(prefix.name + "_aao_vs_dpo"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.aggregate", description=__doc__)
    parser.add_argument("--results", type=Path, nargs="+", required=True)
    parser.add_argument("--scale", choices=["cpu", "paper"], required=True)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--md", type=Path, required=True)
    parser.add_argument("--html", type=Path, help="the flat table as a page (for the report)")
    parser.add_argument("--title", default="Main results", help="the tables' title")
    parser.add_argument("--run-prefix", default="", help="what run names add to the variant's (dropped)")
    parser.add_argument("--runs", default="{}", help='JSON: run name -> {"variant", "seed"}')
    parser.add_argument("--paper-prefix", type=Path, help="write the paper's tables to <prefix>_table1.md etc.")
    parser.add_argument("--published", type=Path, default=Path("workflow/resources/published.yaml"))
    parser.add_argument("--manifests", type=Path, nargs="*", default=[], help="data manifests feeding the experiment")
    parser.add_argument("--models", default="{}", help="JSON: variant -> the hub model it trains")
    parser.add_argument("--bootstrap", default="{}", help='JSON: {"rounds", "seed", "confidence"}')
    parser.add_argument("--control", default="dpo")
    parser.add_argument("--treatment", default="aao")
    args = parser.parse_args(argv)
    runs = json.loads(args.runs) or None
    scores = load_scores(args.results, runs, args.run_prefix)
    lengths = response_lengths(scores) if args.paper_prefix else {}
    table, notes = score_rows(scores, lengths)
    write_csv(table, args.csv, "%.4f")
    flat = flat_table(table, notes, args.scale, args.title)
    with atomic_path(args.md) as tmp:
        tmp.write_text(flat.to_markdown())
    if args.html:
        with atomic_path(args.html) as tmp:
            tmp.write_text(flat.to_html())
    if args.paper_prefix:
        paper_tables(args, scores, lengths)


if __name__ == "__main__":
    main()
