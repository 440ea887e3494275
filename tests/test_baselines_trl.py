"""IPO, SimPO and KTO equal TRL 1.16 (DPOTrainer loss_type ipo; CPOTrainer simpo with cpo_alpha 0; KTOTrainer)
on the same model and batch: the same tokens first, then the loss and the logged metrics.

As in tests/test_dpo_matches_trl.py: each side builds its own models, TRL's precision is explicit (bf16 off), every
comparison runs on two differently shaped models, and tolerances fit float32 sums (tests/trl_pairs.py).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import TrainingArguments
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

from suite.engine import (
    PreferenceCollator,
    PreferenceDataset,
    PreferenceTrainer,
    forward_batch,
    make_batch,
    mismatched_inputs,
)
from suite.methods import get_method
from suite.models import load_model, load_tokenizer
from suite.reference import reference_logps
from tests.conftest import perturbed_pair
from tests.trl_pairs import PAIRS, records, tolerances, trl_records

REWARDS = ["rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected"]
PAIRED = [*REWARDS, "rewards/accuracies"]
TRL_ARGS = {
    "report_to": [],
    "use_cpu": True,
    "bf16": False,
    "fp16": False,
    "gradient_checkpointing": False,
    "max_length": None,
}


@pytest.fixture
def tokenizer(trl_model_dir):
    return load_tokenizer(trl_model_dir)


def close(ours: dict[str, float], theirs: dict[str, float], tolerance: dict[str, float], keys) -> None:
    for key in keys:
        assert ours[key] == pytest.approx(theirs[key], rel=0, abs=tolerance[key]), key


def suite_inputs(tokenizer, reference=None) -> dict:
    """The suite's collated batch of all pairs, with precomputed reference log-probs if a reference is given."""
    dataset = PreferenceDataset(records(), tokenizer, max_length=1024, max_prompt_length=512)
    if reference is not None:
        stored = reference_logps(reference, dataset, tokenizer.pad_token_id, batch_size=2)
        dataset = PreferenceDataset(records(), tokenizer, max_length=1024, max_prompt_length=512, reference=stored)
    return PreferenceCollator(tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])


def rows(input_ids, attention_mask) -> list[list[int]]:
    return [row[mask.bool()].tolist() for row, mask in zip(input_ids, attention_mask, strict=True)]


def as_floats(metrics: dict) -> dict[str, float]:
    return {k: v.float().mean().item() for k, v in metrics.items()}


# ---------------------------------------------------------------- IPO


def test_ipo_equals_trl(trl_model_dir, tokenizer, tmp_path):
    policy, reference = perturbed_pair(trl_model_dir)
    tau = 0.5
    trainer = DPOTrainer(
        model=policy,
        ref_model=reference,
        args=DPOConfig(
            output_dir=str(tmp_path), beta=tau, loss_type=["ipo"], per_device_train_batch_size=len(PAIRS), **TRL_ARGS
        ),
        train_dataset=Dataset.from_list(trl_records()),
        processing_class=tokenizer,
    )
    trl_batch = next(iter(trainer.get_train_dataloader()))
    policy.train()
    trl_loss = trainer.compute_loss(policy, trl_batch).item()
    trl_metrics = {k: trainer._metrics["train"][k][-1] for k in PAIRED}

    policy, reference = perturbed_pair(trl_model_dir)
    inputs = suite_inputs(tokenizer, reference)
    assert sorted(rows(trl_batch["input_ids"], trl_batch["attention_mask"])) == sorted(
        rows(inputs["input_ids"], inputs["attention_mask"])
    )
    assert trl_batch["completion_mask"].sum().item() == (inputs["labels"] != -100).sum().item()

    logps, mask, _ = forward_batch(policy, inputs)
    output = get_method("ipo").loss(make_batch(logps, mask, inputs["ref_logps"], None), tau=tau)
    assert abs(trl_loss - (1 / (2 * tau)) ** 2) > 1e-3, "policy equals reference: the comparison would be vacuous"
    tolerance = tolerances(trl_metrics, tau)
    # IPO's loss is the square of token-averaged log-ratios: its error is bounded by the summed ones' (h <= 1/(2 tau))
    assert output.loss.item() == pytest.approx(trl_loss, rel=0, abs=tolerance["loss"] / tau)
    close(as_floats(output.metrics), trl_metrics, tolerance, PAIRED)


# ---------------------------------------------------------------- SimPO


def test_simpo_equals_trl_cpo(trl_model_dir, tokenizer, tmp_path):
    """CPOTrainer tokenises text itself and adds BOS and a second EOS to our chat-templated sequences, so its own
    batch differs by construction; its loss is compared on the suite's tokens, fed to its own forward and loss."""
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    policy, _ = perturbed_pair(trl_model_dir)
    beta, ratio, smoothing = 2.5, 0.55, 0.1
    trainer = CPOTrainer(
        model=policy,
        args=CPOConfig(
            output_dir=str(tmp_path),
            loss_type="simpo",
            cpo_alpha=0.0,
            beta=beta,
            simpo_gamma=ratio * beta,
            label_smoothing=smoothing,
            per_device_train_batch_size=len(PAIRS),
            **{**TRL_ARGS, "max_length": 1024},
        ),
        train_dataset=Dataset.from_list(trl_records()),
        processing_class=tokenizer,
    )
    own = trainer.train_dataset[0]
    inputs = suite_inputs(tokenizer)
    ours_first = rows(inputs["input_ids"], inputs["attention_mask"])[0]
    assert own["chosen_input_ids"] == [tokenizer.bos_token_id, *ours_first, tokenizer.eos_token_id]

    n = len(PAIRS)
    batch = {
        f"{side}_{key}": inputs[key][part]
        for side, part in (("chosen", slice(0, n)), ("rejected", slice(n, 2 * n)))
        for key in ("input_ids", "attention_mask", "labels")
    }
    policy.train()
    trl_loss, trl_metrics = trainer.get_batch_loss_metrics(policy, batch, train_eval="train")

    policy, _ = perturbed_pair(trl_model_dir)
    policy.train()
    logps, mask, _ = forward_batch(policy, inputs)
    output = get_method("simpo").loss(
        make_batch(logps, mask, None, None), beta=beta, gamma_beta_ratio=ratio, label_smoothing=smoothing
    )
    equal_margin = (
        -F.logsigmoid(torch.tensor(-ratio * beta)) * (1 - smoothing)
        - F.logsigmoid(torch.tensor(ratio * beta)) * smoothing
    )
    assert abs(trl_loss.item() - equal_margin.item()) > 1e-3, "chosen and rejected equally likely: vacuous"
    assert trl_metrics["nll_loss"] == 0.0
    # SimPO's rewards are beta * token-averaged policy log-probs: no reference sum, and averages are more precise
    tolerance = tolerances(trl_metrics, beta)
    assert output.loss.item() == pytest.approx(trl_loss.item(), rel=0, abs=tolerance["loss"])
    close(as_floats(output.metrics), trl_metrics, tolerance, PAIRED)


# ---------------------------------------------------------------- KTO


def kto_models(model_dir, tokenizer):
    """A fresh reference and a policy made more likely than it on the chosen completions, so KTO's KL reference
    point is > 0 (with a randomly perturbed policy it is clamped to 0 and never enters the loss) and desirable and
    undesirable examples' log-ratios differ from it; the same for every call."""
    torch.manual_seed(0)
    reference, policy = load_model(model_dir), load_model(model_dir)
    inputs = suite_inputs(tokenizer)
    chosen = torch.arange(len(PAIRS))
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(3):
        logps, mask, _ = forward_batch(policy, inputs)
        loss = -(logps[chosen] * mask[chosen]).sum() / mask[chosen].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy, reference


def test_kto_equals_trl(trl_model_dir, tokenizer, tmp_path):
    policy, reference = kto_models(trl_model_dir, tokenizer)
    beta = 0.5
    n = len(PAIRS)
    trl = KTOTrainer(
        model=policy,
        ref_model=reference,
        args=KTOConfig(output_dir=str(tmp_path / "trl"), beta=beta, per_device_train_batch_size=2 * n, **TRL_ARGS),
        train_dataset=Dataset.from_list(trl_records()),
        processing_class=tokenizer,
    )
    trl_batch = next(iter(trl.get_train_dataloader()))
    policy.train()
    trl_loss = trl.compute_loss(policy, trl_batch).item()
    trl_metrics = {k: trl._metrics["train"][k][-1] for k in [*REWARDS, "kl"]}

    method = get_method("kto")
    policy, reference = kto_models(trl_model_dir, tokenizer)
    ours = PreferenceTrainer(
        model=policy,
        args=TrainingArguments(output_dir=str(tmp_path / "ours"), report_to=[], use_cpu=True),
        data_collator=PreferenceCollator(tokenizer.pad_token_id),
        method=method,
        method_params={**method.defaults, "beta": beta},
        ref_model=reference,
    )
    inputs = suite_inputs(tokenizer)
    # Same examples in the same order (TRL: chosen ones desirable, then rejected ones), same mismatched KL rows.
    assert trl_batch["label"].tolist() == [True] * n + [False] * n
    assert rows(trl_batch["input_ids"], trl_batch["attention_mask"]) == rows(
        inputs["input_ids"], inputs["attention_mask"]
    )
    kl_inputs = mismatched_inputs(inputs)
    assert rows(trl_batch["KL_input_ids"], trl_batch["KL_attention_mask"]) == rows(
        kl_inputs["input_ids"], kl_inputs["attention_mask"]
    )
    assert trl_batch["KL_completion_mask"].sum().item() == (kl_inputs["labels"] != -100).sum().item()

    policy.train()
    output = method.loss(ours.preference_batch(policy, inputs), **ours.method_params)
    assert output.loss.requires_grad
    assert trl_metrics["kl"] > 1e-4, "the KL reference point is clamped to 0: the comparison would be vacuous"
    assert abs(trl_loss - 0.5) > 1e-3, "policy equals reference: the comparison would be vacuous"
    # KTO's KL reference point is beta * a batch mean of summed log-ratios: the margin's tolerance covers it
    tolerance = {**tolerances(trl_metrics, beta), "kl": tolerances(trl_metrics, 1.0)["rewards/margins"]}
    assert output.loss.item() == pytest.approx(trl_loss, rel=0, abs=tolerance["loss"])
    values = as_floats(output.metrics)
    close(values, trl_metrics, tolerance, [*REWARDS, "kl"])
    assert not math.isnan(values["rewards/accuracies"])
