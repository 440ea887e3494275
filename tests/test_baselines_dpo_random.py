"""DPO-Random's weights, and the engine pieces the new baselines rely on: record ids in the batch, KTO's
mismatched pairs, and the checks on what a method needs."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainingArguments

from baselines.dpo import weighted_dpo_loss
from baselines.dpo_random import random_weights, record_weights
from suite.engine import IGNORE, PreferenceCollator, PreferenceDataset, PreferenceTrainer, make_batch, mismatched_inputs
from suite.methods import Method, get_method
from suite.models import load_model, load_tokenizer


def records(n: int) -> list[dict]:
    return [
        {
            "id": f"rec-{i}",
            "prompt": [{"role": "user", "content": "Tell me about the sea." + " Please." * i}],
            "chosen": [{"role": "assistant", "content": "The sea is wide and blue." + " It sings." * (i % 3)}],
            "rejected": [{"role": "assistant", "content": "I cannot help." + " Sorry." * (2 * i)}],
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="module")
def dataset(tokenizer):
    return PreferenceDataset(records(6), tokenizer, max_length=96, max_prompt_length=48)


def test_record_weights_are_seeded_and_in_range():
    first = record_weights("rec-1", "chosen", 5000, seed=42, low=0.7, high=1.3)
    torch.testing.assert_close(first, record_weights("rec-1", "chosen", 5000, seed=42, low=0.7, high=1.3))
    assert not torch.equal(first, record_weights("rec-1", "chosen", 5000, seed=43, low=0.7, high=1.3))
    assert not torch.equal(first, record_weights("rec-2", "chosen", 5000, seed=42, low=0.7, high=1.3))
    assert not torch.equal(first, record_weights("rec-1", "rejected", 5000, seed=42, low=0.7, high=1.3))
    assert first.min() >= 0.7 and first.max() <= 1.3
    assert first.mean().item() == pytest.approx(1.0, abs=0.02)  # uniform on [0.7, 1.3]
    assert first.std().item() == pytest.approx(0.6 / 12**0.5, rel=0.05)
    torch.testing.assert_close(record_weights("rec-1", "chosen", 7, 42, 0.7, 1.3), first[:7])  # a prefix stays


def response_weights(batch_items, pad_token_id, record_id, seed=42):
    """The weights DPO-Random gives one record's response tokens when it is collated with ``batch_items``."""
    inputs = PreferenceCollator(pad_token_id)(batch_items)
    mask = (inputs["labels"][:, 1:] != IGNORE).float()
    chosen_mask, rejected_mask = mask.chunk(2)
    row = inputs["ids"].index(record_id)
    out = {}
    for side, side_mask in (("chosen", chosen_mask), ("rejected", rejected_mask)):
        weights = random_weights(inputs["ids"], side_mask, side, seed, 0.7, 1.3)
        assert (weights[side_mask == 0] == 0).all()
        out[side] = weights[row][side_mask[row].bool()]
    return out


def test_weights_do_not_depend_on_batch_composition_or_padding(dataset, tokenizer):
    pad = tokenizer.pad_token_id
    target = dataset[2]
    alone = response_weights([target], pad, "rec-2")
    crowded = response_weights([dataset[5], dataset[0], target], pad, "rec-2")  # longer rows: more padding
    first = response_weights([target, dataset[1]], pad, "rec-2")
    for side in ("chosen", "rejected"):
        assert len(alone[side]) == len(target[f"{side}_ids"])
        torch.testing.assert_close(alone[side], crowded[side])
        torch.testing.assert_close(alone[side], first[side])
    other_seed = response_weights([target], pad, "rec-2", seed=7)
    assert not torch.equal(alone["chosen"], other_seed["chosen"])


def test_dpo_random_loss_is_weighted_dpo_with_those_weights(dataset, tokenizer):
    items = [dataset[i] for i in range(4)]
    inputs = PreferenceCollator(tokenizer.pad_token_id)(items)
    assert inputs["ids"] == [f"rec-{i}" for i in range(4)]
    mask = (inputs["labels"][:, 1:] != IGNORE).float()
    generator = torch.Generator().manual_seed(0)
    logps = -torch.rand(mask.shape, generator=generator) * mask
    ref = -torch.rand(mask.shape, generator=generator) * mask
    batch = make_batch(logps, mask, ref, None)
    batch.extras["ids"] = inputs["ids"]
    params = get_method("dpo_random").defaults
    output = get_method("dpo_random").loss(batch, **params)
    chosen_w = random_weights(inputs["ids"], batch.chosen_mask, "chosen", params["seed"], 0.7, 1.3)
    rejected_w = random_weights(inputs["ids"], batch.rejected_mask, "rejected", params["seed"], 0.7, 1.3)
    expected = weighted_dpo_loss(batch, params["beta"], chosen_w, rejected_w)
    torch.testing.assert_close(output.loss, expected.loss)
    unweighted = weighted_dpo_loss(batch, params["beta"])
    assert abs(output.loss.item() - unweighted.loss.item()) > 1e-7, "weights had no effect"
    del batch.extras["ids"]
    with pytest.raises(ValueError, match="record ids"):
        get_method("dpo_random").loss(batch, **params)


def test_mismatched_pairs_rotate_completions_over_the_unpaired_rows(dataset, tokenizer):
    items = [dataset[i] for i in range(3)]
    inputs = PreferenceCollator(tokenizer.pad_token_id)(items)
    out = mismatched_inputs(inputs)
    prompts = [it["prompt_ids"] for it in items] * 2
    completions = [it["chosen_ids"] for it in items] + [it["rejected_ids"] for it in items]
    rotated = completions[-1:] + completions[:-1]
    for row in range(6):
        n = int(out["attention_mask"][row].sum())
        assert out["input_ids"][row, :n].tolist() == prompts[row] + rotated[row]
        assert out["labels"][row, :n].tolist() == [IGNORE] * len(prompts[row]) + rotated[row]
        assert (out["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert rotated[row] != completions[row]  # no row keeps its own completion
    cut = mismatched_inputs(inputs, max_length=20)
    assert cut["input_ids"].shape[1] == 20 and int(cut["attention_mask"].sum(-1).max()) == 20


def test_trainer_refuses_what_a_method_cannot_get(tiny_model_dir, tmp_path):
    model = load_model(tiny_model_dir)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    with pytest.raises(ValueError, match="live reference"):
        PreferenceTrainer(model=model, args=args, method=get_method("tdpo"), method_params={})
    broken = Method("broken", loss=lambda batch: None, reference="precomputed", needs_mismatched_pairs=True)
    with pytest.raises(ValueError, match="mismatched pairs"):
        PreferenceTrainer(model=model, args=args, method=broken, method_params={}, ref_model=model)
