"""Judges: one interface (:mod:`evals.judges.base`), several backends, one registry.

A judge config is a mapping with a ``backend`` key naming an entry of
:data:`JUDGES`; the other keys go to that backend. ``make_judge`` wraps the
backend in an on-disk cache when given a cache path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evals.judges.base import Judge, JudgeError, JudgeReply, JudgeRequest, complete_all
from evals.judges.cache import CachedJudge
from evals.judges.hf_local import make_hf_judge


def _openai(config: Mapping[str, Any]) -> Judge:
    from evals.judges.openai_compat import OpenAIConfig, OpenAIJudge

    return OpenAIJudge(OpenAIConfig.from_mapping(config))


def _offline(config: Mapping[str, Any]) -> Judge:
    from evals.judges.offline import OfflineJudge

    if config:
        raise ValueError(f"the offline judge takes no config keys, got {sorted(config)}")
    return OfflineJudge()


JUDGES: dict[str, Callable[[Mapping[str, Any]], Judge]] = {
    "openai": _openai,
    "offline": _offline,
    "hf": make_hf_judge,
}


def make_judge(config: Mapping[str, Any], cache_path: str | Path | None = None) -> Judge:
    """Build the judge a config describes; cached on disk when ``cache_path`` is given."""
    backend = config.get("backend")
    if backend not in JUDGES:
        raise ValueError(f"unknown judge backend {backend!r}; valid backends: {', '.join(sorted(JUDGES))}")
    judge = JUDGES[backend]({k: v for k, v in config.items() if k != "backend"})
    return CachedJudge(judge, cache_path) if cache_path is not None else judge


__all__ = [
    "JUDGES",
    "CachedJudge",
    "Judge",
    "JudgeError",
    "JudgeReply",
    "JudgeRequest",
    "complete_all",
    "make_judge",
]
