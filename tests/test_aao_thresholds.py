"""The AW module: 1 >= a > b >= 0 for any input, its initial thresholds, and its input features."""

from __future__ import annotations

import pytest
import torch

from aao.thresholds import (
    MARGIN,
    AmbiguityThresholds,
    find_thresholds_module,
    logits_for,
    policy_features,
    thresholds_from_logits,
    token_entropies,
)
from suite.engine import PreferenceCollator, PreferenceDataset, forward_outputs, make_batch
from suite.models import load_model, load_tokenizer
from tests.test_aao_support import StandInPolicy, loop_features, pad_batch, random_batch


def assert_ordered(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == torch.float32 and b.dtype == torch.float32
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    assert (b >= 0).all() and (a <= 1).all()
    assert (a > b).all(), (a - b).min()


@pytest.mark.parametrize("scale", [0.0, 1.0, 30.0, 1e4, 1e30])
def test_constraint_holds_for_any_logits(scale):
    z = torch.randn(4096, 2, generator=torch.Generator().manual_seed(0)) * scale
    a, b = thresholds_from_logits(z)
    assert_ordered(a, b)
    assert (a - b >= MARGIN - 1e-6).all()  # up to float32 rounding near 1


def test_constraint_at_the_corners():
    corners = torch.tensor([[s1, s2] for s1 in (-1e4, 0.0, 1e4) for s2 in (-1e4, 0.0, 1e4)])
    corners = torch.cat([corners, torch.tensor([[float("inf"), float("-inf")], [float("-inf"), float("inf")]])])
    a, b = thresholds_from_logits(corners)
    assert_ordered(a, b)
    a64, b64 = thresholds_from_logits(corners.double())  # computed in float32 whatever comes in
    assert_ordered(a64, b64)


@pytest.mark.parametrize("fill", [1e4, -1e4, 0.0, float("nan"), float("inf")])
def test_module_output_is_ordered_for_extreme_inputs(fill):
    torch.manual_seed(0)
    module = AmbiguityThresholds(in_features=8)
    with torch.no_grad():  # a trained-looking, large last layer
        module.out.weight.normal_(0, 50.0)
    features = torch.randn(64, 8) * 1e4
    features[::2] = fill
    a, b = module(features)
    assert_ordered(a, b)
    a, b = module.to(torch.bfloat16)(features.bfloat16())  # a policy cast to bf16 carries it along
    assert_ordered(a, b)


def test_module_starts_at_the_fixed_thresholds():
    module = AmbiguityThresholds(in_features=4, init_a=0.7, init_b=0.3)
    a, b = module(torch.randn(10, 4) * 100)
    torch.testing.assert_close(a, torch.full((10,), 0.7), atol=1e-5, rtol=0)
    torch.testing.assert_close(b, torch.full((10,), 0.3), atol=1e-5, rtol=0)
    for a0, b0 in [(0.9, 0.1), (0.5, 0.49), (1.0, 0.0)]:
        a, b = thresholds_from_logits(torch.tensor([logits_for(a0, b0)]))
        assert a.item() == pytest.approx(a0, abs=2e-3) and b.item() == pytest.approx(b0, abs=2e-3)


def test_module_parameters_get_gradients():
    module = AmbiguityThresholds(in_features=8)
    a, b = module(torch.randn(5, 8))
    (a.sum() + 2 * b.sum()).backward()
    assert module.out.weight.grad.abs().sum() > 0 and module.out.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["logp", "logp_entropy"])
@pytest.mark.parametrize(("batch_size", "length", "dim"), [(1, 3, 2), (3, 9, 6), (4, 16, 5)])
def test_features_match_loops(kind, batch_size, length, dim):
    batch = random_batch(batch_size, length, dim, seed=length, policy=StandInPolicy(dim))
    features = policy_features(batch, kind)
    expected = torch.tensor(loop_features(batch, entropy=kind == "logp_entropy"))
    assert features.shape == (batch_size, 4 if kind == "logp" else 8)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(policy_features(pad_batch(batch, 5), kind), features)


def test_features_of_degenerate_responses_are_finite():
    batch = random_batch(3, 5, 4, lengths=[(0, 1, 1), (1, 0, 3), (0, 0, 0)], policy=StandInPolicy(4))
    assert torch.isfinite(policy_features(batch, "logp_entropy")).all()


def test_features_are_detached():
    batch = random_batch(2, 6, 3, policy=StandInPolicy(3))
    batch.chosen_logps.requires_grad_(True)
    batch.chosen_logits.requires_grad_(True)
    assert not policy_features(batch, "logp_entropy").requires_grad


def test_entropy_features_need_the_logits():
    batch = random_batch(2, 6, 3, policy=StandInPolicy(3))
    batch.chosen_logits = None
    with pytest.raises(ValueError, match="needs_logits"):
        policy_features(batch, "logp_entropy")
    assert policy_features(batch, "logp").shape == (2, 4)


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_entropies_do_not_depend_on_the_chunk(chunk):
    batch = random_batch(3, 9, 4, seed=8)
    whole = token_entropies(batch.chosen_logits, batch.chosen_mask, chunk=10_000)
    torch.testing.assert_close(token_entropies(batch.chosen_logits, batch.chosen_mask, chunk=chunk), whole)
    assert (whole[batch.chosen_mask == 0] == 0).all()


def test_entropies_from_the_engines_logits_equal_those_of_a_direct_forward(tiny_model_dir):
    """The engine's logits (needs_logits) at the predicting positions give each response token's entropy."""
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir)
    records = [
        {
            "id": str(i),
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": "The sea is blue."}],
        }
        for i, (prompt, chosen) in enumerate([("Bake bread?", "Mix flour and water."), ("Capital?", "Paris.")])
    ]
    dataset = PreferenceDataset(records, tokenizer, max_length=64, max_prompt_length=32)
    inputs = PreferenceCollator(tokenizer.pad_token_id)([dataset[0], dataset[1]])
    out = forward_outputs(model, inputs, hidden_states=True, logits=True)
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, :-1]
        logp = torch.log_softmax(logits.float(), -1)
        direct = -(logp.exp() * logp).sum(-1) * out.mask
    torch.testing.assert_close(token_entropies(out.logits, out.mask, chunk=3), direct)
    batch = make_batch(out.logps, out.mask, None, out.hidden, out.logits)
    batch.extras["model"] = model
    features = policy_features(batch, "logp_entropy")
    assert torch.isfinite(features).all()
    chosen, rejected = direct.chunk(2)
    torch.testing.assert_close(features[:, 4], chosen.sum(-1) / out.mask.chunk(2)[0].sum(-1))
    torch.testing.assert_close(features[:, 6], rejected.sum(-1) / out.mask.chunk(2)[1].sum(-1))


def test_missing_module_is_a_clear_error():
    with pytest.raises(RuntimeError, match="aao_thresholds"):
        find_thresholds_module(StandInPolicy(3))
    with pytest.raises(RuntimeError, match="fixed"):
        find_thresholds_module(None)
