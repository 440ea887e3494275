"""Several processes per job, on CPU: the `accelerate launch` path the Slurm profile uses, with 2 gloo processes.

At equal global batch (one process accumulating 2 micro-batches of 4 pairs; two processes of 4 pairs each) the
two runs see the same micro-batches in the same order, so the only difference is where two gradient halves are
summed (an all-reduce instead of an accumulation): the losses and parameters agree to float32 rounding of that
sum. We measured them bit-identical, and allow 1e-6 absolute (parameters move by ~3e-3 in these 3 steps).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from suite.train import run_training
from tests.toy_preferences import TRAINING, prepare_toy_run, toy_pairs
from tests.workflow_helpers import REPO

STEPS = {**TRAINING, "max_steps": 3, "save_steps": 100, "logging_steps": 1}
ONE = {**STEPS, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}
TWO = {**STEPS, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1}
METHODS = {"dpo": {"beta": 0.1}, "aao": {"beta": 0.1}, "tdpo": {"beta": 0.1}, "kto": {"beta": 0.1}}
ATOL = 1e-6


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multiprocess")
    prepare_toy_run(root, toy_pairs("mp"), STEPS)
    return root


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def train_args(root: Path, method: str, training: dict, name: str) -> list[str]:
    return [
        "-m", "pipeline.train", "--method", method, "--params", json.dumps(METHODS[method]),
        "--model", str(root / "start"), "--data", str(root / "data.jsonl"), "--reference", str(root / "reference.pt"),
        "--training", json.dumps(training), "--checkpoints", str(root / "checkpoints" / name),
        "--out", str(root / name), "--log-history", str(root / f"{name}.json"),
    ]  # fmt: skip


def launch(config: str, processes: int = 2) -> list[str]:
    """The workflow's launcher (workflow/rules/common.smk `launch`) for a multi-process job."""
    accelerate = str(Path(sys.executable).parent / "accelerate")
    return [accelerate, "launch", "--config_file", config, "--num_processes", str(processes), "--mixed_precision", "no"]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def losses(path: Path) -> list[float]:
    return [h["loss"] for h in json.loads(path.read_text()) if "loss" in h and "train_loss" not in h]


def assert_same_training(root: Path, one: str, two: str) -> None:
    assert losses(root / f"{one}.json") == pytest.approx(losses(root / f"{two}.json"), abs=ATOL)
    first, second = load_file(root / one / "model.safetensors"), load_file(root / two / "model.safetensors")
    start = load_file(root / "start" / "model.safetensors")
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=0, atol=ATOL, msg=key)
    moved = max((first[k] - start[k]).abs().max().item() for k in start)
    assert moved > 100 * ATOL, "the runs did not train: the comparison would be vacuous"


@pytest.mark.slow
@pytest.mark.parametrize("config", ["workflow/accelerate/ddp.yaml", "workflow/accelerate/fsdp.yaml"])
@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_train_like_one_at_equal_global_batch(toy: Path, method: str, config: str) -> None:
    one, two = f"{method}-one", f"{method}-{Path(config).stem}-two"
    if not (toy / one).exists():
        run([sys.executable, *train_args(toy, method, ONE, one)])
    done = run([*launch(config), *train_args(toy, method, TWO, two)])
    assert_same_training(toy, one, two)
    history = json.loads((toy / f"{two}.json").read_text())
    assert history[0]["epoch"] == pytest.approx(8 / len(toy_pairs("mp"))), "not 2 processes of 4 pairs"
    if method == "aao":  # the AW module trains in both, identically (its parameters are part of the model file)
        aw = [k for k in load_file(toy / two / "model.safetensors") if k.startswith("aao_thresholds.")]
        assert aw
    if config.endswith("fsdp.yaml"):  # on CPU accelerate turns the FSDP config into DDP, and says so
        assert "FSDP needs GPU processes" in done.stderr


def test_gradient_accumulation_averages_micro_batches(toy: Path, tmp_path: Path) -> None:
    """2 accumulated micro-batches of 4 pairs = one batch of 8: the same gradient norm (it was twice as large, so
    clipping at max_grad_norm acted on a gradient 8x too large under the paper's 8 accumulation steps)."""
    accumulated = run_training("dpo", {"beta": 0.1}, toy / "start", toy / "data.jsonl", toy / "reference.pt",
                               {**ONE, "max_steps": 1}, tmp_path / "ck-a", tmp_path / "a")  # fmt: skip
    whole = run_training("dpo", {"beta": 0.1}, toy / "start", toy / "data.jsonl", toy / "reference.pt",
                         {**ONE, "max_steps": 1, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1},
                         tmp_path / "ck-w", tmp_path / "w")  # fmt: skip
    norm = [h["grad_norm"] for h in accumulated if "grad_norm" in h]
    assert norm == pytest.approx([h["grad_norm"] for h in whole if "grad_norm" in h], rel=1e-5)
    assert losses_of(accumulated) == pytest.approx(losses_of(whole), rel=1e-6)


def losses_of(history: list[dict]) -> list[float]:
    return [h["loss"] for h in history if "loss" in h and "train_loss" not in h]


# ---------------------------------------------------------------- generation over the job's processes


GREEDY = {"temperature": 0.0, "max_new_tokens": 8}
SAMPLED = {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 8}


@pytest.mark.slow
@pytest.mark.parametrize("decoding", [GREEDY, SAMPLED])
def test_two_processes_generate_what_one_does(tiny_model_dir: Path, tmp_path: Path, decoding: dict) -> None:
    """Each process answers every other batch; merged in order, the outputs equal one process's, greedy or sampled."""
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([
        {"instruction": f"Question {i}: how do I bake bread number {i}?", "output": "-", "generator": "ref",
         "dataset": "d"} for i in range(7)
    ]))  # fmt: skip

    def generate(prefix: list[str], out: Path) -> list[dict]:
        task = ["--task", "alpaca_eval", str(prompts), json.dumps(decoding), str(out)]
        run([*prefix, "-m", "pipeline.generate", "--model", str(tiny_model_dir), *task, "--generator", "g",
             "--batch-size", "2", "--seed", "3"])  # fmt: skip
        return json.loads(out.read_text())

    one = generate([sys.executable], tmp_path / "one.json")
    two = generate(launch("workflow/accelerate/ddp.yaml"), tmp_path / "two.json")
    assert two == one and len(one) == 7
    assert len({r["output"] for r in one}) > 1, "every answer the same: the comparison would be vacuous"


# ---------------------------------------------------------------- reference log-probs and SFT


@pytest.mark.slow
def test_the_reference_rule_over_two_processes_writes_what_one_does(toy: Path, tmp_path: Path) -> None:
    args = ["-m", "pipeline.reference", "--model", str(toy / "start"), "--data", str(toy / "data.jsonl"),
            "--training", json.dumps({**STEPS, "reference_batch_size": 3})]  # fmt: skip
    run([sys.executable, *args, "--out", str(tmp_path / "one.pt")])
    run([*launch("workflow/accelerate/ddp.yaml"), *args, "--out", str(tmp_path / "two.pt")])
    one, two = (torch.load(tmp_path / name, weights_only=True) for name in ("one.pt", "two.pt"))
    assert one["provenance"] == two["provenance"]
    assert one["logps"].keys() == two["logps"].keys() and len(one["logps"]) == len(toy_pairs("mp"))
    for key, sides in one["logps"].items():
        for side, values in sides.items():
            assert torch.equal(two["logps"][key][side], values), (key, side)


@pytest.mark.slow
def test_sft_over_two_processes_trains_like_one(toy: Path, tmp_path: Path) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(
        json.dumps({"id": f"s{i}", "messages": [*r["prompt"], *r["chosen"]]}) + "\n"
        for i, r in enumerate(toy_pairs("sft"))
    ))  # fmt: skip
    sft = {**STEPS, "learning_rate": 1e-3, "max_steps": 3}

    def args(training: dict, name: str) -> list[str]:
        return ["-m", "pipeline.sft", "--model", str(toy / "start"), "--data", str(data), "--training",
                json.dumps(training), "--checkpoints", str(tmp_path / "ck" / name), "--out", str(tmp_path / name),
                "--log-history", str(tmp_path / f"{name}.json")]  # fmt: skip

    run([sys.executable, *args({**sft, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}, "one")])
    run([*launch("workflow/accelerate/ddp.yaml"), *args({**sft, "per_device_train_batch_size": 4}, "two")])
    one, two = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    start = load_file(toy / "start" / "model.safetensors")
    assert max((one[k] - start[k]).abs().max().item() for k in start) > 100 * ATOL
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=ATOL, msg=key)


# ---------------------------------------------------------------- the FSDP config itself


@pytest.mark.slow
def test_the_fsdp_configs_sharding_step_and_sharded_checkpoint_on_cpu(toy: Path, tmp_path: Path) -> None:
    """accelerate's Trainer path turns CPU processes into DDP, so tests/workers/fsdp_cpu.py drives accelerate's own
    FSDP2 preparation with the plugin `accelerate launch` builds from workflow/accelerate/fsdp.yaml."""
    out = tmp_path / "found.json"
    worker = [str(REPO / "tests/workers/fsdp_cpu.py"), str(toy / "start"), str(tmp_path / "sharded"), str(out)]
    run([*launch("workflow/accelerate/fsdp.yaml"), *worker])
    found = json.loads(out.read_text())
    # the config as the workflow relies on it: FSDP2, a full state dict for save_model, RAM-efficient loading
    assert found["fsdp_version"] == 2 and found["state_dict_type"].endswith("FULL_STATE_DICT")
    assert found["cpu_ram_efficient_loading"] and found["reshard_after_forward"]
    # every decoder layer is its own FSDP unit, its parameters split over the 2 processes
    assert found["sharded_layers"] == found["layers"] > 0 and found["root_sharded"]
    assert found["local_rows"] * 2 == found["global_rows"]
    # one AdamW step, sharded (rank > 0 started from meta weights, synced from rank 0) equals one unsharded step,
    # and the gathered full state dict is that model (max difference measured 0.0)
    assert found["same_keys"] and found["loss_sharded"] == pytest.approx(found["loss_plain"], abs=1e-6)
    assert found["max_step_difference"] < 1e-6
    # a sharded checkpoint (each process its shards) loads back into a fresh sharded model exactly
    assert (tmp_path / "sharded").is_dir() and found["max_restore_difference"] == 0.0
    assert found["restored_differs_from_start"]
