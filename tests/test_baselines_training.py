"""Every baseline trains a tiny model through ``suite.train.run_training`` (the workflow's entry point) on CPU:
the logged loss is finite and falls. Precomputed reference log-probs come from ``suite.reference``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from suite.engine import PreferenceDataset, tokenization_fingerprint
from suite.io import write_jsonl
from suite.models import build_tiny_model, save_model, train_tokenizer
from suite.reference import reference_logps, save_reference
from suite.train import run_training
from tests.conftest import TINY_SIZE
from tests.toy_preferences import TRAINING, toy_pairs

RUNS = {
    "dpo": {"beta": 0.1},
    "dpo_random": {"beta": 0.1},
    "ipo": {"tau": 0.1},
    "simpo": {},
    "kto": {"beta": 0.1},
    "tdpo1": {"beta": 0.1, "variant": 1},
    "tdpo2": {"beta": 0.1, "variant": 2},
}


def pairs() -> list[dict]:
    return toy_pairs("train")


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines-train")
    records = pairs()
    texts = [m["content"] for r in records for k in ("prompt", "chosen", "rejected") for m in r[k]]
    tokenizer = train_tokenizer(texts * 10, vocab_size=200)
    model = build_tiny_model("llama", tokenizer, TINY_SIZE, seed=0)
    save_model(model, tokenizer, root / "start")
    write_jsonl(root / "data.jsonl", records)
    dataset = PreferenceDataset(records, tokenizer, TRAINING["max_length"], TRAINING["max_prompt_length"])
    fingerprint = tokenization_fingerprint(tokenizer, TRAINING["max_length"], TRAINING["max_prompt_length"])
    stored = reference_logps(model, dataset, tokenizer.pad_token_id, batch_size=8)
    save_reference(root / "reference.pt", stored, fingerprint, str(root / "start"))
    return root


@pytest.mark.parametrize("run", list(RUNS))
def test_method_trains_and_its_loss_falls(setup: Path, run: str):
    method = "tdpo" if run.startswith("tdpo") else run
    history = run_training(
        method,
        RUNS[run],
        setup / "start",
        setup / "data.jsonl",
        setup / "reference.pt",
        TRAINING,
        setup / "checkpoints" / run,
        setup / "out" / run,
    )
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == TRAINING["max_steps"]
    assert all(math.isfinite(x) for x in losses), losses
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first, (run, losses)
    logged = [h for h in history if "rewards/margins" in h]
    assert logged and logged[-1]["rewards/margins"] > logged[0]["rewards/margins"]
    assert (setup / "out" / run / "config.json").exists()
