"""The side-by-side benchmark (workflow/scripts/bench_trl.py) can only time like things: on a tiny model, every
method's sides pass its own first-step loss check and optimizer check, and sides that compute something else
(another beta, another margin) or train with another optimizer are refused."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
import bench_trl

SHAPE = (2, 8, 24)  # pairs, prompt tokens, response tokens (rejected ones shorter: padded batches)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    return bench_trl.make_workload("tiny", SHAPE, "cpu", "float32", tmp_path_factory.mktemp("bench-trl"))


def first_losses(sides: dict) -> dict[str, float]:
    return {key: side.step() for key, side in sides.items()}


@pytest.mark.parametrize("method", list(bench_trl.SIDES))
def test_every_side_passes_the_first_step_check(workload, method):
    sides = bench_trl.build_sides(workload, method)
    assert set(sides) == set(bench_trl.SIDES[method]) and next(iter(sides)) == "suite"
    assert bench_trl.check_same_optimizer(sides).startswith("AdamW(lr=1e-05")
    losses = first_losses(sides)
    differences = bench_trl.check_first_losses(losses, "float32")
    assert all(math.isfinite(loss) for loss in losses.values())
    assert max(differences.values()) < 1e-5
    if method in ("dpo", "kto"):  # the policy differs from the reference: not the trivial loss of equal models
        assert abs(losses["suite"] - {"dpo": math.log(2), "kto": 0.5}[method]) > 1e-3


@pytest.mark.parametrize(
    ("method", "side", "override"),
    [
        ("dpo", "trl precomputed", {"beta": 0.11}),
        ("ipo", "trl precomputed", {"tau": 0.12}),
        ("simpo", "trl cpo", {"gamma_beta_ratio": 0.6}),
        ("kto", "trl live", {"beta": 0.12}),
        ("kto", "trl precomputed", {"desirable_weight": 1.2}),
    ],
)
def test_unlike_sides_are_refused(workload, method, side, override):
    losses = first_losses(bench_trl.build_sides(workload, method, {side: override}))
    with pytest.raises(bench_trl.UnlikeSides, match="refusing to time unlike things"):
        bench_trl.check_first_losses(losses, "float32")


def test_a_nan_loss_is_refused():
    with pytest.raises(bench_trl.UnlikeSides):
        bench_trl.check_first_losses({"suite": 0.7, "trl": float("nan")}, "float32")


def test_another_optimizer_setting_is_refused(workload):
    sides = bench_trl.build_sides(workload, "simpo")
    sides["trl cpo"].optimizer.defaults["lr"] = 2e-5
    with pytest.raises(bench_trl.UnlikeSides, match="optimizers differ"):
        bench_trl.check_same_optimizer(sides)


def test_the_step_breakdown_adds_up_to_the_step():
    step = {"collate": 1.0, "training_step": 10.0, "compute_loss": 4.0, "model": 3.0, "logps": 0.5, "optimizer": 2.0}
    for fused in (False, True):
        parts = bench_trl.breakdown(step, logps_in_forward=fused)
        assert sum(parts[name] for name in bench_trl.BREAKDOWN) == pytest.approx(parts["step"]) == 13.0
        assert parts["backward"] == 6.0 and parts["log-probs"] == 0.5
        assert parts["forward"] == (2.5 if fused else 3.0)


def test_ratios_are_paired_by_round_against_trls_fastest_side():
    sides = {"suite": {"times": [1.0, 2.0, 3.0]}, "trl a": {"times": [2.0, 4.0, 6.0]}, "trl b": {"times": [3.0] * 3}}
    ratios = bench_trl.paired_ratios(sides)  # trl b has the lower median (3 < 4): the suite's rounds are 1/3, 2/3, 1
    assert ratios == pytest.approx({"suite": 2 / 3, "trl a": 4 / 3, "trl b": 1.0})
