"""Eqs. 14-16 (three classes, piecewise-linear weights), Eq. 17 (soft gates) and renormalisation."""

from __future__ import annotations

import pytest
import torch

from aao.weights import (
    class_statistics,
    hard_weights,
    renormalise,
    soft_weights,
    token_classes,
    token_weights,
)
from tests.test_aao_support import loop_weight, loop_weights, real_positions, response_masks

THRESHOLDS = [(0.7, 0.3), (0.9, 0.1), (0.55, 0.5), (1.0, 0.0), (0.4, 0.05)]


@pytest.mark.parametrize(("a", "b"), THRESHOLDS)
@pytest.mark.parametrize(("w_min", "w_max"), [(0.5, 1.5), (0.2, 3.0), (1.0, 1.0)])
def test_hard_curve_matches_the_spec(a, b, w_min, w_max):
    scores = torch.cat([torch.rand(200, generator=torch.Generator().manual_seed(0)), torch.tensor([0.0, 1.0, a, b])])
    weights = hard_weights(scores, a, b, w_min, w_max)
    for s, w in zip(scores.tolist(), weights.tolist(), strict=True):
        assert w == pytest.approx(loop_weight(s, a, b, w_min, w_max, None), abs=1e-6)
    assert weights.min() >= w_min - 1e-6 and weights.max() <= w_max + 1e-6


def test_curve_endpoints_and_classes():
    a, b = 0.7, 0.3
    scores = torch.tensor([0.0, 0.15, 0.3, 0.5, 0.7, 0.85, 1.0])
    weights = hard_weights(scores, a, b, 0.5, 1.5)
    torch.testing.assert_close(weights, torch.tensor([1.5, 1.25, 1.0, 1.0, 1.0, 0.75, 0.5]))
    classes = token_classes(scores, torch.ones(7), a, b)
    assert classes.key.tolist() == [True, True, False, False, False, False, False]
    assert classes.transitional.tolist() == [False, False, True, True, True, False, False]
    assert classes.ambiguous.tolist() == [False, False, False, False, False, True, True]


@pytest.mark.parametrize(("a", "b"), THRESHOLDS)
def test_soft_curve_matches_loops(a, b):
    scores = torch.rand(300, generator=torch.Generator().manual_seed(1))
    weights = soft_weights(scores, a, b, 0.5, 1.5, tau=0.05)
    for s, w in zip(scores.tolist(), weights.tolist(), strict=True):
        assert w == pytest.approx(loop_weight(s, a, b, 0.5, 1.5, 0.05), abs=1e-6)
    assert weights.min() >= 0.5 - 1e-6 and weights.max() <= 1.5 + 1e-6


@pytest.mark.parametrize(("a", "b"), THRESHOLDS)
def test_tau_to_zero_recovers_the_hard_curve(a, b):
    scores = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    hard = hard_weights(scores, a, b)
    errors = [(soft_weights(scores, a, b, tau=tau) - hard).abs().max().item() for tau in (0.1, 1e-2, 1e-3, 1e-5)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-3
    # away from the two boundaries, a tiny tau gives the hard weights to rounding
    away = ((scores - a).abs() > 1e-3) & ((scores - b).abs() > 1e-3)
    torch.testing.assert_close(soft_weights(scores, a, b, tau=1e-6)[away], hard[away])


def test_soft_weights_have_gradients_for_the_thresholds():
    scores = torch.rand(64, generator=torch.Generator().manual_seed(2))
    a = torch.tensor(0.7, requires_grad=True)
    b = torch.tensor(0.3, requires_grad=True)
    soft_weights(scores, a, b).sum().backward()
    assert a.grad.abs() > 0 and b.grad.abs() > 0


@pytest.mark.parametrize(("batch_size", "length"), [(1, 1), (3, 8), (4, 15)])
@pytest.mark.parametrize("gating", ["soft", "hard"])
@pytest.mark.parametrize("renorm", [True, False])
def test_token_weights_match_loops(batch_size, length, gating, renorm):
    generator = torch.Generator().manual_seed(batch_size * length)
    _, mask = response_masks(batch_size, length, generator)
    scores = torch.rand(batch_size, length, generator=generator) * mask
    a = torch.rand(batch_size, 1, generator=generator) * 0.4 + 0.55
    b = torch.rand(batch_size, 1, generator=generator) * 0.4 + 0.05
    weights = token_weights(scores, mask, a, b, gating=gating, renormalise_weights=renorm)
    tau = 0.05 if gating == "soft" else None
    for row in range(batch_size):
        positions = real_positions(mask[row])
        expected = loop_weights(
            {t: float(scores[row, t]) for t in positions}, float(a[row]), float(b[row]), 0.5, 1.5, tau, renorm
        )
        for t in range(length):
            assert weights[row, t].item() == pytest.approx(expected.get(t, 0.0), abs=1e-5)


def test_renormalise_gives_mean_one_over_real_tokens_only():
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    weights = torch.tensor([[9.0, 0.5, 1.0, 1.5, 9.0], [0.7, 3.0, 3.0, 3.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    out = renormalise(weights, mask)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 0.5, 1.0, 1.5, 0.0]))
    torch.testing.assert_close(out[1], torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))
    assert (out[2] == 0).all() and torch.isfinite(out).all()


def test_class_statistics():
    scores = torch.tensor([[0.1, 0.5, 0.9, 0.0], [0.95, 0.2, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    weights = torch.tensor([[1.4, 1.0, 0.6, 0.0], [0.55, 1.2, 0.0, 0.0]])
    classes = token_classes(scores, mask, 0.7, 0.3)
    stats = class_statistics(weights, classes, mask)
    assert stats["share_key"].item() == pytest.approx(2 / 5)
    assert stats["share_transitional"].item() == pytest.approx(1 / 5)
    assert stats["share_ambiguous"].item() == pytest.approx(2 / 5)
    assert stats["weight_key"].item() == pytest.approx((1.4 + 1.2) / 2)
    assert stats["weight_ambiguous"].item() == pytest.approx((0.6 + 0.55) / 2)
    empty = class_statistics(weights, token_classes(scores, mask, 1.0, 0.0), mask)
    assert empty["share_key"].item() == 0 and empty["weight_key"].item() == 0  # an empty class logs 0


def test_extreme_thresholds_are_finite():
    scores = torch.tensor([0.0, 0.5, 1.0])
    for a, b in [(1.0, 0.0), (1.0, 0.999), (0.001, 0.0)]:
        for fn in (hard_weights, soft_weights):
            assert torch.isfinite(fn(scores, torch.tensor(a), torch.tensor(b))).all()
    a = torch.tensor(1.0, requires_grad=True)
    b = torch.tensor(0.0, requires_grad=True)
    soft_weights(scores, a, b).sum().backward()
    assert torch.isfinite(a.grad) and torch.isfinite(b.grad)
