"""Every baseline trains a tiny model through ``suite.train.run_training`` (the workflow's entry point) on CPU:
the logged loss is finite and falls. Precomputed reference log-probs come from ``suite.reference``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from suite.train import run_training
from tests.toy_preferences import TRAINING, prepare_toy_run, toy_pairs

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
    prepare_toy_run(root, records, TRAINING)
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
