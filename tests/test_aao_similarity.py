"""Eq. 7 (token similarity against the other response), batched, against a token-by-token transcription."""

from __future__ import annotations

import pytest
import torch

from aao.similarity import response_representations, token_similarity
from suite.engine import IGNORE, PreferenceBatch, PreferenceCollator, PreferenceDataset, forward_outputs
from suite.models import load_model, load_tokenizer
from tests.test_aao_support import StandInPolicy, loop_similarity, pad_batch, random_batch, real_positions

SHAPES = [(1, 4, 3), (3, 9, 6), (5, 17, 8)]


@pytest.mark.parametrize("reduction", ["max", "mean"])
@pytest.mark.parametrize(("batch_size", "length", "dim"), SHAPES)
def test_similarity_matches_loops(reduction, batch_size, length, dim):
    batch = random_batch(batch_size, length, dim, seed=length)
    out = token_similarity(
        batch.chosen_hidden, batch.rejected_hidden, batch.chosen_mask, batch.rejected_mask, reduction, 1e-4
    )
    cos, s_w, s_l = loop_similarity(
        batch.chosen_hidden, batch.rejected_hidden, batch.chosen_mask, batch.rejected_mask, reduction, 1e-4
    )
    assert out.cosine.shape == (batch_size, length, length)
    for b in range(batch_size):
        for i in range(length):
            for j in range(length):
                expected = cos[b].get((i, j), 0.0)  # zero off real (i, j) pairs
                assert out.cosine[b, i, j].item() == pytest.approx(expected, abs=1e-5)
            assert out.chosen_scores[b, i].item() == pytest.approx(s_w[b].get(i, 0.0), abs=1e-5)
            assert out.rejected_scores[b, i].item() == pytest.approx(s_l[b].get(i, 0.0), abs=1e-5)


def test_scores_span_zero_to_one_per_response():
    batch = random_batch(4, 12, 5, seed=3, lengths=[(2, 5, 7), (0, 12, 3), (1, 4, 4), (3, 2, 9)])
    out = token_similarity(batch.chosen_hidden, batch.rejected_hidden, batch.chosen_mask, batch.rejected_mask)
    for scores, mask in ((out.chosen_scores, batch.chosen_mask), (out.rejected_scores, batch.rejected_mask)):
        for b in range(4):
            real = scores[b][mask[b].bool()]
            assert real.min().item() == pytest.approx(0.0, abs=1e-6)
            assert real.max().item() == pytest.approx(1.0, abs=1e-3)  # 1 - O(eps)
            assert (scores[b][~mask[b].bool()] == 0).all()


@pytest.mark.parametrize("reduction", ["max", "mean"])
def test_padding_and_prompt_tokens_never_influence_a_score(reduction):
    batch = random_batch(3, 10, 4, seed=5)
    base = token_similarity(
        batch.chosen_hidden, batch.rejected_hidden, batch.chosen_mask, batch.rejected_mask, reduction
    )
    # Garbage of any size at every non-response position: nothing changes.
    hidden_w, hidden_l = batch.chosen_hidden.clone(), batch.rejected_hidden.clone()
    hidden_w[~batch.chosen_mask.bool()] = 1e3 * torch.randn_like(hidden_w[~batch.chosen_mask.bool()])
    hidden_l[~batch.rejected_mask.bool()] = -1e3 * torch.ones_like(hidden_l[~batch.rejected_mask.bool()])
    other = token_similarity(hidden_w, hidden_l, batch.chosen_mask, batch.rejected_mask, reduction)
    torch.testing.assert_close(other.chosen_scores, base.chosen_scores)
    torch.testing.assert_close(other.rejected_scores, base.rejected_scores)
    torch.testing.assert_close(other.cosine, base.cosine)
    # More padding positions: the same scores on the old positions, zeros on the new ones.
    padded = pad_batch(batch, 6)
    longer = token_similarity(
        padded.chosen_hidden, padded.rejected_hidden, padded.chosen_mask, padded.rejected_mask, reduction
    )
    torch.testing.assert_close(longer.chosen_scores[:, :10], base.chosen_scores)
    torch.testing.assert_close(longer.rejected_scores[:, :10], base.rejected_scores)
    torch.testing.assert_close(longer.cosine[:, :10, :10], base.cosine)
    assert (longer.chosen_scores[:, 10:] == 0).all()


def test_degenerate_inputs_are_finite():
    # identical responses (max = min), one-token responses, an all-padding response
    batch = random_batch(4, 6, 3, seed=2, lengths=[(1, 4, 4), (0, 1, 1), (2, 3, 0), (0, 0, 2)])
    batch.rejected_hidden[0] = batch.chosen_hidden[0]
    out = token_similarity(batch.chosen_hidden, batch.rejected_hidden, batch.chosen_mask, batch.rejected_mask)
    for tensor in (out.cosine, out.chosen_scores, out.rejected_scores, out.chosen_raw, out.rejected_raw):
        assert torch.isfinite(tensor).all()
    # identical sides: every token's best match is itself, all raw scores 1 (up to rounding), normalised
    # to ~0: the default eps is above float32 noise, so rounding differences are not blown up to [0, 1]
    real = batch.chosen_mask[0].bool()
    assert torch.allclose(out.chosen_raw[0][real], torch.ones(int(real.sum())), atol=1e-6)
    assert out.chosen_scores[0].max() < 0.01
    assert (out.chosen_scores[2] == 0).all() and (out.rejected_scores[3] == 0).all()


def test_hidden_representation_is_detached():
    batch = random_batch(2, 7, 4, seed=1)
    batch.chosen_hidden.requires_grad_(True)
    chosen, rejected = response_representations(batch, "hidden")
    assert not chosen.requires_grad and not rejected.requires_grad


def test_embedding_representation_uses_the_response_tokens():
    policy = StandInPolicy(dim=5)
    labels = torch.full((4, 6), IGNORE)  # 2 pairs: rows 0-1 chosen, 2-3 rejected
    labels[0, 2:5] = torch.tensor([3, 4, 5])
    labels[1, 1:6] = torch.tensor([1, 2, 3, 4, 5])
    labels[2, 2:4] = torch.tensor([7, 8])
    labels[3, 1:3] = torch.tensor([9, 10])
    mask = (labels[:, 1:] != IGNORE).float()
    zeros = torch.zeros(2, 5)
    batch = PreferenceBatch(zeros, zeros, mask[:2], mask[2:], extras={"model": policy, "inputs": {"labels": labels}})
    chosen, rejected = response_representations(batch, "embedding")
    for b in range(2):
        for t in real_positions(batch.chosen_mask[b]):
            assert torch.equal(chosen[b, t], policy.embed.weight[labels[b, t + 1]].detach())
        for t in real_positions(batch.rejected_mask[b]):
            assert torch.equal(rejected[b, t], policy.embed.weight[labels[2 + b, t + 1]].detach())
    assert not chosen.requires_grad


def test_missing_representations_say_what_they_need():
    batch = random_batch(2, 5, 3)
    with pytest.raises(NotImplementedError, match="live reference"):
        response_representations(batch, "reference")
    with pytest.raises(NotImplementedError, match="inputs"):
        response_representations(batch, "embedding")


def test_engine_hidden_states_are_each_tokens_own(tiny_model_dir):
    """Shifted position j holds token j+1's own last hidden state: a key token that differs after a shared
    prefix gets a different vector in chosen and rejected (the predicting position's would be identical)."""
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir)
    record = {
        "id": "0",
        "prompt": [{"role": "user", "content": "Tell me about the river."}],
        "chosen": [{"role": "assistant", "content": "Here is a kind note."}],
        "rejected": [{"role": "assistant", "content": "Here is a rude note."}],
    }
    dataset = PreferenceDataset([record], tokenizer, max_length=64, max_prompt_length=32)
    inputs = PreferenceCollator(tokenizer.pad_token_id)([dataset[0]])
    out = forward_outputs(model, inputs, hidden_states=True)
    with torch.no_grad():
        full = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], output_hidden_states=True)
    torch.testing.assert_close(out.hidden, full.hidden_states[-1][:, 1:])
    targets = inputs["labels"][:, 1:]
    real = (out.mask[0] > 0) & (out.mask[1] > 0)
    differing = [t for t in range(targets.shape[1]) if real[t] and targets[0, t] != targets[1, t]]
    assert differing, "the pair must differ in a response token"
    key = differing[0]
    first = int(real.nonzero()[0])
    assert torch.equal(targets[0, first:key], targets[1, first:key])  # a shared response prefix
    torch.testing.assert_close(out.hidden[0, first:key], out.hidden[1, first:key])
    assert not torch.allclose(out.hidden[0, key], out.hidden[1, key])
