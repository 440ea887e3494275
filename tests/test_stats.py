"""The tables' intervals: a slow direct transcription of the paired bootstrap, pairing, seeds, pooling."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from suite.stats import bootstrap_difference, combine_seeds

ITEMS = list("abcdefgh")  # sorted order = this order (the bootstrap sorts item ids as text)
A = [70.0, 20.0, 90.0, 40.0, 55.0, 10.0, 80.0, 35.0]
B = [60.0, 25.0, 70.0, 30.0, 50.0, 5.0, 75.0, 20.0]


def series(values: list[float]) -> pd.Series:
    return pd.Series(values, index=ITEMS)


def percentile(sorted_values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), written out."""
    position = p / 100 * (len(sorted_values) - 1)
    below = math.floor(position)
    above = min(below + 1, len(sorted_values) - 1)
    return sorted_values[below] + (sorted_values[above] - sorted_values[below]) * (position - below)


def test_paired_interval_equals_a_slow_transcription_of_the_bootstrap() -> None:
    rounds, seed = 300, 7
    interval = bootstrap_difference([series(A)], [series(B)], rounds=rounds, seed=seed)

    draws = np.random.default_rng(seed).integers(0, len(ITEMS), size=(rounds, len(ITEMS)))
    differences = []
    for r in range(rounds):
        total_a = total_b = 0.0
        for j in range(len(ITEMS)):
            k = int(draws[r][j])  # the same prompt for both models
            total_a += A[k]
            total_b += B[k]
        differences.append(total_a / len(ITEMS) - total_b / len(ITEMS))
    differences.sort()
    assert interval.estimate == pytest.approx(sum(A) / len(A) - sum(B) / len(B))
    assert interval.low == pytest.approx(percentile(differences, 2.5))
    assert interval.high == pytest.approx(percentile(differences, 97.5))
    assert interval.n_items == len(ITEMS)


def test_paired_is_narrower_than_unpaired_when_outcomes_correlate() -> None:
    assert np.corrcoef(A, B)[0, 1] > 0.9
    paired = bootstrap_difference([series(A)], [series(B)])
    unpaired = bootstrap_difference([series(A)], [series(B)], paired=False)
    assert paired.estimate == unpaired.estimate
    assert paired.width < unpaired.width / 3
    assert paired.low > 0 and unpaired.low < 0, "the gain is clear only when the pairing is used"


def test_pooled_items_with_several_values_resample_whole_items() -> None:
    """Arena-Hard style: an item's battles travel together; the statistic is the pooled share."""
    index = pd.MultiIndex.from_tuples([("a", 0), ("a", 1), ("a", 2), ("b", 0), ("c", 0)])
    treatment = pd.Series([100.0, 100.0, 100.0, 0.0, 50.0], index=index)
    control = pd.Series([0.0, 50.0], index=pd.MultiIndex.from_tuples([("a", 0), ("b", 0)]))
    rounds, seed = 50, 3
    interval = bootstrap_difference([treatment], [control], rounds=rounds, seed=seed)
    assert interval.n_items == 2, "only items both scored"
    assert interval.estimate == pytest.approx(300 / 4 - 50 / 2)

    sums_t, counts_t = {"a": 300.0, "b": 0.0}, {"a": 3, "b": 1}
    sums_c, counts_c = {"a": 0.0, "b": 50.0}, {"a": 1, "b": 1}
    draws = np.random.default_rng(seed).integers(0, 2, size=(rounds, 2))
    differences = []
    for row in draws:
        picked = ["ab"[k] for k in row]
        share_t = sum(sums_t[i] for i in picked) / sum(counts_t[i] for i in picked)
        share_c = sum(sums_c[i] for i in picked) / sum(counts_c[i] for i in picked)
        differences.append(share_t - share_c)
    differences.sort()
    assert interval.low == pytest.approx(percentile(differences, 2.5))
    assert interval.high == pytest.approx(percentile(differences, 97.5))


def test_seed_variance_widens_the_interval_and_the_estimate_is_the_seed_mean() -> None:
    one = bootstrap_difference([series(A)], [series(B)])
    shifted = [a + 12 for a in A]
    two = bootstrap_difference([series(A), series(shifted)], [series(B)])
    assert two.estimate == pytest.approx(one.estimate + 6)
    assert two.width > 1.5 * one.width


def test_seed_resampling_by_hand() -> None:
    """Two treatment seeds, one control seed: each round averages the seeds it draws, on the round's items."""
    rounds, seed = 40, 11
    second = [a - 30 for a in A]
    interval = bootstrap_difference([series(A), series(second)], [series(B)], rounds=rounds, seed=seed)
    rng = np.random.default_rng(seed)
    items = rng.integers(0, len(ITEMS), size=(rounds, len(ITEMS)))
    seeds = rng.integers(0, 2, size=(rounds, 2))
    runs = [A, second]
    differences = []
    for r in range(rounds):
        means = [sum(runs[s][k] for k in items[r]) / len(ITEMS) for s in seeds[r]]
        differences.append(sum(means) / 2 - sum(B[k] for k in items[r]) / len(ITEMS))
    differences.sort()
    assert interval.low == pytest.approx(percentile(differences, 2.5))
    assert interval.high == pytest.approx(percentile(differences, 97.5))


def test_relative_difference_is_in_percent_of_the_control() -> None:
    interval = bootstrap_difference([series([110.0] * 8)], [series([100.0] * 8)], relative=True)
    assert (interval.estimate, interval.low, interval.high) == pytest.approx((10.0, 10.0, 10.0))


def test_runs_without_common_items_are_refused() -> None:
    with pytest.raises(ValueError, match="share no scored item"):
        bootstrap_difference([pd.Series([1.0], index=["x"])], [pd.Series([1.0], index=["y"])])


def test_seed_combination_by_hand() -> None:
    mean, se = combine_seeds([40.0, 44.0, 48.0], [2.0, 2.0, 3.0])
    # prompt error: mean of squared SEs (4 + 4 + 9) / 3; seed error: sample variance 16 over 3 seeds
    assert mean == 44.0
    assert se == pytest.approx(math.sqrt(17 / 3 + 16 / 3))
    assert combine_seeds([40.0], [2.0]) == (40.0, 2.0)
    assert combine_seeds([40.0, 41.0], [2.0, None]) == (40.5, None)


def test_a_relative_difference_against_a_zero_control_is_undefined_not_infinite() -> None:
    empty = bootstrap_difference([series([5.0] * 8)], [series([0.0] * 8)], relative=True)
    assert math.isnan(empty.estimate) and math.isnan(empty.low) and math.isnan(empty.high)
    sparse = [0.0] * 7 + [10.0]  # most resamples of the control are 0: those rounds are left out
    interval = bootstrap_difference([series([20.0] * 8)], [series(sparse)], relative=True, rounds=500)
    assert interval.estimate == pytest.approx(100 * (20 / (10 / 8) - 1))
    assert math.isfinite(interval.low) and math.isfinite(interval.high)
