"""Judges: one interface (:mod:`evals.judges.base`), several backends, one registry.

A judge config is a mapping with a ``backend`` key naming an entry of
:data:`JUDGES`; the other keys go to that backend. Each backend's keys are
checked by its config parser without building the judge
(:func:`check_judge_config`, what the workflow runs at start), and its cache
identity is known without building it (:func:`judge_identity`, what the cost
guard looks replies up by). ``make_judge`` wraps the backend in an on-disk
cache when given a cache path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.judges.base import (
    AskPolicy,
    Exchange,
    Judge,
    JudgeError,
    JudgeReply,
    JudgeRequest,
    ask,
    complete_all,
    continued,
    has_content,
)
from evals.judges.cache import CachedJudge
from evals.judges.hf_local import HFConfig
from evals.judges.hf_local import judge_name as hf_judge_name
from evals.judges.settings import OpenAIConfig


@dataclass(frozen=True)
class Backend:
    """A judge backend: its config parser (checks the keys), its judge factory, and its cache identity."""

    parse: Callable[[Mapping[str, Any]], Any]
    build: Callable[[Any], Judge]
    identity: Callable[[Any], str]


def _openai(config: OpenAIConfig) -> Judge:
    from evals.judges.openai_compat import OpenAIJudge

    return OpenAIJudge(config)


def _hf(config: HFConfig) -> Judge:
    from evals.judges.hf_local import HFJudge  # torch and transformers are imported when it is built

    return HFJudge(config)


def _offline_config(config: Mapping[str, Any]) -> None:
    if config:
        raise ValueError(f"offline judge: takes no keys, got {sorted(config)}")


def _offline(_: None) -> Judge:
    from evals.judges.offline import OfflineJudge

    return OfflineJudge()


def _offline_identity(_: None) -> str:
    from evals.judges.offline import NAME

    return NAME


JUDGES: dict[str, Backend] = {
    "openai": Backend(OpenAIConfig.from_mapping, _openai, lambda config: config.cache_identity),
    "offline": Backend(_offline_config, _offline, _offline_identity),
    "hf": Backend(HFConfig.from_mapping, _hf, hf_judge_name),
}


def _backend(config: Mapping[str, Any]) -> tuple[Backend, Any]:
    """The backend a judge config names and its parsed keys; an unknown backend lists the valid ones."""
    name = config.get("backend")
    if name not in JUDGES:
        raise ValueError(f"unknown judge backend {name!r}; valid backends: {', '.join(sorted(JUDGES))}")
    backend = JUDGES[name]
    return backend, backend.parse({k: v for k, v in config.items() if k != "backend"})


def check_judge_config(config: Mapping[str, Any]) -> None:
    """Raise ValueError (naming the key, listing the valid ones) unless ``config`` is a valid judge config."""
    _backend(config)


def judge_identity(config: Mapping[str, Any]) -> str:
    """The cache identity of the judge ``config`` describes (part of every cache key), without building it."""
    backend, parsed = _backend(config)
    return backend.identity(parsed)


def make_judge(config: Mapping[str, Any], cache_path: str | Path | None = None) -> Judge:
    """Build the judge a config describes; cached on disk when ``cache_path`` is given."""
    backend, parsed = _backend(config)
    judge = backend.build(parsed)
    return CachedJudge(judge, cache_path) if cache_path is not None else judge


__all__ = [
    "JUDGES",
    "AskPolicy",
    "CachedJudge",
    "Exchange",
    "Judge",
    "JudgeError",
    "JudgeReply",
    "JudgeRequest",
    "ask",
    "check_judge_config",
    "complete_all",
    "continued",
    "has_content",
    "judge_identity",
    "make_judge",
]
