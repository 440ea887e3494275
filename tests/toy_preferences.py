"""Toy preference pairs and a short training block shared by the training tests.

Chosen and rejected share everything but two key words, so a few dozen steps
on a tiny model show whether a method learns.
"""

from __future__ import annotations

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
