"""Toy preference pairs and a short training block shared by the training tests.

Chosen and rejected share everything but two key words, so a few dozen steps
on a tiny model show whether a method learns.
"""

from __future__ import annotations

from pathlib import Path

from suite.engine import PreferenceDataset, precision
from suite.io import write_jsonl
from suite.models import build_tiny_model, save_model, train_tokenizer
from suite.reference import reference_logps, reference_provenance, save_reference
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


def toy_pairs(prefix: str) -> list[dict]:
    """One pair per topic, ids ``{prefix}-{i}``."""
    return [
        {
            "id": f"{prefix}-{i}",
            "prompt": [{"role": "user", "content": f"Tell me about {topic}."}],
            "chosen": [{"role": "assistant", "content": f"Sure! Here is a kind and useful note on {topic}."}],
            "rejected": [{"role": "assistant", "content": f"Sure! Here is a rude and useless note on {topic}."}],
        }
        for i, topic in enumerate(TOPICS)
    ]


def prepare_toy_run(root: Path, records: list[dict], training: dict, size: dict | None = None) -> None:
    """What the workflow has ready before a method trains: ``start`` model, ``data.jsonl``, ``reference.pt``."""
    texts = [m["content"] for r in records for k in ("prompt", "chosen", "rejected") for m in r[k]]
    tokenizer = train_tokenizer(texts * 10, vocab_size=200)
    model = build_tiny_model("llama", tokenizer, size or TINY_SIZE, seed=0)
    save_model(model, tokenizer, root / "start")
    write_jsonl(root / "data.jsonl", records)
    dataset = PreferenceDataset(records, tokenizer, training["max_length"], training["max_prompt_length"])
    stored = reference_logps(model, dataset, tokenizer.pad_token_id, batch_size=8, numeric=precision(training))
    provenance = reference_provenance(root / "start", root / "data.jsonl", tokenizer, training)
    save_reference(root / "reference.pt", stored, provenance)
