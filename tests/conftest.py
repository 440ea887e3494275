"""Shared fixtures: a tiny model and tokenizer built the way the workflow builds them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from suite.models import build_tiny_model, load_model, save_model, train_tokenizer

TINY_SIZE = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}

CORPUS = [
    "How do I bake bread? Mix flour, water, salt and yeast, knead the dough, let it rise and bake it.",
    "What is the capital of France? The capital of France is Paris.",
    "Write a short poem about the sea. The sea is wide and blue, it sings to me and you.",
    "Explain photosynthesis. Plants turn light, water and carbon dioxide into sugar and oxygen.",
    "I cannot help with that request, but here is something safer you could try instead.",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random tiny Llama with a project-trained tokenizer and chat template."""
    tokenizer = train_tokenizer(CORPUS * 20, vocab_size=300)
    model = build_tiny_model("llama", tokenizer, TINY_SIZE, seed=0)
    out = tmp_path_factory.mktemp("models") / "tiny-llama"
    save_model(model, tokenizer, out)
    return out


@pytest.fixture(scope="module")
def single_thread():
    """Tiny models train fastest on one thread, and then do not fight other jobs for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SECOND_SIZE = {
    "hidden_size": 48,
    "intermediate_size": 112,
    "num_hidden_layers": 3,
    "num_attention_heads": 6,
    "num_key_value_heads": 3,
    "max_position_embeddings": 512,
}


@pytest.fixture(scope="session")
def second_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A differently shaped model (Mistral architecture, other widths, depth and vocabulary) for the TRL comparisons,
    so that they cannot pass by a coincidence of one model's shapes."""
    tokenizer = train_tokenizer(CORPUS * 20, vocab_size=400)
    model = build_tiny_model("mistral", tokenizer, SECOND_SIZE, seed=3)
    out = tmp_path_factory.mktemp("models") / "second-mistral"
    save_model(model, tokenizer, out)
    return out


@pytest.fixture(scope="session", params=["tiny-llama", "second-mistral"])
def trl_model_dir(request: pytest.FixtureRequest) -> Path:
    """Each TRL comparison runs once per model shape."""
    return request.getfixturevalue("tiny_model_dir" if request.param == "tiny-llama" else "second_model_dir")


def perturbed_pair(model_dir: Path, seed: int = 1) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A fresh reference (the saved model) and policy (a perturbed copy), so log-ratios are not zero.

    Every call builds new objects: a comparison gives each side its own, so nothing one library touched (e.g. a
    trainer that wraps a reference in autocast) is handed to the other.
    """
    reference = load_model(model_dir)
    policy = copy.deepcopy(reference)
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return policy, reference
