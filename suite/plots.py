"""Pictures of a run: benchmark scores with their error bars, and training curves."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from suite.io import atomic_path, read_json

CURVES = ("loss", "rewards/margins", "rewards/accuracies")


def plot_scores(table: pd.DataFrame, out: Path) -> None:
    """One panel per metric column: a bar per (variant, method) with its standard error."""
    metrics = [c for c in table.columns if c not in ("variant", "method") and not c.endswith(" SE")]
    metrics = [c for c in metrics if table[c].notna().any()]
    labels = table["variant"] + "\n" + table["method"]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(1.2 + 1.1 * len(table) * max(len(metrics), 1), 3.6))
    for ax, metric in zip(pd.Series([axes]).explode() if len(metrics) > 1 else [axes], metrics, strict=False):
        errors = table.get(f"{metric} SE")
        ax.bar(range(len(table)), table[metric], yerr=errors, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(table)), labels, fontsize=7)
        ax.set_title(metric)
        ax.set_ylabel("score (± SE)")
    _save(fig, out)


def plot_training(histories: Sequence[Path], out: Path) -> None:
    """Loss, reward margin and preference accuracy over steps, one line per (variant, method)."""
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.4))
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
    axes[-1].legend(fontsize=7)
    _save(fig, out)


def _save(fig: plt.Figure, out: Path) -> None:
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m suite.plots", description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="results/tables/main.csv")
    parser.add_argument("--histories", type=Path, nargs="+", required=True)
    parser.add_argument("--scores-png", type=Path, required=True)
    parser.add_argument("--training-png", type=Path, required=True)
    args = parser.parse_args(argv)
    plot_scores(pd.read_csv(args.table), args.scores_png)
    plot_training(args.histories, args.training_png)


if __name__ == "__main__":
    main()
