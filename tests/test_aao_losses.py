"""AAO's losses (spec 3.5) and the whole registered loss: against loops, against DPO, gradients, edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from aao.config import DEFAULTS, AAOConfig
from aao.losses import chosen_reward, contrastive_terms, total_loss
from aao.method import METHOD, aao_loss, build_modules, thresholds_for
from aao.similarity import cosine_matrix, token_similarity
from aao.thresholds import ATTRIBUTE, AmbiguityThresholds
from aao.weights import token_weights
from suite.methods import get_method
from tests.test_aao_support import (
    StandInPolicy,
    loop_aao_loss,
    loop_features,
    loop_similarity,
    pad_batch,
    random_batch,
)

SHAPES = [(1, 3, 2), (2, 8, 4), (4, 13, 7)]
FIXED = {"thresholds": "fixed"}


def fixed_ab(batch_size: int, a: float = 0.7, b: float = 0.3) -> tuple[list[float], list[float]]:
    return [a] * batch_size, [b] * batch_size


@pytest.mark.parametrize(("batch_size", "length", "dim"), SHAPES)
@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {"reduction": "mean"},
        {"gating": "hard"},
        {"renormalise": False, "w_min": 0.2, "w_max": 2.0},
        {"fixed_a": 0.9, "fixed_b": 0.1, "lambda_con": 1.0, "lambda_rew": 0.5},
        {"contrastive": False, "reward": False},
    ],
)
def test_loss_matches_loops_with_fixed_thresholds(batch_size, length, dim, knobs):
    batch = random_batch(batch_size, length, dim, seed=length)
    params = {**FIXED, "beta": 0.5, **knobs}
    out = aao_loss(batch, **params)
    a, b = fixed_ab(batch_size, params.get("fixed_a", 0.7), params.get("fixed_b", 0.3))
    expected = loop_aao_loss(
        batch,
        a,
        b,
        beta=0.5,
        w_min=params.get("w_min", 0.5),
        w_max=params.get("w_max", 1.5),
        tau=None if params.get("gating") == "hard" else 0.05,
        renorm=params.get("renormalise", True),
        reduction=params.get("reduction", "max"),
        lambda_con=params.get("lambda_con", 0.1),
        lambda_rew=params.get("lambda_rew", 0.01),
        contrastive=params.get("contrastive", True),
        reward=params.get("reward", True),
    )
    assert out.loss.item() == pytest.approx(expected["total"], rel=1e-5, abs=1e-5)
    assert out.metrics["aao/loss_pref"].item() == pytest.approx(expected["pref"], rel=1e-5, abs=1e-5)
    assert out.metrics["aao/loss_con"].item() == pytest.approx(expected["con"], rel=1e-5, abs=1e-5)
    assert out.metrics["aao/loss_rew"].item() == pytest.approx(expected["rew"], rel=1e-5, abs=1e-5)


@pytest.mark.parametrize(("batch_size", "length", "dim"), SHAPES)
@pytest.mark.parametrize("features", ["logp_entropy", "logp"])
def test_loss_matches_loops_with_adaptive_thresholds(batch_size, length, dim, features):
    batch = random_batch(batch_size, length, dim, seed=length + 1)
    module = AmbiguityThresholds(in_features=8 if features == "logp_entropy" else 4)
    with torch.no_grad():
        module.out.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
    batch.extras["model"].add_module(ATTRIBUTE, module)
    out = aao_loss(batch, beta=0.3, aw_features=features)
    with torch.no_grad():
        a, b = module(torch.tensor(loop_features(batch, entropy=features == "logp_entropy")))
    if batch_size > 1:
        assert (a.max() - a.min()).item() > 1e-4, "thresholds should differ between pairs here"
    expected = loop_aao_loss(batch, a.tolist(), b.tolist(), beta=0.3)
    assert out.loss.item() == pytest.approx(expected["total"], rel=1e-5, abs=1e-5)
    assert out.metrics["aao/threshold_a"].item() == pytest.approx(a.mean().item(), abs=1e-6)
    assert out.metrics["aao/threshold_b"].item() == pytest.approx(b.mean().item(), abs=1e-6)


@pytest.mark.parametrize(("batch_size", "length", "dim"), SHAPES)
def test_contrastive_and_reward_terms_match_loops(batch_size, length, dim):
    batch = random_batch(batch_size, length, dim, seed=7)
    generator = torch.Generator().manual_seed(8)
    weights_w = torch.rand(batch_size, length, generator=generator) * 2 * batch.chosen_mask
    weights_l = torch.rand(batch_size, length, generator=generator) * 2 * batch.rejected_mask
    cos = cosine_matrix(batch.chosen_hidden, batch.rejected_hidden, batch.chosen_mask, batch.rejected_mask)
    s_pref, s_dis = contrastive_terms(cos, weights_w, weights_l, batch.chosen_mask, batch.rejected_mask)
    loops, _, _ = loop_similarity(
        batch.chosen_hidden, batch.rejected_hidden, batch.chosen_mask, batch.rejected_mask, "max", 1e-4
    )
    for k in range(batch_size):
        pairs = loops[k]
        tw, tl = int(batch.chosen_mask[k].sum()), int(batch.rejected_mask[k].sum())
        expected_pref = sum(float(weights_w[k, i]) * c for (i, _), c in pairs.items()) / (tw * tl)
        expected_dis = sum(float(weights_l[k, j]) * c for (_, j), c in pairs.items()) / (tl * tw)
        assert s_pref[k].item() == pytest.approx(expected_pref, abs=1e-5)
        assert s_dis[k].item() == pytest.approx(expected_dis, abs=1e-5)
        real = [t for t in range(length) if batch.chosen_mask[k, t] > 0]
        total = sum(float(batch.chosen_logps[k, t]) for t in real)
        assert chosen_reward(batch, "sum")[k].item() == pytest.approx(total, rel=1e-6)
        assert chosen_reward(batch, "mean")[k].item() == pytest.approx(total / len(real), rel=1e-6)
    assert total_loss(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0), 0.1, 0.01).item() == pytest.approx(1.23)


@pytest.mark.parametrize("thresholds", ["fixed", "adaptive"])
@pytest.mark.parametrize(("batch_size", "length", "dim"), SHAPES)
def test_unit_weights_without_extra_terms_is_exactly_dpo(thresholds, batch_size, length, dim):
    batch = random_batch(batch_size, length, dim, seed=11)
    beta = 0.1
    dpo = get_method("dpo").loss(batch, beta=beta)
    params = {"beta": beta, "w_min": 1.0, "w_max": 1.0, "contrastive": False, "reward": False}
    ours = aao_loss(batch, thresholds=thresholds, **params)
    assert torch.equal(ours.loss, dpo.loss)
    for key, value in dpo.metrics.items():
        assert torch.equal(ours.metrics[key], value), key


def test_metrics_are_logged_under_their_names():
    out = aao_loss(random_batch(3, 8, 4), beta=0.1)
    expected = {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen"}
    expected |= {f"aao/{name}" for name in ("loss", "loss_pref", "loss_con", "loss_rew", "threshold_a", "threshold_b")}
    for side in ("chosen", "rejected"):
        for cls in ("ambiguous", "transitional", "key"):
            expected |= {f"aao/{side}_share_{cls}", f"aao/{side}_weight_{cls}"}
    assert expected <= set(out.metrics)
    for side in ("chosen", "rejected"):
        shares = sum(out.metrics[f"aao/{side}_share_{c}"].item() for c in ("ambiguous", "transitional", "key"))
        assert shares == pytest.approx(1.0)
    assert all(torch.isfinite(v).all() for v in out.metrics.values())
    assert not any(v.requires_grad for v in out.metrics.values())


def test_gradient_reaches_the_aw_module_through_the_weights():
    batch = random_batch(4, 10, 5, seed=4)
    module = getattr(batch.extras["model"], ATTRIBUTE)
    # L_pref alone: the thresholds act only through the token weights
    aao_loss(batch, beta=0.5, contrastive=False, reward=False).loss.backward()
    for param in module.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()
    assert module.out.weight.grad.abs().sum() > 0 and module.hidden.weight.grad.abs().sum() > 0
    # L_con alone trains it too
    module.zero_grad()
    out = aao_loss(batch, beta=0.5, reward=False)
    (out.loss - out.metrics["aao/loss_pref"]).backward()
    assert module.out.weight.grad.abs().sum() > 0


def test_no_gradient_flows_through_the_detached_similarity():
    batch = random_batch(3, 9, 4, seed=6)
    for tensor in (batch.chosen_hidden, batch.rejected_hidden, batch.chosen_logps, batch.rejected_logps):
        tensor.requires_grad_(True)
    loss = aao_loss(batch, beta=0.5).loss
    grads = torch.autograd.grad(
        loss,
        [batch.chosen_hidden, batch.rejected_hidden, batch.chosen_logps, batch.rejected_logps],
        allow_unused=True,
    )
    assert grads[0] is None and grads[1] is None  # neither the similarity nor the AW features carry gradient
    assert grads[2] is not None and grads[2].abs().sum() > 0


def test_policy_gradient_is_the_weighted_dpo_gradient():
    """The thresholds (AW on policy statistics) and the similarity are inputs of the policy's gradient, not
    paths of it: d L_pref / d log pi(y_w,t) is exactly the DPO coefficient times the token's weight."""
    batch = random_batch(2, 7, 4, seed=9)
    batch.chosen_logps.requires_grad_(True)
    beta = 0.5
    out = aao_loss(batch, beta=beta, contrastive=False, reward=False)
    (grad,) = torch.autograd.grad(out.loss, batch.chosen_logps)
    with torch.no_grad():
        config = AAOConfig.from_params({"beta": beta})
        similarity = token_similarity(
            batch.chosen_hidden, batch.rejected_hidden, batch.chosen_mask, batch.rejected_mask
        )
        a, b = thresholds_for(batch, config)
        weights = token_weights(similarity.chosen_scores, batch.chosen_mask, a[:, None], b[:, None])
    margins = out.metrics["rewards/chosen"] - out.metrics["rewards/rejected"]  # beta * weighted margins
    for k in range(2):
        coefficient = -beta * (1 - 1 / (1 + math.exp(-margins[k].item()))) / 2  # d mean_k(-logsigmoid) / d m_w
        torch.testing.assert_close(grad[k], coefficient * weights[k])


@pytest.mark.parametrize("thresholds", ["fixed", "adaptive"])
def test_degenerate_inputs_are_finite(thresholds):
    lengths = [(1, 4, 4), (0, 1, 1), (2, 3, 0), (0, 0, 2), (0, 0, 0)]
    batch = random_batch(5, 6, 3, seed=2, lengths=lengths)
    batch.rejected_hidden[0] = batch.chosen_hidden[0]  # identical responses: max = min
    batch.rejected_logps[0] = batch.chosen_logps[0]
    batch.chosen_logps.requires_grad_(True)
    out = aao_loss(batch, beta=0.1, thresholds=thresholds)
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(v).all() for v in out.metrics.values())
    out.loss.backward()
    assert torch.isfinite(batch.chosen_logps.grad).all()
    for param in batch.extras["model"].parameters():
        assert param.grad is None or torch.isfinite(param.grad).all()


@pytest.mark.parametrize("thresholds", ["fixed", "adaptive"])
@pytest.mark.parametrize("reduction", ["max", "mean"])
def test_padding_changes_nothing(thresholds, reduction):
    batch = random_batch(3, 8, 5, seed=13)
    params = {"beta": 0.2, "thresholds": thresholds, "reduction": reduction}
    base = aao_loss(batch, **params)
    padded = aao_loss(pad_batch(batch, 7), **params)
    torch.testing.assert_close(padded.loss, base.loss)
    for key, value in base.metrics.items():
        torch.testing.assert_close(padded.metrics[key], value, msg=key)
    # and the weights themselves
    config = METHOD.defaults | params
    for candidate, cut in ((batch, None), (pad_batch(batch, 7), 8)):
        similarity = token_similarity(
            candidate.chosen_hidden,
            candidate.rejected_hidden,
            candidate.chosen_mask,
            candidate.rejected_mask,
            reduction,
        )
        a, b = thresholds_for(candidate, AAOConfig.from_params(config))
        weights = token_weights(similarity.chosen_scores, candidate.chosen_mask, a[:, None], b[:, None])
        if cut is None:
            reference = weights
        else:
            torch.testing.assert_close(weights[:, :cut], reference)
            assert (weights[:, cut:] == 0).all()


def test_method_is_registered_with_every_knob():
    method = get_method("aao")
    assert method is METHOD
    assert method.reference == "precomputed" and method.needs_hidden_states
    assert dict(method.defaults) == DEFAULTS
    assert method.defaults["w_min"] == 0.5 and method.defaults["w_max"] == 1.5 and method.defaults["tau"] == 0.05
    assert method.defaults["lambda_con"] == 0.1 and method.defaults["lambda_rew"] == 0.01
    assert method.defaults["aw_hidden"] == 32 and method.defaults["aw_learning_rate"] == 1e-3
    aao_loss(random_batch(2, 5, 3), **method.defaults)  # the engine passes every default as a keyword


def test_bad_knobs_fail_with_the_valid_names():
    batch = random_batch(2, 5, 3)
    with pytest.raises(ValueError, match="valid"):
        aao_loss(batch, lamda_con=0.1)
    with pytest.raises(ValueError, match="max, mean"):
        aao_loss(batch, reduction="min")
    with pytest.raises(ValueError, match="fixed_b < fixed_a"):
        aao_loss(batch, thresholds="fixed", fixed_a=0.2, fixed_b=0.3)


def test_missing_aw_module_is_a_clear_error():
    batch = random_batch(2, 5, 3, policy=StandInPolicy(3))
    with pytest.raises(RuntimeError, match="build_modules"):
        aao_loss(batch)
    assert torch.isfinite(aao_loss(batch, thresholds="fixed").loss)


def test_build_modules():
    policy = StandInPolicy(3)
    modules = build_modules(policy, METHOD.defaults)
    module, lr = modules[ATTRIBUTE]
    assert isinstance(module, AmbiguityThresholds) and lr == 1e-3
    assert module.hidden.in_features == 8 and module.hidden.out_features == 32
    assert build_modules(policy, {"aw_features": "logp", "aw_hidden": 4})[ATTRIBUTE][0].hidden.in_features == 4
    assert build_modules(policy, {"thresholds": "fixed"}) == {}
