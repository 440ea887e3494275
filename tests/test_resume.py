"""Resume after kill -9, at every stage that holds paid or long work, with real processes.

Each test starts a stage's real entry point (what its rule runs), kills it with SIGKILL once it has done part
of its work, checks that nothing that looks like a finished output was left, runs it again and compares the
result with an uninterrupted run's: training (AAO, with its AW module), SFT, the reward model, on-policy
sampling and scoring, and an evaluation killed while judging (the rerun asks no question already answered).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from suite.io import read_jsonl, write_jsonl
from suite.trainer_utils import COMPLETE
from tests.openai_stub import StubServer
from tests.test_provenance import BIG
from tests.toy_preferences import TRAINING, prepare_toy_run, toy_pairs
from tests.workflow_helpers import REPO

pytestmark = pytest.mark.slow

TRAIN = {**TRAINING, "max_steps": 8, "save_steps": 2, "per_device_train_batch_size": 2}
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}  # the same steps on the same batches: equal up to float32 rounding


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def kill_when(command: list[str], ready: Callable[[], bool], timeout: float = 300) -> None:
    """Run ``command`` and SIGKILL it as soon as ``ready()`` holds; fail if it finishes first."""
    proc = subprocess.Popen(command, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
    pytest.fail(f"{command[2:4]} ended (or timed out) before the kill")


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def complete_checkpoint(checkpoints: Path) -> Callable[[], bool]:
    return lambda: bool(list(checkpoints.glob(f"run-*/checkpoint-*/{COMPLETE}")))


def assert_same_model(resumed: Path, uninterrupted: Path) -> None:
    first, second = load_file(resumed / "model.safetensors"), load_file(uninterrupted / "model.safetensors")
    assert first.keys() == second.keys()
    for key, value in second.items():
        torch.testing.assert_close(first[key], value, **TOLERANCE, msg=key)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    prepare_toy_run(root, toy_pairs("r"), TRAIN, size=BIG)
    return root


# ---------------------------------------------------------------- training


def test_training_killed_after_a_checkpoint_continues_like_an_uninterrupted_run(toy: Path) -> None:
    """AAO: the optimizer, scheduler, RNG, data order and its AW module all continue from the checkpoint."""

    def train(name: str) -> list[str]:
        return [sys.executable, "-m", "pipeline.train", "--method", "aao", "--params", json.dumps({"beta": 0.1}),
                "--model", str(toy / "start"), "--data", str(toy / "data.jsonl"), "--reference",
                str(toy / "reference.pt"), "--training", json.dumps(TRAIN), "--checkpoints", str(toy / "ck" / name),
                "--out", str(toy / name), "--log-history", str(toy / f"{name}.json")]  # fmt: skip

    kill_when(train("killed"), complete_checkpoint(toy / "ck" / "killed"))
    assert not (toy / "killed").exists() and not (toy / "killed.json").exists(), "a killed job left an output"
    resumed = run(train("killed"))
    assert "resuming from" in resumed.stderr
    run(train("straight"))
    assert_same_model(toy / "killed", toy / "straight")
    aw = [k for k in load_file(toy / "killed" / "model.safetensors") if k.startswith("aao_thresholds.")]
    assert aw, "the AW module is not in the model"
    history = json.loads((toy / "killed.json").read_text())
    assert [h["step"] for h in history if "loss" in h and "train_loss" not in h] == list(range(1, 9))


def test_sft_killed_after_a_checkpoint_continues_like_an_uninterrupted_run(toy: Path) -> None:
    data = toy / "sft.jsonl"
    write_jsonl(data, [{"id": r["id"], "messages": [*r["prompt"], *r["chosen"]]} for r in toy_pairs("s")])

    def sft(name: str) -> list[str]:
        return [sys.executable, "-m", "pipeline.sft", "--model", str(toy / "start"), "--data", str(data), "--training",
                json.dumps(TRAIN), "--checkpoints", str(toy / "sft-ck" / name), "--out", str(toy / name),
                "--log-history", str(toy / f"{name}.json")]  # fmt: skip

    kill_when(sft("sft-killed"), complete_checkpoint(toy / "sft-ck" / "sft-killed"))
    assert not (toy / "sft-killed").exists()
    assert "resuming from" in run(sft("sft-killed")).stderr
    run(sft("sft-straight"))
    assert_same_model(toy / "sft-killed", toy / "sft-straight")


def reward_command(toy: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.reward", "train", "--base", str(toy / "start"), "--data",
            str(toy / "data.jsonl"), "--training", json.dumps({**TRAIN, "max_length": 128}), "--held-out", "0",
            "--checkpoints", str(toy / "rm-ck" / name), "--out", str(toy / name), "--log-history",
            str(toy / f"{name}.json"), "--eval-out", str(toy / f"{name}.eval.json")]  # fmt: skip


def test_reward_model_killed_after_a_checkpoint_continues_like_an_uninterrupted_run(toy: Path) -> None:
    kill_when(reward_command(toy, "rm-killed"), complete_checkpoint(toy / "rm-ck" / "rm-killed"))
    assert not (toy / "rm-killed").exists() and not (toy / "rm-killed.eval.json").exists()
    assert "resuming from" in run(reward_command(toy, "rm-killed")).stderr
    run(reward_command(toy, "rm-straight"))
    assert_same_model(toy / "rm-killed", toy / "rm-straight")


# ---------------------------------------------------------------- on-policy data


def sample_command(toy: Path, work: Path) -> list[str]:
    decoding = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 24}
    return [sys.executable, "-m", "pipeline.onpolicy", "sample", "--model", str(toy / "start"), "--prompts",
            str(toy / "data.jsonl"), "--n-samples", "2", "--decoding", json.dumps(decoding), "--shard-size", "2",
            "--batch-size", "2", "--seed", "0", "--work-dir", str(work / "shards"), "--out",
            str(work / "samples.jsonl"), "--meta", str(work / "samples.json")]  # fmt: skip


def score_command(toy: Path, work: Path, samples: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.onpolicy", "score", "--samples", str(samples), "--reward",
            str(toy / "rm-straight"), "--dtype", "float32", "--batch-size", "2", "--shard-size", "1", "--work-dir",
            str(work / "shards"), "--out", str(work / "scores.jsonl"), "--meta", str(work / "scores.json")]  # fmt: skip


def shard_written(work: Path, pattern: str) -> Callable[[], bool]:
    return lambda: bool(list((work / "shards").glob(f"{pattern}-*/shard-*.jsonl")))


def test_onpolicy_sampling_and_scoring_killed_midway_reuse_their_finished_shards(toy: Path, tmp_path: Path) -> None:
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    kill_when(sample_command(toy, killed), shard_written(killed, "samples"))
    assert not (killed / "samples.jsonl").exists()
    run(sample_command(toy, killed))
    meta = json.loads((killed / "samples.json").read_text())
    assert meta["shards_reused"] >= 1 and meta["shards_computed"] >= 1
    run(sample_command(toy, straight))
    assert read_jsonl(killed / "samples.jsonl") == read_jsonl(straight / "samples.jsonl")

    if not (toy / "rm-straight").exists():
        run(reward_command(toy, "rm-straight"))
    samples = straight / "samples.jsonl"
    kill_when(score_command(toy, killed, samples), shard_written(killed, "scores"))
    assert not (killed / "scores.jsonl").exists()
    run(score_command(toy, killed, samples))
    assert json.loads((killed / "scores.json").read_text())["shards_reused"] >= 1
    run(score_command(toy, straight, samples))
    assert read_jsonl(killed / "scores.jsonl") == read_jsonl(straight / "scores.jsonl")


# ---------------------------------------------------------------- judging


def cached(path: Path) -> int:
    """Replies in the judge cache; 0 while the judging process has not yet created the file or its table."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
    except sqlite3.OperationalError:  # the file exists, its table not yet
        return 0
    finally:
        db.close()


def test_an_evaluation_killed_while_judging_asks_nothing_already_answered_again(tmp_path: Path) -> None:
    reference = REPO / "workflow/resources/smoke/alpaca_eval_smoke.json"
    records = json.loads(reference.read_text())
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps([{**r, "output": f"A short answer {i}.", "generator": "m"}
                                   for i, r in enumerate(records)]))  # fmt: skip
    cache, result = tmp_path / "judge.sqlite", tmp_path / "alpaca_eval.json"
    with StubServer("sk-test-resume", delay_s=0.05) as stub:
        judge = {"backend": "openai", "model": "gpt-4-1106-preview", "base_url": stub.base_url,
                 "api_key_env": "RESUME_TEST_KEY", "concurrency": 1}  # fmt: skip
        args = (f"--outputs {outputs} --reference {reference} --judge '{json.dumps(judge)}' --cache {cache} "
                f"--out {result} --annotations-out {tmp_path / 'annotations.json'}")  # fmt: skip
        command = [sys.executable, "-m", "pipeline.evaluate", "--step", "evals.alpaca_eval", args]
        os.environ["RESUME_TEST_KEY"] = "sk-test-resume"
        try:
            kill_when(command, lambda: cached(cache) >= len(records) // 3)
            answered, asked_before = cached(cache), stub.requests
            assert 0 < answered < len(records) and not result.exists(), "no result from a killed evaluation"
            run(command)
        finally:
            del os.environ["RESUME_TEST_KEY"]
        asked_again = stub.requests - asked_before
    assert json.loads(result.read_text())["n"] == len(records)
    assert asked_again == len(records) - answered, "a question answered before the kill was asked again"
