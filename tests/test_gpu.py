"""The CUDA paths: training, reference log-probs and generation on a GPU agree with the CPU.

Skipped where no CUDA device is present (CI, laptops); run on a GPU machine
with ``python -m pytest tests/test_gpu.py``. The CPU tests check each method
against its reference; these check that moving to a GPU changes nothing but
rounding, and that bf16 training (the cluster's precision) stays finite.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from suite.engine import PreferenceDataset
from suite.generation import _hf_responder
from suite.io import read_jsonl
from suite.models import load_model, load_tokenizer
from suite.reference import reference_logps
from suite.train import run_training
from tests.toy_preferences import TRAINING, prepare_toy_run, toy_pairs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

STEPS = 6
RUNS = {  # engine-trained methods, each with its workflow defaults
    "dpo": ("dpo", {"beta": 0.1}),
    "aao": ("aao", {"beta": 0.1}),
    "aao_fixed": ("aao", {"beta": 0.1, "thresholds": "fixed"}),
    "dpo_random": ("dpo_random", {"beta": 0.1}),
    "ipo": ("ipo", {"tau": 0.1}),
    "simpo": ("simpo", {}),
    "kto": ("kto", {"beta": 0.1}),
    "tdpo2": ("tdpo", {"beta": 0.1, "variant": 2}),
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gpu")
    prepare_toy_run(root, toy_pairs("gpu"), TRAINING)
    return root


def train(toy: Path, run: str, **overrides: object) -> list[float]:
    method, params = RUNS[run]
    training = {**TRAINING, "max_steps": STEPS, **overrides}
    tag = "-".join(f"{k}{v}" for k, v in sorted(overrides.items()))
    history = run_training(
        method, params, toy / "start", toy / "data.jsonl", toy / "reference.pt", training,
        toy / "checkpoints" / run / tag, toy / "out" / run / tag,
    )  # fmt: skip
    return [h["loss"] for h in history if "loss" in h]


@pytest.mark.parametrize("run", list(RUNS))
def test_training_on_cuda_follows_the_cpu_run(toy: Path, run: str) -> None:
    """Same start, data and seed: the first step's loss agrees to rounding, later ones closely."""
    cpu = train(toy, run, cuda=False)
    gpu = train(toy, run, cuda=True)
    assert len(cpu) == len(gpu) == STEPS
    assert gpu[0] == pytest.approx(cpu[0], rel=1e-4, abs=1e-5), (cpu, gpu)
    assert gpu == pytest.approx(cpu, rel=2e-2, abs=2e-3), (cpu, gpu)


@pytest.mark.parametrize("run", ["dpo", "aao"])
def test_bf16_training_on_cuda_stays_finite_and_learns(toy: Path, run: str) -> None:
    losses = train(toy, run, cuda=True, bf16=True, max_steps=24)
    assert all(math.isfinite(x) for x in losses), losses
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses


def test_reference_logps_on_cuda_equal_the_cpu(toy: Path) -> None:
    tokenizer = load_tokenizer(toy / "start")
    dataset = PreferenceDataset(
        read_jsonl(toy / "data.jsonl"), tokenizer, TRAINING["max_length"], TRAINING["max_prompt_length"]
    )
    model = load_model(toy / "start")
    cpu = reference_logps(model, dataset, tokenizer.pad_token_id, batch_size=4)
    gpu = reference_logps(model.to("cuda"), dataset, tokenizer.pad_token_id, batch_size=4)
    assert gpu.keys() == cpu.keys() and len(cpu) == len(dataset)
    for record_id, sides in cpu.items():
        for side, logps in sides.items():
            torch.testing.assert_close(gpu[record_id][side], logps, rtol=1e-4, atol=1e-4)


def test_greedy_generation_on_cuda_runs_batched(toy: Path) -> None:
    respond = _hf_responder(toy / "start", "float32", batch_size=4, seed=0)
    prompts = [[{"role": "user", "content": f"Tell me about {t}."}] for t in ("the river", "the tower", "a lake")]
    greedy = {"temperature": 0.0, "max_new_tokens": 8}
    first = respond(prompts, [greedy] * 3)
    assert len(first) == 3 and all(isinstance(text, str) for text in first)
    assert respond(prompts, [greedy] * 3) == first
