"""Judge backend for any OpenAI-compatible chat endpoint (OpenAI itself, a vLLM server).

The API key is read from the environment variable the config names and is
handed only to the client: it never reaches a log line, an exception message,
a reply or the cache (a server that echoes it gets it replaced by
``[REDACTED]`` in the reply before the reply leaves this module). Retries are
ours (the client's are off) so that every transient failure (429, 5xx,
connection errors, timeouts) and every malformed HTTP-200 response (a body
that is not JSON, such as a truncated one or an HTML page, no ``choices``, a
choice without message content) gets exponential backoff with jitter, and a
request that still fails raises :class:`JudgeError` rather than yielding an
empty answer.

The judge's cache identity is its name plus the endpoint (``base_url``) when
one is configured: two servers that serve the same model name may be
different models.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from evals.judges.base import Judge, JudgeError, JudgeReply, JudgeRequest
from evals.judges.settings import OpenAIConfig

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
REDACTED = "[REDACTED]"


class MalformedResponse(Exception):
    """An HTTP-200 response that is not a usable chat completion; retried like a server error."""


RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError, MalformedResponse)


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

    @property
    def cache_identity(self) -> str:
        return self.config.cache_identity

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
        try:
            completion = self._client.chat.completions.create(
                model=self.config.model,
                messages=list(request.messages),  # type: ignore[arg-type]
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                **kwargs,
            )
        except (ValueError, openai.APIResponseValidationError) as exc:  # a body that is not JSON (or not the schema)
            raise MalformedResponse(f"unreadable response body ({type(exc).__name__}: {exc})") from None
        if not isinstance(completion, ChatCompletion):  # the client hands back the text of a non-JSON body
            raise MalformedResponse(f"the response body is not a chat completion: {str(completion)[:80]!r}")
        if not getattr(completion, "choices", None):
            raise MalformedResponse("the response has no 'choices' (or an empty list)")
        choice = completion.choices[0]
        if not isinstance(getattr(getattr(choice, "message", None), "content", None), str):
            raise MalformedResponse("the response's first choice has no message content")
        top = None
        if choice.logprobs is not None and choice.logprobs.content is not None:
            top = [{t.token: t.logprob for t in position.top_logprobs} for position in choice.logprobs.content]
        raw = {"model": completion.model, "choice": choice.model_dump(mode="json")}
        return JudgeReply(text=self._scrub(choice.message.content), top_logprobs=self._scrub(top), raw=self._scrub(raw))

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, so parallel jobs do not retry in lockstep."""
        base = min(MAX_BACKOFF_S, self.config.initial_backoff_s * 2**attempt)
        return base * (0.5 + self._rng.random())

    def _describe(self, exc: Exception) -> str:
        """Type and message of an error, with the API key masked in case a server echoed it."""
        return self._scrub(f"{type(exc).__name__}: {exc}")

    def _scrub(self, value: Any) -> Any:
        """``value`` (a string, or anything JSON holds) with every occurrence of the API key masked."""
        if isinstance(value, str):
            return value.replace(self._key, REDACTED)
        return json.loads(json.dumps(value).replace(self._key, REDACTED))
