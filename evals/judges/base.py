"""The one interface every judge backend implements, and a helper to run many requests.

A benchmark renders its judge prompts into :class:`JudgeRequest` objects and
reads :class:`JudgeReply` objects back; it never knows whether an HTTP
endpoint, a cache or the offline stand-in answered.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm


class JudgeError(RuntimeError):
    """A judge could not answer; raised instead of returning a partial or empty reply."""


@dataclass(frozen=True)
class JudgeRequest:
    """One chat request to a judge.

    ``template`` is a versioned template id (``name@sha256[:12]`` of the
    template text) so that a changed prompt never reuses cached replies.
    ``payload`` holds the structured inputs the messages were rendered from;
    only the offline stand-in reads it and it is never sent over HTTP.
    """

    messages: tuple[dict[str, str], ...]
    max_tokens: int
    temperature: float
    top_logprobs: int | None
    template: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeReply:
    """A judge's answer: its text, per generated position the top tokens' log-probs, and the raw reply."""

    text: str
    top_logprobs: list[dict[str, float]] | None
    raw: dict[str, Any]


class Judge(abc.ABC):
    """A judge backend. ``concurrency`` is how many requests it may serve at once."""

    name: str
    is_offline: bool
    concurrency: int = 1

    @abc.abstractmethod
    def complete(self, request: JudgeRequest) -> JudgeReply:
        """Answer one request or raise :class:`JudgeError`."""


def complete_all(judge: Judge, requests: Sequence[JudgeRequest], desc: str = "judge") -> list[JudgeReply]:
    """Answer every request in order, ``judge.concurrency`` at a time; the first failure stops the rest."""
    if judge.concurrency <= 1:
        return [judge.complete(request) for request in tqdm(requests, desc=desc)]
    executor = ThreadPoolExecutor(max_workers=judge.concurrency)
    try:
        return list(tqdm(executor.map(judge.complete, requests), total=len(requests), desc=desc))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
