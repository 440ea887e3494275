"""Judge backends' config keys, checked without importing any backend's client.

The workflow checks the judge block when it starts (``pipeline/config.py``), so a
typo fails ``snakemake -n`` instead of the evaluate job after training. An
error names the key and lists the valid ones, and never repeats a value: a
value in a judge config may be a pasted secret.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
URL = re.compile(r"https?://\S+")

Config = TypeVar("Config")


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the annotated type (str, int, float, bool, or a union of them with None)."""
    if isinstance(hint, types.UnionType):
        return any(_fits(value, part) for part in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return " or ".join(_type_name(part) for part in typing.get_args(hint))
    return (
        "null"
        if hint is type(None)
        else {str: "a string", int: "an integer", float: "a number"}.get(hint, hint.__name__)
    )


def parse_fields(cls: type[Config], config: Mapping[str, Any], backend: str) -> Config:
    """``cls(**config)`` after checking the keys and their types against the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(f"{backend} judge: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    required = [f.name for f in fields(cls) if f.default is MISSING]  # type: ignore[arg-type]
    lacking = [name for name in required if name not in config]
    if lacking:
        raise ValueError(f"{backend} judge: missing key(s) {lacking}; valid keys: {sorted(known)}")
    for name, value in config.items():
        if not _fits(value, hints[name]):
            raise ValueError(f"{backend} judge: {name} must be {_type_name(hints[name])}, got {type(value).__name__}")
    return cls(**config)


@dataclass(frozen=True)
class OpenAIConfig:
    """The judge config keys of the ``openai`` backend (``evals.judges.openai_compat``)."""

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_retries: int = 6
    timeout_s: float = 120.0
    initial_backoff_s: float = 1.0
    concurrency: int = 8

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> OpenAIConfig:
        parsed = parse_fields(cls, config, "openai")
        if not ENV_NAME.fullmatch(parsed.api_key_env):
            raise ValueError(
                "openai judge: api_key_env must be the NAME of the environment variable that holds the key "
                "(letters, digits and _), never the key itself"
            )
        if parsed.base_url is not None and not URL.fullmatch(parsed.base_url):
            raise ValueError("openai judge: base_url must be an http:// or https:// URL")
        if parsed.max_retries < 0 or parsed.concurrency < 1:
            raise ValueError("openai judge: needs max_retries >= 0 and concurrency >= 1")
        if parsed.timeout_s <= 0 or parsed.initial_backoff_s < 0:
            raise ValueError("openai judge: needs timeout_s > 0 and initial_backoff_s >= 0")
        return parsed

    @property
    def cache_identity(self) -> str:
        """``openai:<model>`` on OpenAI's own endpoint, ``openai:<model>@<base_url>`` on any other."""
        name = f"openai:{self.model}"
        return name if self.base_url is None else f"{name}@{self.base_url.rstrip('/')}"
