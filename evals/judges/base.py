"""The one interface every judge backend implements, and how a benchmark's requests are asked.

A benchmark renders its judge prompts into :class:`JudgeRequest` objects and
reads :class:`JudgeReply` objects back; it never knows whether an HTTP
endpoint, a cache or the offline stand-in answered.

What a reply must be is the benchmark's to say, and how it is re-asked is
decided here, once, for every benchmark (:func:`ask`, :func:`complete_all`):
each request comes with an :class:`AskPolicy` -- ``accept`` (did the reply
parse into an answer?), ``attempts`` (the bound) and ``follow_up`` (the next
request after a reply that did not parse: the same messages under a new
cache key by default; a benchmark whose protocol continues the conversation,
such as Arena-Hard's follow-up turn or the harmless repair turn, appends the
reply and its own turn). The exchange of one item is cached only when it ends
in an accepted reply, and then whole: the intermediate replies it continued
from are real protocol steps, needed to replay it exactly, so a rerun repeats
it from the cache at no cost. An exchange that ends without an accepted reply
is never cached, so a rerun against a healthy server asks again.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterable, Sequence
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
    ``item`` names the benchmark and the item the request judges, for error
    messages; like the payload it is neither sent nor part of the cache key.
    """

    messages: tuple[dict[str, str], ...]
    max_tokens: int
    temperature: float
    top_logprobs: int | None
    template: str
    payload: dict[str, Any] = field(default_factory=dict)
    item: str = ""


@dataclass(frozen=True)
class JudgeReply:
    """A judge's answer: its text, per generated position the top tokens' log-probs, and the raw reply."""

    text: str
    top_logprobs: list[dict[str, float]] | None
    raw: dict[str, Any]


class Judge(abc.ABC):
    """A judge backend. ``concurrency`` is how many requests it may serve at once.

    ``cache_identity`` is what the cache keys replies by besides the request:
    the judge's name, plus whatever else decides its replies that the name
    leaves out (an OpenAI-compatible judge's endpoint).
    """

    name: str
    is_offline: bool
    concurrency: int = 1

    @property
    def cache_identity(self) -> str:
        return self.name

    @abc.abstractmethod
    def complete(self, request: JudgeRequest) -> JudgeReply:
        """Answer one request or raise :class:`JudgeError`."""

    def lookup(self, request: JudgeRequest) -> JudgeReply | None:
        """A stored reply to ``request``, or None; a judge without a cache stores nothing."""
        return None

    def store(self, exchange: Iterable[tuple[JudgeRequest, JudgeReply]]) -> None:
        """Keep an accepted exchange for later runs; a judge without a cache drops it."""
        return None


Accept = Callable[[JudgeReply], bool]
FollowUp = Callable[[JudgeRequest, JudgeReply, int], "JudgeRequest | None"]


def has_content(reply: JudgeReply) -> bool:
    """The least a reply must have to be an answer: some text or some log-probs."""
    return bool(reply.text.strip()) or bool(reply.top_logprobs)


def ask_again(request: JudgeRequest, reply: JudgeReply, attempt: int) -> JudgeRequest:
    """The same messages once more, under their own cache key (``#attempt<n>``, n from 2)."""
    template = request.template.split("#attempt")[0]
    return dataclasses.replace(request, template=f"{template}#attempt{attempt + 1}")


def continued(request: JudgeRequest, reply: JudgeReply, user_turn: str) -> JudgeRequest:
    """``request``'s conversation with ``reply`` and ``user_turn`` appended: a protocol's own follow-up turn.

    The cache key changes with the messages, so the continuation is cached as its own step.
    """
    turns = ({"role": "assistant", "content": reply.text}, {"role": "user", "content": user_turn})
    return dataclasses.replace(request, messages=(*request.messages, *turns), top_logprobs=None)


@dataclass(frozen=True)
class AskPolicy:
    """When a reply is an answer, how often to ask, and what to send after a reply that is not.

    ``follow_up(request, reply, attempt)`` gets the request just answered, its
    reply and how many attempts were made; None ends the exchange early (a
    protocol that does not continue after this reply).
    """

    accept: Accept = has_content
    attempts: int = 1
    follow_up: FollowUp = ask_again

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a judge request needs at least one attempt, got {self.attempts}")


@dataclass(frozen=True)
class Exchange:
    """Every request sent for one item and every reply, in order; ``accepted``: the last reply is an answer."""

    requests: tuple[JudgeRequest, ...]
    replies: tuple[JudgeReply, ...]
    accepted: bool

    @property
    def reply(self) -> JudgeReply:
        return self.replies[-1]

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.replies]


def ask(judge: Judge, request: JudgeRequest, policy: AskPolicy) -> Exchange:
    """Ask until the policy accepts a reply or its attempts are spent; cache the exchange only if accepted.

    A stored reply the policy does not accept is used only to continue an
    exchange (it was stored as a step of one that ended accepted); at the
    last attempt it is ignored and the judge asked, so that a reply that did
    not parse never stands as an answer.
    """
    requests: list[JudgeRequest] = []
    replies: list[JudgeReply] = []
    for attempt in range(1, policy.attempts + 1):
        reply = judge.lookup(request)
        if reply is None or (attempt == policy.attempts and not policy.accept(reply)):
            reply = _complete(judge, request)
        requests.append(request)
        replies.append(reply)
        if policy.accept(reply):
            judge.store(zip(requests, replies, strict=True))
            return Exchange(tuple(requests), tuple(replies), accepted=True)
        if attempt == policy.attempts:
            break
        follow_up = policy.follow_up(request, reply, attempt)
        if follow_up is None:
            break
        request = follow_up
    return Exchange(tuple(requests), tuple(replies), accepted=False)


def _complete(judge: Judge, request: JudgeRequest) -> JudgeReply:
    """The judge's reply; its error names the benchmark and the item."""
    try:
        return judge.complete(request)
    except JudgeError as exc:
        if request.item and request.item not in str(exc):
            raise JudgeError(f"{request.item}: {exc}") from exc
        raise


def complete_all(
    judge: Judge, requests: Sequence[JudgeRequest], desc: str = "judge", policy: AskPolicy | None = None
) -> list[Exchange]:
    """Ask every request under ``policy``, ``judge.concurrency`` items at a time; the first failure stops the rest."""
    policy = policy or AskPolicy()

    def one(request: JudgeRequest) -> Exchange:
        return ask(judge, request, policy)

    if judge.concurrency <= 1:
        return [one(request) for request in tqdm(requests, desc=desc)]
    executor = ThreadPoolExecutor(max_workers=judge.concurrency)
    try:
        return list(tqdm(executor.map(one, requests), total=len(requests), desc=desc))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
