"""The preference pairs on which the suite's losses are compared with TRL's (tests/test_*trl*.py)."""

from __future__ import annotations

PAIRS = [
    ("How do I bake bread?", "Mix flour, water and yeast, knead it, let it rise and bake it.", "The sea is blue."),
    ("What is the capital of France?", "The capital of France is Paris.", "I cannot help with that request."),
    ("Explain photosynthesis.", "Plants turn light into sugar.", "Write a short poem about the sea, it is wide."),
]


def records() -> list[dict]:
    """The pairs as the suite's normalised preference records."""
    return [
        {
            "id": f"pair-{i}",
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
        for i, (prompt, chosen, rejected) in enumerate(PAIRS)
    ]


def trl_records() -> list[dict]:
    """The pairs as TRL's conversational preference rows."""
    return [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in records()]
