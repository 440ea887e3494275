"""A deterministic CPU stand-in for a model judge, for tests and the CPU-scale workflow.

It is NOT a model judge: its name says so and results record
``judge_is_offline: true``. It answers the same requests a real judge gets,
in the same shape, but computes the answer from ``request.payload`` with a
transparent heuristic instead of reading the prompt:

* ``score(instruction, output)`` = relevance - repetition, where relevance is
  the fraction of the instruction's words of 4+ letters that appear in the
  output and repetition is the fraction of the output's words that repeat an
  earlier one; an empty output scores -1.
* For a pairwise log-prob request (``payload["task"] == "pairwise_logprob"``)
  the probability that the first shown output is better is
  ``sigmoid(4 * (score_1 - score_2))``. The reply's text is the more likely of
  the two labels and its single position's top log-probs hold both labels,
  exactly what a judge asked for ``max_tokens=1`` with log-probs returns.

Same payload, same reply, always.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from evals.judges.base import Judge, JudgeError, JudgeReply, JudgeRequest

NAME = "offline-heuristic-v1"
SHARPNESS = 4.0
WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def score(instruction: str, output: str) -> float:
    """Relevance to the instruction minus repetition, in [-1, 1]; -1 for an empty output."""
    words = _words(output)
    if not words:
        return -1.0
    keys = {w for w in _words(instruction) if len(w) >= 4}
    relevance = len(keys & set(words)) / len(keys) if keys else 0.0
    repetition = 1.0 - len(set(words)) / len(words)
    return relevance - repetition


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _pairwise_logprob(payload: Mapping[str, Any]) -> JudgeReply:
    """Which of two shown outputs is better, as log-probs over the two labels."""
    first, second = payload["labels"]
    score_1 = score(payload["instruction"], payload["output_1"])
    score_2 = score(payload["instruction"], payload["output_2"])
    margin = SHARPNESS * (score_1 - score_2)
    logprobs = {first: _log_sigmoid(margin), second: _log_sigmoid(-margin)}
    text = first if margin >= 0 else second
    return JudgeReply(
        text=text,
        top_logprobs=[logprobs],
        raw={"heuristic": NAME, "score_1": score_1, "score_2": score_2},
    )


TASKS: dict[str, Callable[[Mapping[str, Any]], JudgeReply]] = {
    "pairwise_logprob": _pairwise_logprob,
}


class OfflineJudge(Judge):
    """Answers judge requests with the heuristic above; never touches a network."""

    name = NAME
    is_offline = True

    def complete(self, request: JudgeRequest) -> JudgeReply:
        task = request.payload.get("task")
        if task not in TASKS:
            raise JudgeError(
                f"the offline judge cannot answer task {task!r} (template {request.template}); "
                f"it answers: {', '.join(sorted(TASKS))}"
            )
        return TASKS[task](request.payload)
