"""Capability retention with lm-eval: the local smoke task on the tiny model, the result record, the helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evals import capability as cap
from evals import get_benchmark
from pipeline.aggregate import result_rows
from suite.io import read_json

REPO = Path(__file__).resolve().parents[1]
LOCAL = {
    "tasks": ["aao_smoke_mc"],
    "num_fewshot": 0,
    "include_path": "workflow/resources/smoke/lm_eval",
    "device": "cpu",
    "batch_size": 16,
}


@pytest.fixture(scope="module")
def run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One CLI run of the local task on the tiny model, from the repository root as in the workflow."""
    out = tmp_path_factory.mktemp("capability") / "results/eval/llama-base/dpo"
    paths = {"result": out / "capability.json", "samples": out / "capability.annotations.json"}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        argv = ["--model", str(tiny_model_dir), "--generator", "llama-base-dpo", "--options", json.dumps(LOCAL)]
        cap.main([*argv, "--out", str(paths["result"]), "--samples-out", str(paths["samples"])])
    return paths


def test_local_task_runs_on_the_tiny_model(run: dict[str, Path], tiny_model_dir: Path) -> None:
    result = read_json(run["result"])
    task = result["tasks"]["aao_smoke_mc"]
    assert 0.0 <= task["value"] <= 1.0
    assert task["metric"] == "acc,none" and task["n"] == 20 and task["num_fewshot"] == 0
    assert task["stderr"] == pytest.approx((task["value"] * (1 - task["value"]) / 19) ** 0.5)
    assert result["capability"] == pytest.approx(100 * task["value"])
    assert result["capability_se"] == pytest.approx(100 * task["stderr"])
    assert result["n"] == 20 and result["generator"] == "llama-base-dpo"
    assert result["model"]["pretrained"] == str(tiny_model_dir)
    assert result["lm_eval_version"] == "0.4.13" and result["apply_chat_template"] is True
    assert result["options"]["include_path"] == LOCAL["include_path"]
    assert result["judge"].startswith("none") and result["judge_is_offline"] is False
    samples = read_json(run["samples"])
    assert len(samples) == 20 and {"doc", "target", "acc"} <= set(samples[0])
    assert sum(s["acc"] for s in samples) / 20 == pytest.approx(task["value"])


def test_result_becomes_a_table_column(run: dict[str, Path]) -> None:
    table, notes = result_rows([run["result"]])
    assert table.loc[0, "Capability avg %"] == pytest.approx(read_json(run["result"])["capability"])
    assert any(n.startswith("capability: judge none") for n in notes)


def test_benchmark_contract() -> None:
    module = get_benchmark("capability")
    assert module is cap and cap.NEEDS_GENERATION is False
    assert set(cap.COLUMNS) == set(cap.ERRORS)
    with pytest.raises(NotImplementedError):
        cap.read_prompts("x")


def test_local_tasks_skip_the_builtin_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    manager = cap.task_manager(LOCAL["include_path"], ["aao_smoke_mc"])
    assert manager.all_tasks == ["aao_smoke_mc"]


def test_options_and_fewshot_groups() -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['task'\]"):
        cap.check_options({"task": ["mmlu"]})
    defaults = cap.check_options({})
    assert defaults["tasks"] == list(cap.PAPER_TASKS) and defaults["num_fewshot"] == cap.PAPER_FEWSHOT
    groups = cap.fewshot_groups(cap.PAPER_TASKS, cap.PAPER_FEWSHOT)
    assert groups == {
        5: ["mmlu", "winogrande", "gsm8k"],
        25: ["arc_challenge"],
        10: ["hellaswag"],
        0: ["truthfulqa_mc2"],
    }
    assert cap.fewshot_groups(["a", "b"], 3) == {3: ["a", "b"]}
    assert cap.fewshot_groups(["a"], None) == {None: ["a"]}


def _output() -> dict[str, Any]:
    """The parts of simple_evaluate's output that are read: a group (mmlu) and a generative task."""
    return {
        "results": {
            "mmlu": {"acc,none": 0.6, "acc_stderr,none": 0.004},
            "gsm8k": {"exact_match,strict-match": 0.3, "exact_match_stderr,strict-match": 0.01},
            "my_task": {"acc,none": 0.5, "acc_norm,none": 0.7, "acc_stderr,none": "N/A"},
        },
        "group_subtasks": {"mmlu": ["mmlu_a", "mmlu_b"]},
        "n-samples": {n: {"original": k, "effective": k} for n, k in [("mmlu_a", 100), ("mmlu_b", 50), ("gsm8k", 9)]}
        | {"my_task": {"original": 4, "effective": 4}},
        "n-shot": {"mmlu": 5, "gsm8k": 5, "my_task": 0},
        "versions": {"mmlu": 2, "gsm8k": 3, "my_task": 1},
    }


def test_task_scores_and_their_mean() -> None:
    scores = cap.task_scores(_output(), ["mmlu", "gsm8k", "my_task"], {})
    assert scores["mmlu"] == {
        "metric": "acc,none",
        "value": 0.6,
        "stderr": 0.004,
        "n": 150,
        "num_fewshot": 5,
        "version": 2,
    }
    assert scores["gsm8k"]["metric"] == "exact_match,strict-match" and scores["gsm8k"]["stderr"] == 0.01
    assert scores["my_task"]["metric"] == "acc,none" and scores["my_task"]["stderr"] is None
    assert cap.task_scores(_output(), ["my_task"], {"my_task": "acc_norm"})["my_task"]["value"] == 0.7
    summary = cap.summarise({k: scores[k] for k in ("mmlu", "gsm8k")})
    assert summary["capability"] == pytest.approx(45.0)
    assert summary["capability_se"] == pytest.approx(100 * (0.004**2 + 0.01**2) ** 0.5 / 2)
    assert cap.summarise(scores)["capability_se"] is None, "an unknown stderr makes the mean's unknown"
    with pytest.raises(ValueError, match="reports none of"):
        cap.task_scores(_output(), ["my_task"], {"my_task": "f1"})
