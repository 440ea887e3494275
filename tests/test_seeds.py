"""Seeds: every (variant, method) trained once per seed; the first seed keeps the plain paths."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import validate_config
from suite.experiments import runs
from tests.workflow_helpers import REPO, clean_checkout, job_counts, snakemake


def cpu_config(**overrides: object) -> dict:
    config = yaml.safe_load((REPO / "workflow/config/config.yaml").read_text())
    config.update(copy.deepcopy(overrides))
    return validate_config(config)


def test_one_seed_keeps_the_runs_as_they_were() -> None:
    config = cpu_config()
    config["experiments"]["hh"]["seeds"] = None
    found = runs(config)
    assert set(found) == {"llama-base", "llama-instruct", "mistral-base", "mistral-instruct", "hh-llama-base"}
    assert all(run.replicate == 0 and run.base == name and run.seed == 42 for name, run in found.items())
    assert found["llama-base"].spec["training"] == {}, "no seed override: the training block decides"


def test_each_further_seed_is_a_run_from_the_same_start() -> None:
    found = runs(cpu_config(seeds=[7, 8, 9]))
    assert {n for n in found if n.startswith("mistral-base")} == {
        "mistral-base",
        "mistral-base-seed8",
        "mistral-base-seed9",
    }
    first, third = found["mistral-base"], found["mistral-base-seed9"]
    assert (first.seed, first.replicate, third.seed, third.replicate) == (7, 0, 9, 2)
    assert first.spec["training"]["seed"] == 7 and third.spec["training"]["seed"] == 9
    assert third.spec["start_of"] == "mistral-base" and third.base == "mistral-base"
    hh = [n for n in found if n.startswith("hh-")]
    assert hh == ["hh-llama-base", "hh-llama-base-seed43"], "an experiment's own seeds win"
    assert found["hh-llama-base-seed43"].spec["start_of"] == "llama-base", "HH runs start from the SFT model"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_checkout(tmp_path_factory.mktemp("clone"))


def test_the_dag_trains_each_seed_and_shares_reference_log_probs(checkout: Path) -> None:
    config = yaml.safe_load((REPO / "workflow/config/config.yaml").read_text())
    (checkout / "two.yaml").write_text(yaml.safe_dump({**config, "seeds": [42, 5]}))
    one = job_counts(snakemake(checkout, "-n").stdout)
    run = snakemake(checkout, "-n", "-p", "--configfile", "two.yaml")
    assert run.returncode == 0, run.stderr
    two = job_counts(run.stdout)
    variants = len(cpu_config()["variants"])
    assert two["train"] - one["train"] == variants * 7, "the 7 methods the train rule runs, per main variant"
    for rule in ("generate", "evaluate", "train_tis_dpo", "train_rto", "tis_weights", "train_dpo_reverse"):
        assert two[rule] == 2 * one[rule], rule
    assert two["reference_logps"] == one["reference_logps"], "reference log-probs are per (variant, data), not seed"
    assert two["aggregate"] == one["aggregate"] == 2 and two["claims"] == 1

    pattern = r"-m pipeline\.train --method dpo .*?--out results/train/mistral-base-seed5/dpo/model.*"
    train = re.search(pattern, run.stdout)
    assert train, "the second seed's DPO run"
    command = train.group(0)
    assert "--model results/models/mistral-base/sft " in command
    assert "--reference results/reference/mistral-base/ultrafeedback.pt " in command
    assert json.loads(re.search(r"--training '(\{.*?\})'", command).group(1))["seed"] == 5
    pattern = r"pipeline\.generate --model results/train/mistral-base-seed5/dpo/model .*"
    generate = re.search(pattern, run.stdout).group(0)
    assert "--seed 43" in generate, "each seed's run samples its own answers (top-level seed + replicate)"
    assert "results/eval/mistral-base-seed5/dpo/alpaca_eval.json" in run.stdout


def test_the_judge_budget_plans_every_seed() -> None:
    from evals.budget import evaluations

    planned = {label: models for label, _, _, models in evaluations(cpu_config())}
    assert planned["hh/harmless"] == [("hh-llama-base", "dpo"), ("hh-llama-base", "aao"),
                                      ("hh-llama-base-seed43", "dpo"), ("hh-llama-base-seed43", "aao")]  # fmt: skip
