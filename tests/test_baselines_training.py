"""Every baseline trains a tiny model through ``suite.train.run_training`` (the workflow's entry point) on CPU:
the logged loss is finite and falls. Precomputed reference log-probs come from ``suite.reference``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from suite.engine import PreferenceDataset, tokenization_fingerprint
from suite.io import write_jsonl
from suite.models import build_tiny_model, save_model, train_tokenizer
from suite.reference import reference_logps, save_reference
from suite.train import run_training
from tests.conftest import TINY_SIZE

TOPICS = ["the river", "the garden", "the bridge", "the market", "the tower", "the forest", "the harbour",
          "the library", "the castle", "the valley", "the station", "the village", "the museum", "the island",
          "the desert", "the lake"]  # fmt: skip
TRAINING = {
    "learning_rate": 1e-3,
    "max_steps": 24,
    "per_device_train_batch_size": 4,
    "lr_scheduler_type": "constant",
    "seed": 0,
    "logging_steps": 1,
    "save_steps": 1000,
    "max_length": 64,
    "max_prompt_length": 32,
}
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
    return [
        {
            "id": f"train-{i}",
            "prompt": [{"role": "user", "content": f"Tell me about {topic}."}],
            "chosen": [{"role": "assistant", "content": f"Sure! Here is a kind and useful note on {topic}."}],
            "rejected": [{"role": "assistant", "content": f"Sure! Here is a rude and useless note on {topic}."}],
        }
        for i, topic in enumerate(TOPICS)
    ]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A model this small runs fastest on one thread, and does not fight other jobs for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
