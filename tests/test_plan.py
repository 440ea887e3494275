"""The paper run planned before it starts (pipeline/plan.py): its arithmetic against a hand computation on a small
config, and the Slurm profile's runtimes against the plan (a training job must outlive a checkpoint interval)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from pipeline.config import validate_config
from pipeline.plan import Hardware, Row, job_counts, plan, profile_fit
from tests.workflow_helpers import REPO, clean_checkout

PAPER = REPO / "workflow/config/paper.yaml"


def small_config() -> dict:
    """One hub variant (Llama-3.1-8B, SFT skipped), DPO and KTO on UltraFeedback, AlpacaEval only."""
    paper = yaml.safe_load(PAPER.read_text())
    return {
        "scale": "paper",
        "datasets": {name: paper["datasets"][name] for name in ("ultrafeedback", "alpaca_eval")},
        "variants": {
            "llama-instruct": {"model": {"hub": "meta-llama/Llama-3.1-8B-Instruct"}, "preference_data": "ultrafeedback"}
        },
        "methods": {"dpo": {"beta": 0.01}, "kto": {"beta": 0.01}},
        "benchmarks": {"alpaca_eval": {"prompts": "alpaca_eval"}},
        "judge": {"backend": "offline"},
        "training": {**paper["training"], "gradient_checkpointing": False},
    }


def test_the_plans_arithmetic_equals_a_hand_computation(tmp_path: Path) -> None:
    work = clean_checkout(tmp_path)
    configfile = work / "small.yaml"
    configfile.write_text(yaml.safe_dump(small_config()))
    config = validate_config(small_config())
    counts = job_counts(configfile)
    assert (counts["train"], counts["reference_logps"], counts["generate"]) == (2, 1, 2)

    profile = {"set-resources": {"train": {"gpu": 8, "runtime": 240}, "reference_logps": {"gpu": 1},
                                 "generate": {"gpu": 1}}}  # fmt: skip
    hardware = Hardware(nodes=1, gpus_per_node=8, peak_tflops=1000.0, train_utilisation=0.5)
    rows = {row.rule: row for row in plan(config, profile, counts, hardware)}

    # by hand: UltraFeedback's assumed 61135 pairs of 180 prompt + 290 response tokens, chosen and rejected,
    # one epoch; Llama-3.1-8B has 8.03e9 parameters; 6N FLOPs per trained token, KTO 12N; 1000 TFLOP/s at 50%
    tokens = 61135 * (180 + 290) * 2
    dpo_hours = 6 * 8.03e9 * tokens / (1000e12 * 0.5) / 3600
    kto_hours = 12 * 8.03e9 * tokens / (1000e12 * 0.5) / 3600
    train = rows["train"]
    assert train.tokens == pytest.approx(tokens)
    assert train.gpu_hours == pytest.approx(kto_hours)  # the longest job
    assert train.total_gpu_hours == pytest.approx(dpo_hours + kto_hours)
    assert train.steps == math.ceil(61135 / (2 * 8 * 8))  # per-device 2 x accumulation 8 x 8 GPUs
    assert train.wall_hours(8) == pytest.approx(2 * kto_hours / 8)  # one 8-GPU job at a time, the longest twice
    reference = rows["reference_logps"]
    assert reference.gpu_hours == pytest.approx(2 * 8.03e9 * tokens / (1000e12 * 0.5) / 3600)
    assert reference.wall_hours(8) == pytest.approx(reference.gpu_hours)  # one job, one GPU
    generate = rows["generate"]  # 805 AlpacaEval prompts of 40 tokens, 400-token answers, 5% utilisation
    assert generate.tokens == pytest.approx(805 * (40 + 400))
    assert generate.gpu_hours == pytest.approx(2 * 8.03e9 * 805 * 440 / (1000e12 * 0.05) / 3600)
    assert rows["prepare_data"].gpu_hours == 0 and rows["evaluate"].judge_usd == 0  # CPU jobs, offline judge

    fit = {f.rule: f for f in profile_fit(list(rows.values()), profile, config)}["train"]
    assert fit.checkpoint_min == pytest.approx(kto_hours / 8 * 60 / train.steps * 50)  # save_steps 50
    assert not fit.fatal and fit.restarts == 0


def test_a_runtime_shorter_than_a_checkpoint_interval_is_fatal() -> None:
    config = validate_config(small_config())
    row = Row("train", jobs=1, gpus_per_job=8, gpu_hours=80.0, total_gpu_hours=80.0, steps=100, step_minutes=6.0)
    fits = profile_fit([row], {"set-resources": {"train": {"gpu": 8, "runtime": 120}}}, config)
    assert fits[0].checkpoint_min == pytest.approx(300) and fits[0].fatal  # 50 steps x 6 min > 120 min
    fits = profile_fit([row], {"set-resources": {"train": {"gpu": 8, "runtime": 360}}}, config)
    assert not fits[0].fatal and fits[0].restarts == 1  # 600 min of work in 360-min jobs: one restart


def test_the_slurm_profile_fits_the_paper_plan() -> None:
    """Every training job of the paper run outlives its checkpoint interval, and needs no more restarts than the
    profile's retries."""
    profile = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    config = validate_config(yaml.safe_load(PAPER.read_text()))
    counts = job_counts(PAPER)
    rows = plan(config, profile, counts, Hardware(), results=Path("does-not-exist"))
    fits = profile_fit(rows, profile, config)
    training = [f for f in fits if f.checkpoint_min is not None]
    assert {f.rule for f in training} >= {"train", "sft", "train_rto", "train_tis_dpo"}
    for fit in fits:
        assert not fit.fatal, f"{fit.rule}: runtime {fit.runtime_min} min < checkpoint every {fit.checkpoint_min}"
        assert fit.restarts <= profile["retries"], fit
        # the README's margins: a runtime about three times the planned job, far above a checkpoint interval
        assert fit.runtime_min >= 2.5 * fit.job_min, f"{fit.rule}: runtime {fit.runtime_min} min, job {fit.job_min}"
        if fit.checkpoint_min is not None:
            assert fit.runtime_min >= 10 * fit.checkpoint_min, fit
