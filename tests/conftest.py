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


@pytest.fixture(scope="module")
def perturbed_models(tiny_model_dir: Path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The tiny model as reference and a perturbed copy as policy, so log-ratios are not zero."""
    reference = load_model(tiny_model_dir)
    policy = copy.deepcopy(reference)
    torch.manual_seed(1)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return policy, reference
