"""Intervals for the tables: paired bootstrap over items, seeds folded in, and the unpaired one for comparison.

A model's score on a benchmark is the pooled mean of its per-item outcomes
(``item_scores`` of the benchmark module): ``sum(values) / count(values)``
over items, where an item is the first index level of the outcomes. Most
benchmarks have one value per item (a plain mean); Arena-Hard has one per
battle, so pooling gives its Bradley-Terry win rate on every resample.

The **paired** bootstrap draws one resample of items per round and uses it for
both models, so what varies between prompts (some are hard for every model)
cancels in the difference; the **unpaired** one draws the two models' items
independently, as two independent standard errors would. With several seeds
per model, each round also resamples each model's seeds (with replacement),
so the interval includes seed-to-seed variance; a model's statistic is then
the mean over its drawn seeds. Intervals are percentile intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_ROUNDS = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A difference (treatment - control, or its relative form in %) with its bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_items: int

    @property
    def width(self) -> float:
        return self.high - self.low

    def excludes(self, value: float) -> bool:
        return value < self.low or value > self.high


def item_totals(scores: pd.Series) -> pd.DataFrame:
    """Per item (first index level): the sum and the number of its values."""
    level = scores.index.get_level_values(0)
    return scores.groupby(level, sort=False).agg(["sum", "count"])


def _aligned(runs: Sequence[pd.Series], items: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """(S, n) sums and counts of each seed's outcomes on ``items``."""
    totals = [item_totals(run).reindex(items) for run in runs]
    return np.stack([t["sum"].to_numpy(float) for t in totals]), np.stack([t["count"].to_numpy(float) for t in totals])


def common_items(runs: Sequence[pd.Series]) -> pd.Index:
    """Items every run scored (a partial result has fewer), in a stable order."""
    items = None
    for run in runs:
        level = pd.Index(run.index.get_level_values(0).unique())
        items = level if items is None else items.intersection(level)
    if items is None or items.empty:
        raise ValueError("the runs share no scored item")
    return pd.Index(sorted(items, key=str))


def _per_seed(sums: np.ndarray, counts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(B, S) pooled mean of each seed on each resample of items ``idx`` (B, n)."""
    return (sums[:, idx].sum(-1) / counts[:, idx].sum(-1)).T


def _seed_mean(per_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B,) mean over a resample of seeds per round; one seed needs no resample."""
    rounds, seeds = per_seed.shape
    if seeds == 1:
        return per_seed[:, 0]
    draws = rng.integers(0, seeds, size=(rounds, seeds))
    return np.take_along_axis(per_seed, draws, axis=1).mean(1)


def _contrast(treatment: np.ndarray, control: np.ndarray, relative: bool) -> np.ndarray:
    """The difference, or in % of the control (undefined, NaN, where the control is 0)."""
    if not relative:
        return treatment - control
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(control > 0, 100 * (treatment / np.where(control > 0, control, 1) - 1), np.nan)


def bootstrap_difference(
    treatment: Sequence[pd.Series],
    control: Sequence[pd.Series],
    *,
    paired: bool = True,
    relative: bool = False,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """Treatment minus control (``relative``: in % of control), each a list of per-seed outcome series.

    Items are those every run scored. Draw order (reproduced by the tests):
    the treatment's item resample (B, n), then, unpaired, the control's; then
    the treatment's seed resample and the control's, where a model has
    several seeds. A relative difference leaves out resamples whose control
    is 0 (undefined); its estimate is NaN when the control's own mean is 0.
    """
    items = common_items([*treatment, *control])
    t_sums, t_counts = _aligned(treatment, items)
    c_sums, c_counts = _aligned(control, items)
    estimate = _contrast((t_sums.sum(1) / t_counts.sum(1)).mean(), (c_sums.sum(1) / c_counts.sum(1)).mean(), relative)
    rng = np.random.default_rng(seed)
    n = len(items)
    t_idx = rng.integers(0, n, size=(rounds, n))
    c_idx = t_idx if paired else rng.integers(0, n, size=(rounds, n))
    t_stat = _seed_mean(_per_seed(t_sums, t_counts, t_idx), rng)
    c_stat = _seed_mean(_per_seed(c_sums, c_counts, c_idx), rng)
    tail = 100 * (1 - confidence) / 2
    contrasts = _contrast(t_stat, c_stat, relative)
    if np.isnan(contrasts).all():
        return Interval(float(estimate), math.nan, math.nan, n)
    low, high = np.nanpercentile(contrasts, [tail, 100 - tail])  # relative: rounds with a 0 control are undefined
    return Interval(float(estimate), float(low), float(high), n)


def combine_seeds(values: Sequence[float], errors: Sequence[float | None]) -> tuple[float, float | None]:
    """Mean over seeds and its standard error, seed variance included.

    The seeds are scored on the same prompts, so the prompt-sampling error is
    shared and does not shrink with more seeds: its variance is the mean of
    the seeds' squared standard errors. The seed-to-seed variance of the mean
    adds ``s^2 / S`` (``s`` the sample standard deviation of the seeds' scores).
    """
    mean = float(np.mean(values))
    known = [e for e in errors if e is not None and not math.isnan(e)]
    if len(known) < len(errors):
        return mean, None
    between = float(np.var(values, ddof=1)) / len(values) if len(values) > 1 else 0.0
    return mean, math.sqrt(float(np.mean(np.square(known))) + between)
