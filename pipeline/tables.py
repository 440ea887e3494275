"""The paper's tables: Table 1 in its layout with published numbers beside ours, and every method against DPO.

Inputs are the result files of one experiment (``results/eval/<run>/<method>/<benchmark>.json``
with their ``.annotations.json``), the runs' variants and seeds, response
lengths, the training histories (squeezing diagnostic) and the published
numbers (:mod:`pipeline.published`). Outputs are :class:`Table` objects, rendered
the same way to markdown, LaTeX (booktabs) and HTML, each with a tidy CSV
that holds every number of its cells.

* **Table 1** (SimPO's layout): methods as rows, for each setting (variant)
  each benchmark column. A cell is our mean over seeds ``± SE`` (seed
  variance included, :func:`suite.stats.combine_seeds`), ``(partial n/N)``
  when a result scored fewer items than its prompt set has, and where a
  number was published: ``· pub X · Δ D`` (ours minus published) with marks:
  ``†`` published on another base model than the setting's, ``‡`` not
  comparable at this scale or with this judge, ``§`` a published number that
  exists but is not available to us.
* **Every method against the control (DPO)**: the paired bootstrap over
  items (:mod:`suite.stats`) of the per-item outcomes' difference, per
  setting and benchmark, with the unpaired interval beside it in the CSV.
  The treatment (AAO) gets its own small table, with response length (% of
  DPO's, tokens) and the squeezing diagnostic (top-token probability, in
  percentage points) beside the scores.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evals import get_benchmark
from pipeline.published import LENGTH, SQUEEZING, Published, PublishedResult
from suite.history_keys import FINAL
from suite.io import read_json
from suite.stats import Interval, bootstrap_difference, combine_seeds

METHOD_LABELS = {
    "aao": "AAO",
    "dpo": "DPO",
    "dpo_random": "DPO-Random",
    "ipo": "IPO",
    "kto": "KTO",
    "simpo": "SimPO",
    "tdpo": "TDPO",
    "tis_dpo": "TIS-DPO",
    "rto": "RTO",
}


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


# --------------------------------------------------------------------------- a table and its renderings


@dataclass
class Table:
    """Rows of text cells under one or two header rows (``groups``: labels spanning columns after the first)."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    groups: list[tuple[str, int]] = field(default_factory=list)
    label: str = "table"

    def header(self) -> list[str]:
        """One header row: each column under its group's label."""
        if not self.groups:
            return self.columns
        spanned = [self.columns[0]]
        for (group, span), start in zip(self.groups, _starts(self.groups), strict=True):
            spanned += [f"{group}<br>{c}" for c in self.columns[start : start + span]]
        return spanned

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", "| " + " | ".join(self.header()) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in self.rows]
        return "\n".join([*lines, "", *(f"- {n}" for n in self.notes), ""])

    def to_latex(self) -> str:
        """A booktabs ``table*`` ready to paste (needs only the booktabs package)."""
        out = [
            "\\begin{table*}[t]",
            "\\centering",
            "\\scriptsize",
            "\\setlength{\\tabcolsep}{3pt}",
            "\\begin{tabular}{l" + "c" * (len(self.columns) - 1) + "}",
            "\\toprule",
        ]
        if self.groups:
            spans = [f"\\multicolumn{{{span}}}{{c}}{{{latex(group)}}}" for group, span in self.groups]
            out.append(" & " + " & ".join(spans) + " \\\\")
            out.append(
                " ".join(
                    f"\\cmidrule(lr){{{s + 1}-{s + span}}}"
                    for (_, span), s in zip(self.groups, _starts(self.groups), strict=True)
                )
            )
        out.append(" & ".join(latex(c) for c in self.columns) + " \\\\")
        out.append("\\midrule")
        out += [" & ".join(latex(cell) for cell in row) + " \\\\" for row in self.rows]
        out += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{latex(self.title)}}}", f"\\label{{tab:{self.label}}}"]
        if self.notes:
            body = " \\\\\n".join(latex(n) for n in self.notes)
            out.append(f"\\par\\smallskip\\parbox{{\\textwidth}}{{\\raggedright\\tiny\n{body}}}")
        out.append("\\end{table*}")
        return "\n".join(out) + "\n"

    def to_html(self) -> str:
        """A self-contained page (no scripts, no external resources), as the report embeds it."""
        head = ""
        if self.groups:
            head += "<tr><th></th>" + "".join(f'<th colspan="{span}">{html.escape(g)}</th>' for g, span in self.groups)
            head += "</tr>"
        head += "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in self.columns) + "</tr>"
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
            f'<table class="aao-table"><thead>{head}</thead><tbody>{body}</tbody></table>'
            f"<ul>{notes}</ul></body></html>\n"
        )


STYLE = (
    "body{font-family:sans-serif;font-size:13px;margin:12px}"
    "table{border-collapse:collapse}th,td{border:1px solid #bbb;padding:3px 6px;text-align:center}"
    "td:first-child{text-align:left;font-weight:bold}h1{font-size:16px}li{margin:2px 0}"
)
LATEX_CHARS = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
    "±": "$\\pm$",
    "−": "$-$",
    "–": "--",
    "Δ": "$\\Delta$",
    "†": "$^{\\dagger}$",
    "‡": "$^{\\ddagger}$",
    "§": "\\S{}",
    "·": "$\\cdot$",
    "≥": "$\\geq$",
    "≤": "$\\leq$",
    "√": "$\\surd$",
    "²": "$^2$",
}


def latex(text: str) -> str:
    """Text as LaTeX: specials escaped, the tables' symbols as math; anything else non-ASCII is dropped."""
    out = []
    i = 0
    while i < len(text):
        if text.startswith("<br>", i):
            out.append(" ")
            i += 4
            continue
        char = text[i]
        out.append(LATEX_CHARS.get(char, char if char.isascii() else "?"))
        i += 1
    return "".join(out)


def _starts(groups: Sequence[tuple[str, int]]) -> list[int]:
    starts, position = [], 1
    for _, span in groups:
        starts.append(position)
        position += span
    return starts


def number(value: float | None, digits: int = 1, sign: bool = False) -> str:
    """A number as the tables print it: fixed digits, a real minus sign, n/a for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return text.replace("-", "−")


def interval_text(interval: Interval, digits: int = 1) -> str:
    mark = "*" if interval.excludes(0.0) else ""
    low, high = number(interval.low, digits, sign=True), number(interval.high, digits, sign=True)
    return f"{number(interval.estimate, digits, sign=True)} [{low}, {high}]{mark}"


# --------------------------------------------------------------------------- results of one experiment


@dataclass(frozen=True)
class Score:
    """One run's result on one benchmark: a model (variant, method, seed) and the files beside its result."""

    variant: str
    method: str
    seed: int | None
    benchmark: str
    result: Mapping[str, Any]
    path: Path

    @property
    def annotations(self) -> Path:
        return self.path.with_name(f"{self.benchmark}.annotations.json")

    def files(self, stage: str, name: str) -> Path:
        """A sibling stage's file of the same model: results/<stage>/<run>/<method>/<name>."""
        return self.path.parents[3] / stage / self.path.parts[-3] / self.path.parts[-2] / name

    @property
    def n(self) -> int | None:
        return self.result.get("n")

    @property
    def n_expected(self) -> int | None:
        return self.result.get("n_expected", self.n)

    @property
    def partial(self) -> bool:
        return bool(self.result.get("partial"))


def load_scores(
    paths: Sequence[Path], runs: Mapping[str, Mapping[str, Any]] | None = None, run_prefix: str = ""
) -> list[Score]:
    """The results, each with its run's variant and seed (``runs``: run name -> {variant, seed})."""
    scores = []
    for path in map(Path, paths):
        run, method, benchmark = path.parts[-3], path.parts[-2], path.stem
        info = (runs or {}).get(run, {"variant": run.removeprefix(run_prefix), "seed": None})
        scores.append(Score(info["variant"], method, info["seed"], benchmark, read_json(path), path))
    return scores


def paired_key(benchmark: str) -> str:
    """The result key that ``item_scores`` averages to: the benchmark's last column (its only one, or WR)."""
    return list(get_benchmark(benchmark).COLUMNS)[-1]


def ordered(names: Sequence[str], first: Sequence[str]) -> list[str]:
    """``names`` in the order of ``first`` where listed there, the rest after in their own order."""
    return [n for n in first if n in names] + [n for n in names if n not in first]


def row_methods(methods: Iterable[str], treatment: str) -> list[str]:
    """Methods in the order they were configured (first seen), the paper's own method last (as in its Table 1)."""
    seen = list(dict.fromkeys(methods))
    return [m for m in seen if m != treatment] + [m for m in seen if m == treatment]


# --------------------------------------------------------------------------- Table 1


@dataclass
class CellValue:
    value: float | None
    error: float | None
    seeds: list[int | None]
    partial: list[Score]


def cell_value(scores: Sequence[Score], key: str, error_key: str) -> CellValue:
    """Mean over the seeds that have the value, with the seed-combined standard error."""
    have = [s for s in scores if s.result.get(key) is not None]
    if not have:
        return CellValue(None, None, [], [])
    value, error = combine_seeds([s.result[key] for s in have], [s.result.get(error_key) for s in have])
    return CellValue(value, error, [s.seed for s in have], [s for s in have if s.partial])


@dataclass
class Context:
    """What Table 1 needs besides the scores: scale, the published numbers and the settings' models."""

    scale: str
    published: Published
    models: Mapping[str, str] = field(default_factory=dict)  # variant -> the model it trains (hub id), where known

    def setting_model(self, variant: str) -> str | None:
        if variant in self.models:
            return self.models[variant]
        setting = self.published.settings.get(variant)
        return setting.model if setting else None


def published_marks(published: PublishedResult, variant: str, scores: Sequence[Score], context: Context) -> str:
    marks = ""
    model = context.setting_model(variant)
    if model and published.base_model != model:
        marks += "†"
    if context.scale != "paper" or any(s.result.get("judge_is_offline") for s in scores):
        marks += "‡"
    return marks


def published_part(value: float | None, published: float, marks: str) -> str:
    diff = None if value is None else value - published
    return f" · pub {number(published)} · Δ {number(diff, sign=True)}{marks}"


def cell_text(cell: CellValue, published: str = "") -> str:
    if cell.value is None:
        return "n/a" + published
    text = number(cell.value) + ("" if cell.error is None else f" ± {number(cell.error)}")
    for score in cell.partial:
        text += f" (partial {score.n}/{score.n_expected})"
    return text + published


def table_one(
    scores: Sequence[Score], context: Context, title: str, treatment: str = "aao"
) -> tuple[Table, pd.DataFrame]:
    """Table 1 in the paper's layout, and its tidy CSV (one row per cell, every number)."""
    published = context.published
    variants = ordered(list(dict.fromkeys(s.variant for s in scores)), list(published.settings))
    benchmarks = list(dict.fromkeys(s.benchmark for s in scores))
    columns = [(b, key, label) for b in benchmarks for key, label in get_benchmark(b).COLUMNS.items()]
    by_cell = grouped(scores)
    rows, tidy = [], []
    for method in row_methods((s.method for s in scores), treatment):
        row = [method_label(method)]
        for variant in variants:
            for benchmark, key, label in columns:
                runs = by_cell.get((variant, method, benchmark), [])
                cell = cell_value(runs, key, get_benchmark(benchmark).ERRORS[key])
                pub = published.result(variant, method)
                pub_value = pub.values.get(f"{benchmark}/{key}") if pub else None
                marks = published_marks(pub, variant, runs, context) if pub_value is not None else ""
                extra = published_part(cell.value, pub_value, marks) if pub_value is not None else ""
                if pub_value is None and published.unavailable_reason(variant, method, benchmark) and runs:
                    extra = " · pub n/a§"
                text = cell_text(cell, extra) if runs else "—"
                row.append(text)
                tidy.append(
                    {
                        "setting": variant,
                        "setting_label": published.label(variant),
                        "method": method,
                        "benchmark": benchmark,
                        "metric": key,
                        "column": label,
                        "value": cell.value,
                        "se": cell.error,
                        "seeds": " ".join(str(s) for s in cell.seeds),
                        "n": min((s.n for s in runs if s.n is not None), default=None),
                        "n_expected": max((s.n_expected for s in runs if s.n_expected is not None), default=None),
                        "partial": bool(cell.partial),
                        "published": pub_value,
                        "diff": None if pub_value is None or cell.value is None else cell.value - pub_value,
                        "published_model": pub.model if pub_value is not None else None,
                        "published_base_model": pub.base_model if pub_value is not None else None,
                        "published_source": pub.source if pub_value is not None else None,
                        "marks": marks,
                        "cell": text,
                    }
                )
        rows.append(row)
    groups = [(published.label(v), len(columns)) for v in variants]
    table = Table(
        title=title,
        columns=["Method", *([label for _, _, label in columns] * len(variants))],
        rows=rows,
        notes=table_notes(scores, context, tidy),
        groups=groups,
        label="table1",
    )
    return table, pd.DataFrame(tidy)


def table_notes(scores: Sequence[Score], context: Context, tidy: Sequence[Mapping[str, Any]]) -> list[str]:
    """What a reader needs under Table 1: scale, seeds, judges and n, partial results, published provenance."""
    notes = []
    if context.scale == "cpu":
        notes.append(
            "CPU scale: tiny random-init models, shipped data and the offline stand-in judge; not paper numbers, "
            "and published numbers beside them are not comparable (‡)."
        )
    seeds = sorted({s.seed for s in scores if s.seed is not None})
    if len(seeds) > 1:
        notes.append(
            f"Each cell is the mean over seeds {', '.join(map(str, seeds))}; ± is its standard error with seed "
            "variance: √(mean of the seeds' SE² + s²/S), s the seeds' standard deviation, S their number."
        )
    else:
        notes.append(f"One seed ({', '.join(map(str, seeds)) or 'the training seed'}); ± is the benchmark's own SE.")
    notes += judge_notes(scores)
    notes += partial_notes(scores)
    notes += published_notes(context, tidy)
    return notes


def judge_notes(scores: Sequence[Score]) -> list[str]:
    notes: dict[str, None] = {}
    for s in scores:
        r = s.result
        offline = " (offline stand-in, not a model judge)" if r.get("judge_is_offline") else ""
        notes[f"{s.benchmark}: judge {r.get('judge')}{offline}; n = {s.n_expected} items"] = None
        for key, label in get_benchmark(s.benchmark).COLUMNS.items():
            reason = r.get(f"{key}_unavailable_reason")
            if r.get(key) is None and reason:
                notes[f"{label}: not computed: {reason}"] = None
    return list(notes)


def partial_notes(scores: Sequence[Score]) -> list[str]:
    notes = []
    for s in scores:
        if not s.partial:
            continue
        missing = s.result.get("missing") or {}
        why = ", ".join(f"{reason}: {count}" for reason, count in missing.items()) or s.result.get("partial_note", "")
        lost = (s.n_expected or 0) - (s.n or 0)
        model = f"{s.variant}/{method_label(s.method)}" + (f", seed {s.seed}" if s.seed is not None else "")
        notes.append(f"Partial: {model}, {s.benchmark}: {lost} of {s.n_expected} items missing ({why})")
    return notes


def published_notes(context: Context, tidy: Sequence[Mapping[str, Any]]) -> list[str]:
    published = context.published
    shown = {(c["setting"], c["method"]) for c in tidy if c["published"] is not None}
    notes = []
    for source in sorted({c["published_source"] for c in tidy if c["published_source"]}):
        notes.append(f"pub: {published.cite(source)}.")
    for setting, method in sorted(shown):
        entry = published.result(setting, method)
        assert entry is not None
        line = f"{published.label(setting)}/{method_label(method)} pub: measured on {entry.model}"
        line += f" (base {entry.base_model})"
        model = context.setting_model(setting)
        if model and entry.base_model != model:
            line += f"; † not {model}, the setting's model"
        notes.append(line + ".")
    if any("‡" in c["marks"] for c in tidy):
        notes.append(
            "‡ not comparable: " + ("CPU scale and offline judge." if context.scale == "cpu" else "offline judge.")
        )
    reasons = {
        published.unavailable_reason(c["setting"], c["method"], c["benchmark"]) for c in tidy if "§" in c["cell"]
    }
    notes += [f"§ {reason}." for reason in sorted(r for r in reasons if r)]
    return notes


# --------------------------------------------------------------------------- paired comparisons against the control


def grouped(scores: Sequence[Score]) -> dict[tuple[str, str, str], list[Score]]:
    by: dict[tuple[str, str, str], list[Score]] = defaultdict(list)
    for s in scores:
        by[(s.variant, s.method, s.benchmark)].append(s)
    return by


def item_outcomes(runs: Sequence[Score]) -> list[pd.Series] | None:
    """Each seed's per-item outcomes, or None where the benchmark has none."""
    try:
        return [get_benchmark(s.benchmark).item_scores(s.annotations) for s in runs]
    except NotImplementedError:
        return None


@dataclass(frozen=True)
class Bootstrap:
    rounds: int = 2000
    seed: int = 0
    confidence: float = 0.95


def compare(
    treatment: Sequence[pd.Series], control: Sequence[pd.Series], settings: Bootstrap, relative: bool = False
) -> dict[str, Any]:
    """The paired interval and, for comparison, the unpaired one."""
    kwargs = {"rounds": settings.rounds, "seed": settings.seed, "confidence": settings.confidence, "relative": relative}
    paired = bootstrap_difference(treatment, control, **kwargs)
    unpaired = bootstrap_difference(treatment, control, paired=False, **kwargs)
    return {
        "estimate": paired.estimate,
        "low": paired.low,
        "high": paired.high,
        "n_items": paired.n_items,
        "unpaired_low": unpaired.low,
        "unpaired_high": unpaired.high,
    }


def squeezing_outcomes(runs: Sequence[Score]) -> list[pd.Series] | None:
    """Each seed's final top-token probability per held-out pair, in %, from its training history."""
    out = []
    for s in runs:
        path = s.files("train", "log_history.json")
        final = [h[FINAL] for h in read_json(path) if FINAL in h] if path.exists() else []
        if not final:
            return None
        out.append(100 * pd.Series(final[-1], dtype=float))
    return out


COMPARISON_COLUMNS = [
    "setting", "method", "control", "seeds", "control_seeds", "benchmark", "metric", "label", "unit",
    "estimate", "low", "high", "n_items", "unpaired_low", "unpaired_high",
]  # fmt: skip


def comparisons(
    scores: Sequence[Score],
    lengths: Mapping[Path, pd.DataFrame],
    control: str,
    settings: Bootstrap,
) -> pd.DataFrame:
    """Every method minus ``control`` per setting: each benchmark's paired metric, response length, squeezing."""
    by = grouped(scores)
    rows = []
    control_items: dict[tuple[str, str], list[pd.Series] | None] = {}  # read once, compared with every method
    for (variant, method, benchmark), runs in by.items():
        base = by.get((variant, control, benchmark))
        if method == control or not base:
            continue
        row = {"setting": variant, "method": method, "control": control, "seeds": len(runs), "control_seeds": len(base)}
        outcomes = item_outcomes(runs)
        if (variant, benchmark) not in control_items:
            control_items[(variant, benchmark)] = item_outcomes(base)
        control_outcomes = control_items[(variant, benchmark)]
        if outcomes and control_outcomes:
            key = paired_key(benchmark)
            label = get_benchmark(benchmark).COLUMNS[key]
            rows.append({**row, "benchmark": benchmark, "metric": key, "label": label, "unit": "points",
                         **compare(outcomes, control_outcomes, settings)})  # fmt: skip
        if all(s.path in lengths for s in [*runs, *base]):
            tokens = [lengths[s.path]["tokens"] for s in runs]
            control_tokens = [lengths[s.path]["tokens"] for s in base]
            rows.append({**row, "benchmark": f"{LENGTH}{benchmark}", "metric": "tokens", "unit": "% of control",
                         "label": f"Length {get_benchmark(benchmark).COLUMNS[paired_key(benchmark)].split()[0]}",
                         **compare(tokens, control_tokens, settings, relative=True)})  # fmt: skip
    rows += squeezing_rows(by, control, settings)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def squeezing_rows(
    by: Mapping[tuple[str, str, str], Sequence[Score]], control: str, settings: Bootstrap
) -> list[dict[str, Any]]:
    """Per (setting, method): the final top-token probability minus the control's, over the same held-out pairs."""
    models: dict[tuple[str, str], Sequence[Score]] = {}
    for (variant, method, _), runs in by.items():
        models.setdefault((variant, method), runs)
    rows = []
    control_outcomes: dict[str, list[pd.Series] | None] = {}  # read once, compared with every method
    for (variant, method), runs in models.items():
        base = models.get((variant, control))
        if method == control or base is None:
            continue
        mine = squeezing_outcomes(runs)
        if variant not in control_outcomes:
            control_outcomes[variant] = squeezing_outcomes(base)
        theirs = control_outcomes[variant]
        if mine and theirs:
            rows.append({"setting": variant, "method": method, "control": control, "seeds": len(mine),
                         "control_seeds": len(theirs), "benchmark": SQUEEZING, "metric": "top_prob",
                         "label": "Top-token prob", "unit": "points", **compare(mine, theirs, settings)})  # fmt: skip
    return rows


def against_control_table(
    compared: pd.DataFrame, published: Published, title: str, control: str, treatment: str
) -> Table:
    """Every method minus the control: rows methods, per setting the paired difference of each benchmark."""
    scored = compared[~compared["benchmark"].str.startswith(LENGTH) & (compared["benchmark"] != SQUEEZING)]
    variants = ordered(list(dict.fromkeys(scored["setting"])), list(published.settings))
    benchmarks = list(dict.fromkeys(scored["benchmark"]))
    labels = [scored[scored["benchmark"] == b]["label"].iloc[0] for b in benchmarks]
    rows = []
    for method in row_methods(scored["method"], treatment):
        row = [f"{method_label(method)} − {method_label(control)}"]
        for variant in variants:
            for benchmark in benchmarks:
                match = scored[
                    (scored["setting"] == variant) & (scored["method"] == method) & (scored["benchmark"] == benchmark)
                ]
                row.append(interval_text(_interval(match.iloc[0])) if len(match) else "—")
        rows.append(row)
    return Table(
        title=title,
        columns=["Method", *(labels * len(variants))],
        rows=rows,
        notes=comparison_notes(scored, control),
        groups=[(published.label(v), len(benchmarks)) for v in variants],
        label="vs_dpo",
    )


def _interval(row: Mapping[str, Any]) -> Interval:
    return Interval(row["estimate"], row["low"], row["high"], int(row["n_items"]))


def comparison_notes(compared: pd.DataFrame, control: str) -> list[str]:
    notes = [
        f"Each cell: the difference to {method_label(control)} with its paired 95% bootstrap interval over the "
        "same prompts (questions for MT-Bench, prompts for the harmless rate; Arena-Hard resamples questions "
        "with their battles); * the interval excludes 0.",
    ]
    widths = [
        f"{label} {number((part['high'] - part['low']).median(), 2)} paired, "
        f"{number((part['unpaired_high'] - part['unpaired_low']).median(), 2)} unpaired"
        for label, part in compared.groupby("label", sort=False)
    ]
    if widths:
        notes.append(f"Median interval width: {'; '.join(widths)} (unpaired: each model's items resampled on its own).")
    if (compared["seeds"] > 1).any() or (compared["control_seeds"] > 1).any():
        notes.append("With several seeds each round also resamples each model's seeds, so seed variance is included.")
    return notes


def treatment_table(compared: pd.DataFrame, published: Published, title: str, control: str, treatment: str) -> Table:
    """The treatment minus the control, one row per setting: every benchmark, response length, squeezing."""
    mine = compared[compared["method"] == treatment]
    variants = ordered(list(dict.fromkeys(mine["setting"])), list(published.settings))
    kinds = list(dict.fromkeys(mine["benchmark"]))
    labels = [_kind_label(mine[mine["benchmark"] == k].iloc[0]) for k in kinds]
    rows = []
    for variant in variants:
        row = [published.label(variant)]
        for kind in kinds:
            match = mine[(mine["setting"] == variant) & (mine["benchmark"] == kind)]
            digits = 2 if kind == SQUEEZING else 1  # probability differences of a few hundredths of a point
            row.append(interval_text(_interval(match.iloc[0]), digits) if len(match) else "—")
        rows.append(row)
    notes = [
        f"{method_label(treatment)} minus {method_label(control)} with paired 95% bootstrap intervals; * excludes 0.",
        "Length: mean response length in the model's tokens, in % of the control's (paired over prompts; n/a "
        "where the control's answers are empty).",
        "Top-token prob: the policy's mean probability of its top token on held-out responses at the end of "
        "training, in percentage points (suite/diagnostics.py); lower means less squeezing.",
    ]
    return Table(
        title=title,
        columns=["Setting", *labels],
        rows=rows,
        notes=notes,
        label="aao_vs_dpo",
    )


def _kind_label(row: Mapping[str, Any]) -> str:
    unit = " (%)" if row["unit"] == "% of control" else " (pp)" if row["benchmark"] == SQUEEZING else ""
    return f"{row['label']}{unit}"
