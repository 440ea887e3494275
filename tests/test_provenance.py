"""Provenance decides reuse: what a checkpoint or a reference file was made from decides whether it is reused.

Unit tests of the identities and of the checkpoint bookkeeping, then the real
thing: a training process killed with SIGKILL while it writes a checkpoint,
and the workflow's own rules rerun after beta, the data or the start model
changed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from suite.engine import PreferenceDataset, precision
from suite.models import load_model, load_tokenizer, write_pointer
from suite.provenance import STAMP, differences, digest, identity, read_stamp, tree_sha256
from suite.reference import load_reference, reference_logps, reference_provenance, save_reference
from suite.train import run_training
from suite.trainer_utils import COMPLETE, last_checkpoint, run_directory
from tests.toy_preferences import TRAINING, prepare_toy_run, toy_pairs
from tests.workflow_helpers import REPO, clean_checkout, snakemake

pytestmark = pytest.mark.usefixtures("single_thread")


# ---------------------------------------------------------------- identities


def test_identity_of_files_stamped_stages_pointers_and_plain_directories(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"a": 1}\n')
    before = identity(data)
    data.write_text('{"a": 2}\n')
    assert identity(data) != before

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "weights.bin").write_bytes(b"\x00" * 10)
    stamped = tmp_path / "stamped"
    stamped.mkdir()
    (stamped / "weights.bin").write_bytes(b"\x00" * 10)
    stamp = {"content": tree_sha256(stamped), "recipe": {}}
    (stamped / STAMP).write_text(json.dumps(stamp))
    assert identity(plain) == identity(stamped) == {"sha256": stamp["content"]}
    # a stamped stage is identified by its stamp: consumers never re-read its weights
    (stamped / STAMP).write_text(json.dumps({**stamp, "content": "recorded"}))
    assert identity(stamped) == {"sha256": "recorded"}

    hub = tmp_path / "hub-pointer"
    write_pointer(hub, "org/model", "abc123", None)
    assert identity(hub) == {"hub": "org/model", "revision": "abc123"}
    local = tmp_path / "local-pointer"
    write_pointer(local, str(plain), None, "zephyr")
    assert identity(local) == {"chat_template": "zephyr", "target": identity(plain)}


def test_saved_model_stages_carry_their_content_hash(tiny_model_dir: Path) -> None:
    stamp = read_stamp(tiny_model_dir)
    assert stamp is not None and stamp["content"] == tree_sha256(tiny_model_dir)


def test_differences_name_each_changed_leaf() -> None:
    old = {"params": {"beta": 0.1}, "data": {"sha256": "a" * 64}, "training": {"seed": 1}}
    new = {"params": {"beta": 0.5}, "data": {"sha256": "b" * 64}, "training": {"seed": 1, "bf16": True}}
    assert differences(old, new) == [
        f"data.sha256: {'a' * 12}...{'a' * 6} -> {'b' * 12}...{'b' * 6}",
        "params.beta: 0.1 -> 0.5",
        "training.bf16: <unset> -> true",
    ]
    assert differences(old, old) == []


def test_half_written_checkpoints_are_skipped_and_removed(tmp_path: Path, caplog) -> None:
    run = run_directory(tmp_path / "checkpoints", {"stage": "test"})
    for step, complete in ((2, True), (4, True), (6, False)):
        (run / f"checkpoint-{step}").mkdir()
        if complete:
            (run / f"checkpoint-{step}" / COMPLETE).write_text("{}")
    assert last_checkpoint(run) == str(run / "checkpoint-4")
    assert "half-written" in caplog.text and "checkpoint-6" in caplog.text
    assert not (run / "checkpoint-6").exists() and (run / "checkpoint-2").exists()
    assert last_checkpoint(tmp_path / "nothing-here") is None


def test_a_changed_setting_gets_its_own_run_directory_and_says_why(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="suite.trainer_utils")
    first = run_directory(tmp_path, {"params": {"beta": 0.1}})
    assert "no earlier checkpoints" in caplog.text
    assert run_directory(tmp_path, {"params": {"beta": 0.1}}) == first
    assert "settings unchanged" in caplog.text
    second = run_directory(tmp_path, {"params": {"beta": 0.5}})
    assert second != first and second.name == f"run-{digest({'params': {'beta': 0.5}})}"
    assert "params.beta: 0.1 -> 0.5" in caplog.text


# ---------------------------------------------------------------- training resumes only its own work


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("provenance")
    prepare_toy_run(root, toy_pairs("p"), TRAINING)
    return root


def train(toy: Path, name: str, params: dict, training: dict | None = None, data: Path | None = None) -> dict:
    run_training(
        "dpo",
        params,
        toy / "start",
        data or toy / "data.jsonl",
        toy / "reference.pt",
        training or {**TRAINING, "max_steps": 4, "save_steps": 2},
        toy / "checkpoints",
        toy / name,
    )
    return load_file(toy / name / "model.safetensors")


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_rerun_resumes_only_under_unchanged_settings(toy: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="suite.trainer_utils")
    first = train(toy, "first", {"beta": 0.1})
    again = train(toy, "again", {"beta": 0.1})  # resumes its finished checkpoint: 0 steps, the same weights
    assert same_weights(first, again)
    assert "settings unchanged" in caplog.text
    changed = train(toy, "changed", {"beta": 0.5})  # before: resumed the beta-0.1 checkpoint and published it
    assert not same_weights(first, changed)
    assert "starting fresh" in caplog.text and "params.beta: 0.1 -> 0.5" in caplog.text


def test_a_string_or_negative_beta_never_trains(toy: Path) -> None:
    with pytest.raises(ValueError, match=r"beta: '0\.1' is not of type 'number'"):
        train(toy, "string", {"beta": "0.1"})
    with pytest.raises(ValueError, match=r"beta: -0\.1 is less than or equal to the minimum of 0"):
        train(toy, "negative", {"beta": -0.1})


# ---------------------------------------------------------------- kill -9 during a checkpoint save


BIG = {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 4,
       "num_key_value_heads": 4, "max_position_embeddings": 128}  # fmt: skip
KILL_TRAINING = {**TRAINING, "max_steps": 8, "save_steps": 1, "per_device_train_batch_size": 2}


@pytest.fixture(scope="module")
def big_toy(tmp_path_factory) -> Path:
    """A model large enough (4M parameters, ~50 MB per checkpoint) that a checkpoint takes a while to write."""
    root = tmp_path_factory.mktemp("kill")
    prepare_toy_run(root, toy_pairs("k"), KILL_TRAINING, size=BIG)
    return root


def train_command(root: Path, name: str) -> list[str]:
    return [
        sys.executable, "-m", "pipeline.train", "--method", "dpo", "--params", json.dumps({"beta": 0.1}),
        "--model", str(root / "start"), "--data", str(root / "data.jsonl"), "--reference", str(root / "reference.pt"),
        "--training", json.dumps(KILL_TRAINING), "--checkpoints", str(root / "checkpoints" / name),
        "--out", str(root / name), "--log-history", str(root / f"{name}.history.json"),
    ]  # fmt: skip


def kill_during_a_save(root: Path, name: str) -> Path:
    """Start training and SIGKILL it while it writes a checkpoint after a complete one; returns the half one."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(train_command(root, name), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while proc.poll() is None:
            for path in (root / "checkpoints" / name).glob("run-*/checkpoint-*"):
                complete = list(path.parent.glob(f"checkpoint-*/{COMPLETE}"))
                if complete and not (path / COMPLETE).exists() and any(path.iterdir()):
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    if not (path / COMPLETE).exists():
                        return path
            time.sleep(0.0005)
    finally:
        if proc.poll() is None:
            proc.kill()
    pytest.skip("the job finished or completed its checkpoint before the kill landed")  # pragma: no cover


@pytest.mark.slow
def test_kill_during_a_checkpoint_save_resumes_from_the_last_complete_one(big_toy: Path) -> None:
    for attempt in range(5):
        name = f"killed-{attempt}"
        try:
            half = kill_during_a_save(big_toy, name)
            break
        except pytest.skip.Exception:
            continue
    else:
        pytest.fail("could not land a kill during a checkpoint save in 5 tries")
    older = [p for p in half.parent.glob("checkpoint-*") if (p / COMPLETE).exists()]
    assert older, "no complete checkpoint before the half-written one"

    rerun = subprocess.run(train_command(big_toy, name), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"skipping {half}: half-written" in rerun.stderr
    assert f"resuming from {max(older, key=lambda p: int(p.name.split('-')[1]))}" in rerun.stderr

    straight = subprocess.run(train_command(big_toy, "straight"), cwd=REPO, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
    assert straight.returncode == 0, straight.stderr[-3000:]
    resumed, uninterrupted = (
        load_file(big_toy / name / "model.safetensors"),
        load_file(big_toy / "straight" / "model.safetensors"),
    )
    for key, value in uninterrupted.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-5, atol=1e-6, msg=key)


# ---------------------------------------------------------------- precision


def test_the_reference_is_computed_and_checked_under_trainings_precision(toy: Path) -> None:
    bf16 = {**TRAINING, "bf16": True, "max_steps": 1, "logging_steps": 1}  # dtype stays float32: autocast only
    tokenizer = load_tokenizer(toy / "start")
    model = load_model(toy / "start")
    records = toy_pairs("p")
    dataset = PreferenceDataset(records, tokenizer, bf16["max_length"], bf16["max_prompt_length"])
    provenance = reference_provenance(toy / "start", toy / "data.jsonl", tokenizer, bf16)
    assert provenance["precision"] == {"dtype": "float32", "autocast": "bfloat16"}
    save_reference(toy / "bf16.pt", reference_logps(model, dataset, tokenizer.pad_token_id, 8, precision(bf16)),
                   provenance)  # fmt: skip

    # training under autocast refuses the float32 reference, naming both precisions ...
    with pytest.raises(ValueError, match=r"precision\.autocast: null -> bfloat16"):
        load_reference(toy / "reference.pt", provenance)
    # ... and at step 1, policy == reference under the same autocast, DPO's rewards are 0 (with the float32
    # reference this toy model logs about -1e-4, a real 135M chat model 0.04)
    history = run_training("dpo", {"beta": 0.1}, toy / "start", toy / "data.jsonl", toy / "bf16.pt", bf16,
                           toy / "checkpoints-bf16", toy / "bf16-model")  # fmt: skip
    first = next(h for h in history if "rewards/chosen" in h)
    assert abs(first["rewards/chosen"]) < 1e-6 and abs(first["rewards/rejected"]) < 1e-6, first


# ---------------------------------------------------------------- the workflow's own rules


def small_config(work: Path, **changes) -> Path:
    """One variant, DPO only: the rules that publish a model, on a one-minute DAG."""
    config = yaml.safe_load((work / "workflow/config/config.yaml").read_text())
    config["variants"] = {"llama-base": config["variants"]["llama-base"]}
    config["methods"] = {"dpo": config["methods"]["dpo"]}
    config["benchmarks"] = {"alpaca_eval": config["benchmarks"]["alpaca_eval"]}
    config["datasets"] = {k: v for k, v in config["datasets"].items() if "onpolicy" not in v}
    config["reward_models"], config["experiments"] = {}, {}
    for key, value in changes.items():
        section, name = key.split("__")
        config[section] = {**config[section], name: value}
    path = work / "small.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


TARGET = "results/train/llama-base/dpo/model"


def build(work: Path, config: Path, *extra: str) -> dict:
    run = snakemake(work, TARGET, "--configfile", str(config), "--cores", "2", *extra)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return load_file(work / TARGET / "model.safetensors")


@pytest.mark.slow
def test_rules_rerun_after_a_change_publish_a_new_model_and_say_why(tmp_path: Path) -> None:
    work = clean_checkout(tmp_path)
    train_log = work / "results/logs/train/llama-base/dpo.log"
    first = build(work, small_config(work))

    # nothing changed, rerun forced: the finished run is resumed (0 steps) and the same model published
    again = build(work, small_config(work), "--forcerun", "train")
    assert same_weights(first, again) and "settings unchanged" in train_log.read_text()

    # beta: the rule reruns and the model is trained afresh under the new beta
    beta = build(work, small_config(work, methods__dpo={"beta": 0.5}))
    assert not same_weights(first, beta)
    assert "starting fresh" in train_log.read_text() and "params.beta: 0.1 -> 0.5" in train_log.read_text()

    # the data: an edited prepared file reruns the reference and training on it
    data = work / "results/data/ultrafeedback.jsonl"
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    half = build(work, small_config(work, methods__dpo={"beta": 0.5}))
    assert not same_weights(beta, half)
    assert "data.sha256:" in train_log.read_text()

    # the start model: another SFT learning rate retrains SFT (fresh, said why), then the reference and DPO
    start = build(work, small_config(work, methods__dpo={"beta": 0.5}, sft_training__learning_rate=1e-3))
    assert not same_weights(half, start)
    sft_log = (work / "results/logs/sft/llama-base.log").read_text()
    assert "starting fresh" in sft_log and "training.learning_rate: 0.002 -> 0.001" in sft_log
    assert "model.sha256:" in train_log.read_text()


def test_equal_tensors_saved_by_two_processes_have_one_identity(tmp_path: Path) -> None:
    """torch.save names its archive after the file (the suite's temporary one) and records a serialization id;
    identity looks at the records' contents only, and still sees a changed value."""
    script = "import sys, torch; torch.save({'x': torch.arange(4.0) * float(sys.argv[2])}, sys.argv[1])"
    for name, scale in (("a.pt", "1"), ("b.pt", "1"), ("c.pt", "2")):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name), scale], check=True)
    assert (tmp_path / "a.pt").read_bytes() != (tmp_path / "b.pt").read_bytes(), "torch.save became deterministic"
    assert identity(tmp_path / "a.pt") == identity(tmp_path / "b.pt") != identity(tmp_path / "c.pt")
