"""Pictures of an experiment: scores with intervals, every method against DPO, score against length, training.

* ``scores``: per benchmark column, grouped bars (one group per setting, one
  bar per method) with 95% intervals (1.96 SE, seed variance included);
* ``forest``: every method minus DPO with its paired 95% interval, per
  benchmark (from ``<experiment>_comparisons.csv``);
* ``length``: each benchmark's paired metric against the mean response length
  in tokens, one point per (setting, method);
* ``training``: loss, reward margin and preference accuracy over steps;
* ``squeezing``: the top-token probability on held-out responses over steps,
  DPO against AAO per setting (other methods faint); RTO trains by PPO
  outside the Trainer and is not measured.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from pipeline.published import LENGTH, SQUEEZING
from pipeline.tables import method_label
from suite.history_keys import KEY
from suite.io import atomic_path, read_json

CURVES = ("loss", "rewards/margins", "rewards/accuracies")
Z95 = 1.96


def _panels(count: int, width: float, height: float = 3.6) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, max(count, 1), figsize=(max(width * max(count, 1), 4.0), height), squeeze=False)
    return fig, list(axes[0])


def _empty(ax: plt.Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def plot_scores(cells: pd.DataFrame, out: Path) -> None:
    """Grouped bars per setting, one panel per benchmark column, 95% intervals from the cells' SE."""
    cells = cells[cells["value"].notna()]
    columns = list(dict.fromkeys(cells["column"]))
    fig, axes = _panels(len(columns), 4.2)
    for ax, column in zip(axes, columns, strict=False):
        part = cells[cells["column"] == column]
        settings, methods = list(dict.fromkeys(part["setting_label"])), list(dict.fromkeys(part["method"]))
        width = 0.8 / len(methods)
        for k, method in enumerate(methods):
            rows = part[part["method"] == method].set_index("setting_label").reindex(settings)
            x = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(settings))]
            ax.bar(x, rows["value"], width, yerr=Z95 * rows["se"].fillna(0), capsize=2, label=method_label(method))
        ax.set_xticks(range(len(settings)), settings, fontsize=7, rotation=15)
        ax.set_title(column)
        ax.set_ylabel("score (95% interval)")
    if columns:
        axes[-1].legend(fontsize=6, ncol=2)
    else:
        _empty(axes[0], "scores")
    _save(fig, out)


def plot_forest(compared: pd.DataFrame, out: Path, control: str) -> None:
    """Every method minus the control with its paired 95% interval, one panel per benchmark."""
    scored = compared[~compared["benchmark"].str.startswith(LENGTH) & (compared["benchmark"] != SQUEEZING)]
    benchmarks = list(dict.fromkeys(scored["benchmark"]))
    fig, axes = _panels(len(benchmarks), 4.0, 1.2 + 0.28 * max(1, len(scored) // max(1, len(benchmarks))))
    for ax, benchmark in zip(axes, benchmarks, strict=False):
        part = scored[scored["benchmark"] == benchmark].reset_index(drop=True)
        y = range(len(part))[::-1]
        ax.errorbar(
            part["estimate"],
            list(y),
            xerr=[part["estimate"] - part["low"], part["high"] - part["estimate"]],
            fmt="o",
            capsize=2,
            color="#4c72b0",
        )
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_yticks(
            list(y),
            [f"{s} {method_label(m)}" for s, m in zip(part["setting"], part["method"], strict=True)],
            fontsize=6,
        )
        ax.set_title(f"{part['label'].iloc[0]}: method − {method_label(control)}", fontsize=9)
    if not benchmarks:
        _empty(axes[0], "comparisons")
    _save(fig, out)


def plot_length(flat: pd.DataFrame, cells: pd.DataFrame, out: Path) -> None:
    """Each benchmark's last column against the mean response length in tokens (mean over seeds)."""
    lengths = [c.removesuffix(" tokens") for c in flat.columns if c.endswith(" tokens")]
    pairs = [(b, cells[cells["benchmark"] == b]["column"].iloc[-1]) for b in lengths if (cells["benchmark"] == b).any()]
    fig, axes = _panels(len(pairs), 4.0)
    means = flat.groupby(["variant", "method"], sort=False).mean(numeric_only=True).reset_index()
    for ax, (benchmark, column) in zip(axes, pairs, strict=False):
        for method, part in means.groupby("method", sort=False):
            ax.scatter(part[f"{benchmark} tokens"], part[column], label=method_label(method), s=18)
        ax.set_xlabel("mean response length (tokens)")
        ax.set_ylabel(column)
        ax.set_title(f"{column} vs length", fontsize=9)
    if pairs:
        axes[-1].legend(fontsize=6, ncol=2)
    else:
        _empty(axes[0], "response lengths")
    _save(fig, out)


def plot_training(histories: Sequence[Path], out: Path) -> None:
    """Loss, reward margin and preference accuracy over steps, one line per (variant, method)."""
    fig, axes = _panels(len(CURVES), 4.2, 3.4)
    for path in histories:
        steps = [h for h in read_json(path) if "loss" in h and "step" in h]
        label = f"{path.parts[-3]}/{path.parts[-2]}"
        for ax, key in zip(axes, CURVES, strict=True):
            points = [(h["step"], h[key]) for h in steps if key in h]
            if points:
                ax.plot(*zip(*points, strict=True), label=label, linewidth=1.2)
    for ax, key in zip(axes, CURVES, strict=True):
        ax.set_title(key)
        ax.set_xlabel("step")
    if histories:
        axes[0].legend(fontsize=6)
    _save(fig, out)


def plot_squeezing(
    histories: Sequence[Path], runs: Mapping[str, Mapping[str, Any]], out: Path, highlight: Sequence[str]
) -> None:
    """Top-token probability on held-out responses over steps: one panel per setting, ``highlight`` in colour."""
    curves: dict[str, list[tuple[str, Any, list[tuple[int, float]]]]] = {}
    for path in histories:
        run, method = path.parts[-3], path.parts[-2]
        points = [(h["step"], h[KEY]) for h in read_json(path) if KEY in h and "step" in h]
        if points:
            info = runs.get(run, {"variant": run, "seed": None})
            curves.setdefault(info["variant"], []).append((method, info["seed"], sorted(set(points))))
    fig, axes = _panels(len(curves), 4.2)
    colours = dict(zip(highlight, ("#4c72b0", "#dd8452"), strict=False))
    for ax, (variant, lines) in zip(axes, curves.items(), strict=False):
        for method, seed, points in lines:
            style = (
                {"color": colours[method], "linewidth": 1.8}
                if method in colours
                else {"color": "#cccccc", "linewidth": 0.8}
            )
            label = method_label(method) + (f" (seed {seed})" if seed is not None else "")
            ax.plot(*zip(*points, strict=True), label=label if method in colours else None, **style)
        ax.set_title(variant)
        ax.set_xlabel("step")
        ax.set_ylabel("mean top-token probability")
        ax.legend(fontsize=6)
    if not curves:
        _empty(axes[0], "squeezing diagnostic (training.squeezing_held_out is 0)")
    _save(fig, out)


def _save(fig: plt.Figure, out: Path) -> None:
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.plots", description=__doc__)
    parser.add_argument("--table1", type=Path, required=True, help="results/tables/<experiment>_table1.csv")
    parser.add_argument("--flat", type=Path, required=True, help="results/tables/<experiment>.csv")
    parser.add_argument("--comparisons", type=Path, required=True, help="results/tables/<experiment>_comparisons.csv")
    parser.add_argument("--histories", type=Path, nargs="+", required=True)
    parser.add_argument("--runs", default="{}", help='JSON: run name -> {"variant", "seed"}')
    parser.add_argument("--control", default="dpo")
    parser.add_argument("--treatment", default="aao")
    parser.add_argument("--scores-png", type=Path, required=True)
    parser.add_argument("--forest-png", type=Path, required=True)
    parser.add_argument("--length-png", type=Path, required=True)
    parser.add_argument("--training-png", type=Path, required=True)
    parser.add_argument("--squeezing-png", type=Path, required=True)
    args = parser.parse_args(argv)
    cells = pd.read_csv(args.table1)
    plot_scores(cells, args.scores_png)
    plot_forest(pd.read_csv(args.comparisons), args.forest_png, args.control)
    plot_length(pd.read_csv(args.flat), cells, args.length_png)
    plot_training(args.histories, args.training_png)
    plot_squeezing(args.histories, json.loads(args.runs), args.squeezing_png, [args.control, args.treatment])


if __name__ == "__main__":
    main()
