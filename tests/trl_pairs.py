"""The preference pairs on which the suite's losses are compared with TRL's (tests/test_*trl*.py), and the
tolerance of those comparisons."""

from __future__ import annotations

_LONG = (
    "Plants turn light, water and carbon dioxide into sugar and oxygen. Mix flour, water, salt and yeast, knead the "
    "dough, let it rise and bake it. The sea is wide and blue, it sings to me and you. "
) * 3
PAIRS = [
    ("How do I bake bread?", "Mix flour, water and yeast, knead it, let it rise and bake it.", "The sea is blue."),
    ("What is the capital of France?", "The capital of France is Paris.", "I cannot help with that request."),
    ("Explain photosynthesis.", "Plants turn light into sugar.", "Write a short poem about the sea, it is wide."),
    ("Explain photosynthesis in detail.", _LONG, "I cannot help with that request. " * 4),  # ~100-token responses
]
# TRL sums the same float32 per-token log-probs (up to ~100 per response) in another order: each sum agrees to
# a few ulps of its own magnitude (|sum| ~ 600 has ulp 6e-5), never to a fixed absolute 1e-5. A reward is
# beta * (policy sum - reference sum), so its error scales with the sums' magnitudes, not with its own value.
SUM_RTOL = 1e-6  # ~16 float32 ulps of each summed log-prob


def tolerances(metrics: dict[str, float], beta: float) -> dict[str, float]:
    """Absolute tolerance per logged metric (and "loss") of a DPO-family comparison, from TRL's summed log-probs."""
    chosen, rejected = abs(metrics["logps/chosen"]), abs(metrics["logps/rejected"])
    sums = {"chosen": 2 * SUM_RTOL * chosen, "rejected": 2 * SUM_RTOL * rejected}  # policy and reference sums
    margin = beta * (sums["chosen"] + sums["rejected"])
    return {
        "logps/chosen": SUM_RTOL * chosen,
        "logps/rejected": SUM_RTOL * rejected,
        "rewards/chosen": beta * sums["chosen"],
        "rewards/rejected": beta * sums["rejected"],
        "rewards/margins": margin,
        "rewards/accuracies": 0.0,
        "loss": margin,  # |d(-log sigmoid(x))/dx| <= 1
    }


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
