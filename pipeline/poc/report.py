"""The PoC's report: per (method, share) means with 95% t-intervals across seeds, learning curves, a summary.

Seeds are paired across methods (a seed fixes the start model and the data
order), so every method is also compared with the baseline seed by seed: the
mean of the per-seed differences with its own t-interval. The summary is
written from these numbers; it states no result that is not computed here.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from suite.io import atomic_path, read_json

METRICS = {
    "accuracy": "held-out preference accuracy",
    "key_margin": "key-token log-prob margin",
    "key_accuracy": "key-token accuracy",
    "margin": "log-ratio margin",
    "margin_shared": "part of the log-ratio margin from shared tokens",
    "aao_weight_key_hidden": "AAO weight of key tokens (hidden-state similarity)",
    "aao_weight_shared_hidden": "AAO weight of shared tokens (hidden-state similarity)",
    "aao_weight_key_embedding": "AAO weight of key tokens (embedding similarity)",
    "aao_weight_shared_embedding": "AAO weight of shared tokens (embedding similarity)",
}
TABLE_METRICS = (
    "accuracy", "key_margin", "key_accuracy", "margin_shared", "aao_weight_key_hidden", "aao_weight_key_embedding"
)  # fmt: skip
PRIMARY = ("key_margin", "accuracy")
CURVE_METRICS = ("accuracy", "key_margin")
CONFIDENCE = 0.95


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval of the mean: mean -+ t_{(1+c)/2, n-1} * s / sqrt(n).

    s is the sample standard deviation (ddof 1). With fewer than two values
    the interval is undefined (NaN).
    """
    x = np.asarray(list(values), dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def load_runs(paths: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Final metrics (one row per run) and curves (one row per run and evaluated step)."""
    finals, curves = [], []
    for path in paths:
        result = read_json(path)
        key = {"share": float(result["share"]), "method": result["run"], "seed": int(result["seed"])}
        finals.append({**key, "steps": result["final"]["step"], **{m: result["final"][m] for m in METRICS}})
        curves += [{**key, **point} for point in result["curve"]]
    return pd.DataFrame(finals), pd.DataFrame(curves)


def summary_table(finals: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """One row per (share, method): n and, per metric, mean with its 95% interval."""
    rows = []
    for (share, method), group in finals.groupby(["share", "method"]):
        row = {"share": share, "method": method, "n_seeds": len(group)}
        for metric in METRICS:
            row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = t_interval(group[metric])
        rows.append(row)
    table = pd.DataFrame(rows)
    rank = {name: i for i, name in enumerate(order)}
    table["_order"] = table["method"].map(lambda m: rank.get(m, len(rank)))
    return table.sort_values(["share", "_order"]).drop(columns="_order").reset_index(drop=True)


def paired_differences(finals: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per (share, method != baseline, metric): mean of per-seed (method - baseline) with its t-interval."""
    rows = []
    for share, group in finals.groupby("share"):
        base = group[group["method"] == baseline].set_index("seed")
        for method, runs in group[group["method"] != baseline].groupby("method"):
            runs = runs.set_index("seed")
            seeds = sorted(set(runs.index) & set(base.index))
            for metric in METRICS:
                diff = runs.loc[seeds, metric] - base.loc[seeds, metric]
                mean, low, high = t_interval(diff)
                rows.append(
                    {"share": share, "method": method, "baseline": baseline, "metric": metric, "n_pairs": len(seeds)}
                    | {"diff_mean": mean, "diff_ci_low": low, "diff_ci_high": high}
                )
    return pd.DataFrame(rows)


def _fmt(mean: float, low: float, high: float, digits: int = 3) -> str:
    if math.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def to_markdown(table: pd.DataFrame, init: pd.DataFrame) -> str:
    lines = [
        "# PoC: held-out metrics after training (mean [95% t-interval] over seeds)",
        "",
        "Tiny random-init Llama, synthetic pairs (see pipeline/poc/data.py). `init` is the start model "
        "(step 0), the same for every method; there the policy is the reference, every margin is exactly 0 "
        "and a tie counts as wrong, hence accuracy 0.",
        "",
        "| share | method | n | " + " | ".join(TABLE_METRICS) + " |",
        "|---|---|---|" + "---|" * len(TABLE_METRICS),
    ]
    for share in sorted(table["share"].unique()):
        start = init[init["share"] == share]
        if len(start):
            cells = [_fmt(*t_interval(start[m])) for m in TABLE_METRICS]
            lines.append(f"| {share:g} | init (step 0) | {len(start)} | " + " | ".join(cells) + " |")
        for _, row in table[table["share"] == share].iterrows():
            cells = [_fmt(row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"]) for m in TABLE_METRICS]
            lines.append(f"| {share:g} | {row['method']} | {row['n_seeds']} | " + " | ".join(cells) + " |")
    lines += ["", "Metrics: " + "; ".join(f"`{k}` = {METRICS[k]}" for k in TABLE_METRICS) + ". More in the CSV."]
    return "\n".join(lines) + "\n"


def plot_curves(curves: pd.DataFrame, order: Sequence[str], out: Path) -> None:
    """Metric vs step, mean and 95% t-band over seeds per method; one column per share."""
    shares = sorted(curves["share"].unique())
    fig, axes = plt.subplots(
        len(CURVE_METRICS), len(shares), figsize=(4.2 * len(shares), 3.2 * len(CURVE_METRICS)), squeeze=False
    )
    methods = [m for m in order if m in set(curves["method"])]
    colours = plt.get_cmap("tab10")
    for col, share in enumerate(shares):
        for row, metric in enumerate(CURVE_METRICS):
            ax = axes[row][col]
            for i, method in enumerate(methods):
                part = curves[(curves["share"] == share) & (curves["method"] == method)]
                steps = sorted(part["step"].unique())
                bands = [t_interval(part[part["step"] == s][metric]) for s in steps]
                mean = [b[0] for b in bands]
                ax.plot(steps, mean, label=method, color=colours(i), marker="o", markersize=3)
                ax.fill_between(steps, [b[1] for b in bands], [b[2] for b in bands], color=colours(i), alpha=0.15)
            ax.set_title(f"share {share:g}: {METRICS[metric]}", fontsize=9)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("PoC learning curves on held-out pairs (mean ± 95% t-interval over seeds)", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- summary


def _overlap(a: pd.Series, b: pd.Series, metric: str) -> bool:
    return not (a[f"{metric}_ci_low"] > b[f"{metric}_ci_high"] or b[f"{metric}_ci_low"] > a[f"{metric}_ci_high"])


def _verdict(diff: pd.Series) -> str:
    if math.isnan(diff["diff_ci_low"]):
        return "undetermined (one seed)"
    if diff["diff_ci_low"] > 0:
        return "better"
    if diff["diff_ci_high"] < 0:
        return "worse"
    return "not distinguishable"


def write_summary(
    table: pd.DataFrame, paired: pd.DataFrame, init: pd.DataFrame, baseline: str, steps: int, n_seeds: int
) -> str:
    shares = sorted(table["share"].unique())
    methods = list(dict.fromkeys(table["method"]))
    lines = [
        "# PoC summary (auto-written from results/poc/table.csv and paired.csv)",
        "",
        f"{len(methods)} methods ({', '.join(methods)}) x {len(shares)} ambiguous shares "
        f"({', '.join(f'{s:g}' for s in shares)}) x {n_seeds} seeds, {steps} steps each, identical budgets. "
        "Intervals are 95% Student-t intervals over seeds. Paired differences compare a method with "
        f"{baseline} seed by seed (same start model and data order); 'better'/'worse' means the paired "
        "interval excludes 0.",
        "",
    ]
    lines += _bottom_line(paired, baseline, shares, methods)
    for metric in PRIMARY:
        lines.append(f"## {METRICS[metric]} (`{metric}`)")
        lines.append("")
        for share in shares:
            rows = table[table["share"] == share].set_index("method")
            best = rows[f"{metric}_mean"].idxmax()
            ranking = ", ".join(
                f"{m} {rows.loc[m, f'{metric}_mean']:.3f}"
                for m in rows[f"{metric}_mean"].sort_values(ascending=False).index
            )
            lines.append(f"- share {share:g}: highest mean: **{best}**; ranking: {ranking}.")
            for method in methods:
                if method == baseline or method not in rows.index:
                    continue
                diff = paired[
                    (paired["share"] == share) & (paired["method"] == method) & (paired["metric"] == metric)
                ].iloc[0]
                overlap = _overlap(rows.loc[method], rows.loc[baseline], metric)
                lines.append(
                    f"  - {method} - {baseline}: {diff['diff_mean']:+.3f} "
                    f"(paired 95% CI [{diff['diff_ci_low']:+.3f}, {diff['diff_ci_high']:+.3f}]): "
                    f"{_verdict(diff)}; the two methods' own intervals "
                    f"{'overlap' if overlap else 'do not overlap'}."
                )
        lines.append("")
    lines += _share_effect(table, paired, baseline, shares, methods)
    lines += _weight_diagnostic(table, init, shares)
    lines += [
        "## Caveats",
        "",
        f"- Tiny random-init models, a synthetic task, {steps} steps and {n_seeds} seeds: this probes the "
        "mechanism, it says nothing about the paper's benchmark numbers.",
        "- `accuracy` counts a pair as right when the unweighted log-ratio margin is positive; "
        "tokens after the first key have different contexts in chosen and rejected, so the margin can "
        "grow through shared tokens too (`margin_shared`), not only through the key tokens.",
    ]
    return "\n".join(lines) + "\n"


def _bottom_line(paired, baseline, shares, methods) -> list[str]:
    """Per method and primary metric: at how many shares it is better / worse / not distinguishable from baseline."""
    lines = ["## Bottom line (paired against " + baseline + ", per share)", ""]
    for method in methods:
        if method == baseline:
            continue
        parts = []
        for metric in PRIMARY:
            rows = paired[(paired["method"] == method) & (paired["metric"] == metric)]
            verdicts = [_verdict(row) for _, row in rows.iterrows()]
            better = [f"{s:g}" for s, v in zip(rows["share"], verdicts, strict=True) if v == "better"]
            worse = [f"{s:g}" for s, v in zip(rows["share"], verdicts, strict=True) if v == "worse"]
            parts.append(
                f"`{metric}` better at {len(better)}/{len(shares)} shares"
                + (f" ({', '.join(better)})" if better else "")
                + f", worse at {len(worse)}"
                + (f" ({', '.join(worse)})" if worse else "")
            )
        lines.append(f"- {method}: " + "; ".join(parts) + ".")
    return [*lines, ""]


def _share_effect(table, paired, baseline, shares, methods) -> list[str]:
    lines = ["## What the ambiguous share does", ""]
    if len(shares) < 2:
        return [*lines, "- Only one share was run.", ""]
    base = table[table["method"] == baseline].set_index("share")["key_margin_mean"]
    trend = _trend([base[s] for s in shares])
    lines.append(
        f"- {baseline}'s key-token margin across shares {', '.join(f'{s:g}' for s in shares)}: "
        f"{', '.join(f'{base[s]:.3f}' for s in shares)} ({trend} as the share grows)."
    )
    for share in shares:
        rows = table[table["share"] == share].set_index("method")
        parts = [
            f"{m} {rows.loc[m, 'margin_shared_mean'] / rows.loc[m, 'margin_mean']:.0%}"
            for m in rows.index
            if rows.loc[m, "margin_mean"] > 0
        ]
        lines.append(
            f"- share {share:g}: part of the held-out log-ratio margin that comes from shared (non-key) tokens: "
            f"{', '.join(parts)}."
        )
    for method in methods:
        if method == baseline:
            continue
        gaps = []
        for share in shares:
            row = paired[(paired["share"] == share) & (paired["method"] == method) & (paired["metric"] == "key_margin")]
            gaps.append(float(row["diff_mean"].iloc[0]) if len(row) else math.nan)
        lines.append(
            f"- key-margin gap {method} - {baseline}: {', '.join(f'{g:+.3f}' for g in gaps)} "
            f"({_trend(gaps)} as the share grows)."
        )
    return [*lines, ""]


def _trend(values: Sequence[float]) -> str:
    steps = np.diff(np.asarray(values, dtype=float))
    if np.all(steps > 0):
        return "increasing"
    if np.all(steps < 0):
        return "decreasing"
    return "not monotonic"


def _weight_diagnostic(table, init, shares) -> list[str]:
    """Whether AAO's token weights single out the key tokens, per representation, at the start and after training."""
    lines = [
        "## Does AAO's similarity find the key tokens?",
        "",
        "Mean AAO weight (fixed thresholds, default curve; weights average 1 per response) of the chosen "
        "response's key tokens vs its shared tokens, from each evaluated model's own representations.",
        "",
    ]
    for share in shares:
        start = init[init["share"] == share]
        rows = table[table["share"] == share].set_index("method")
        for representation in ("hidden", "embedding"):
            key, shared = f"aao_weight_key_{representation}", f"aao_weight_shared_{representation}"
            parts = [f"start model {start[key].mean():.3f} vs {start[shared].mean():.3f}"]
            parts += [
                f"after {m} {rows.loc[m, key + '_mean']:.3f} vs {rows.loc[m, shared + '_mean']:.3f}" for m in rows.index
            ]
            below = [start[key].mean() < start[shared].mean(), *(rows[key + "_mean"] < rows[shared + "_mean"])]
            verdict = (
                "key tokens get LESS weight than shared tokens everywhere"
                if all(below)
                else "key tokens get more weight than shared tokens everywhere"
                if not any(below)
                else "mixed"
            )
            lines.append(f"- share {share:g}, `{representation}`: {'; '.join(parts)} ({verdict}).")
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.poc.report", description=__doc__)
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--baseline", default="dpo")
    parser.add_argument("--order", nargs="*", default=[], help="method order in tables and plots")
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--md", type=Path, required=True)
    parser.add_argument("--paired-csv", type=Path, required=True)
    parser.add_argument("--png", type=Path, required=True)
    parser.add_argument("--summary", type=Path, required=True)
    args = parser.parse_args(argv)
    finals, curves = load_runs(args.runs)
    order = args.order or sorted(finals["method"].unique())
    table = summary_table(finals, order)
    paired = paired_differences(finals, args.baseline)
    init = curves[curves["step"] == 0].drop_duplicates(["share", "seed"])
    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(args.paired_csv) as tmp:
        paired.to_csv(tmp, index=False)
    with atomic_path(args.md) as tmp:
        tmp.write_text(to_markdown(table, init))
    plot_curves(curves, order, args.png)
    summary = write_summary(table, paired, init, args.baseline, int(finals["steps"].max()), finals["seed"].nunique())
    with atomic_path(args.summary) as tmp:
        tmp.write_text(summary)
    print(summary)


if __name__ == "__main__":
    main()
