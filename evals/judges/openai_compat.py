"""Judge backend for any OpenAI-compatible chat endpoint (OpenAI itself, a vLLM server).

The API key is read from the environment variable the config names and is
handed only to the client: it never reaches a log line, an exception message,
a reply or the cache. Retries are ours (the client's are off) so that every
transient failure (429, 5xx, connection errors, timeouts) gets exponential
backoff with jitter, and a request that still fails raises :class:`JudgeError`
rather than yielding an empty answer.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import openai

from evals.judges.base import Judge, JudgeError, JudgeReply, JudgeRequest

log = logging.getLogger(__name__)

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class OpenAIConfig:
    """The judge config keys of this backend (see the module docstring)."""

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_retries: int = 6
    timeout_s: float = 120.0
    initial_backoff_s: float = 1.0
    concurrency: int = 8

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> OpenAIConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown openai judge config keys {unknown}; valid: {sorted(known)}")
        if "model" not in config:
            raise ValueError("the openai judge config needs a 'model'")
        parsed = cls(**config)
        if parsed.max_retries < 0 or parsed.concurrency < 1:
            raise ValueError("the openai judge config needs max_retries >= 0 and concurrency >= 1")
        return parsed


class OpenAIJudge(Judge):
    """Chat completions from an OpenAI-compatible endpoint, with log-probs when the request asks for them."""

    is_offline = False

    def __init__(self, config: OpenAIConfig) -> None:
        key = os.environ.get(config.api_key_env)
        if not key:
            raise JudgeError(
                f"environment variable {config.api_key_env} is not set; it must hold the API key "
                f"for the judge endpoint {config.base_url or 'OpenAI'}"
            )
        self.config = config
        self.name = f"openai:{config.model}"
        self.concurrency = config.concurrency
        self._key = key
        self._client = openai.OpenAI(base_url=config.base_url, api_key=key, max_retries=0, timeout=config.timeout_s)
        self._rng = random.Random()

    def complete(self, request: JudgeRequest) -> JudgeReply:
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._request(request)
            except RETRYABLE as exc:
                error = self._describe(exc)
            except openai.OpenAIError as exc:
                raise JudgeError(f"judge {self.name} refused the request: {self._describe(exc)}") from None
            if attempt + 1 < attempts:
                delay = self._backoff(attempt)
                log.warning("judge %s: %s; retrying in %.2fs", self.name, error, delay)
                time.sleep(delay)
        raise JudgeError(f"judge {self.name} gave no reply after {attempts} attempts; last error: {error}")

    def _request(self, request: JudgeRequest) -> JudgeReply:
        kwargs: dict[str, Any] = {}
        if request.top_logprobs is not None:
            kwargs = {"logprobs": True, "top_logprobs": request.top_logprobs}
        completion = self._client.chat.completions.create(
            model=self.config.model,
            messages=list(request.messages),  # type: ignore[arg-type]
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            **kwargs,
        )
        choice = completion.choices[0]
        top = None
        if choice.logprobs is not None and choice.logprobs.content is not None:
            top = [{t.token: t.logprob for t in position.top_logprobs} for position in choice.logprobs.content]
        raw = {"model": completion.model, "choice": choice.model_dump(mode="json")}
        return JudgeReply(text=choice.message.content or "", top_logprobs=top, raw=raw)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, so parallel jobs do not retry in lockstep."""
        base = min(MAX_BACKOFF_S, self.config.initial_backoff_s * 2**attempt)
        return base * (0.5 + self._rng.random())

    def _describe(self, exc: Exception) -> str:
        """Type and message of an error, with the API key masked in case a server echoed it."""
        return f"{type(exc).__name__}: {exc}".replace(self._key, "[REDACTED]")
