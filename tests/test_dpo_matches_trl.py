"""The suite's DPO equals TRL 1.16's DPOTrainer (loss_type sigmoid) on the same model and batch.

Each side gets its own freshly built policy and reference (TRL wraps the reference it is given), TRL's precision
is set explicitly (its DPOConfig defaults to bf16, which autocasts), and the comparison runs on two differently
shaped models with responses up to ~100 tokens, under a tolerance that fits float32 sums.
"""

from __future__ import annotations

import pytest
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from suite.engine import PreferenceCollator, PreferenceDataset, forward_batch, make_batch
from suite.methods import get_method
from suite.models import load_tokenizer
from suite.reference import reference_logps
from tests.conftest import perturbed_pair
from tests.trl_pairs import records as pair_records
from tests.trl_pairs import tolerances, trl_records

BETA = 0.1
METRICS = [
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
]


def _trl_result(model_dir, tokenizer, tmp_path):
    policy, reference = perturbed_pair(model_dir)
    records = trl_records()
    args = DPOConfig(
        output_dir=str(tmp_path),
        beta=BETA,
        loss_type=["sigmoid"],
        per_device_train_batch_size=len(records),
        max_length=None,
        report_to=[],
        use_cpu=True,
        bf16=False,
        fp16=False,
    )
    trainer = DPOTrainer(
        model=policy,
        ref_model=reference,
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    policy.train()
    loss = trainer.compute_loss(policy, batch)
    return loss.item(), {k: trainer._metrics["train"][k][-1] for k in METRICS}, batch


def _suite_result(model_dir, tokenizer):
    policy, reference = perturbed_pair(model_dir)
    records = pair_records()
    dataset = PreferenceDataset(records, tokenizer, max_length=1024, max_prompt_length=512)
    stored = reference_logps(reference, dataset, tokenizer.pad_token_id, batch_size=2)
    dataset = PreferenceDataset(records, tokenizer, max_length=1024, max_prompt_length=512, reference=stored)
    inputs = PreferenceCollator(tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    policy.train()
    logps, mask, _ = forward_batch(policy, inputs)
    output = get_method("dpo").loss(make_batch(logps, mask, inputs["ref_logps"], None), beta=BETA)
    return output.loss.item(), {k: v.float().mean().item() for k, v in output.metrics.items()}, inputs


def test_dpo_loss_and_rewards_equal_trl(trl_model_dir, tmp_path):
    tokenizer = load_tokenizer(trl_model_dir)
    trl_loss, trl_metrics, trl_batch = _trl_result(trl_model_dir, tokenizer, tmp_path)
    ours_loss, ours_metrics, ours_batch = _suite_result(trl_model_dir, tokenizer)

    # Same tokens and the same response positions (TRL's sampler shuffles, so compare as sets).
    trl_ids = [
        row[mask.bool()].tolist() for row, mask in zip(trl_batch["input_ids"], trl_batch["attention_mask"], strict=True)
    ]
    ours_ids = [
        row[mask.bool()].tolist()
        for row, mask in zip(ours_batch["input_ids"], ours_batch["attention_mask"], strict=True)
    ]
    assert sorted(trl_ids) == sorted(ours_ids)
    assert trl_batch["completion_mask"].sum().item() == (ours_batch["labels"] != -100).sum().item()
    assert max(len(ids) for ids in ours_ids) > 100, "no long response: the tolerance would go untested"

    assert abs(trl_loss - 0.6931) > 1e-3, "policy equals reference: the comparison would be vacuous"
    tolerance = tolerances(trl_metrics, BETA)
    assert ours_loss == pytest.approx(trl_loss, rel=0, abs=tolerance["loss"])
    for key in METRICS:
        assert ours_metrics[key] == pytest.approx(trl_metrics[key], rel=0, abs=tolerance[key]), key
