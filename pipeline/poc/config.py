"""The PoC's settings: ``workflow/config/poc.yaml`` with the main config's ``poc:`` block merged over it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULTS_FILE = Path(__file__).resolve().parents[2] / "workflow" / "config" / "poc.yaml"
MAX_KEY_TOKENS = 4
REPLACED_WHOLE = {"methods"}  # override keys that replace the default instead of merging into it


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursively for nested mappings (lists are replaced whole)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_poc_config(overrides: Mapping[str, Any] | None = None, path: Path = DEFAULTS_FILE) -> dict[str, Any]:
    """The defaults file with ``overrides`` merged in, checked; an unknown top-level key lists the valid ones."""
    defaults = yaml.safe_load(path.read_text())
    unknown = sorted(set(overrides or {}) - set(defaults))
    if unknown:
        raise ValueError(f"poc: unknown key(s) {unknown}; valid: {', '.join(sorted(defaults))}")
    config = merge(defaults, {k: v for k, v in (overrides or {}).items() if k not in REPLACED_WHOLE})
    for key in REPLACED_WHOLE & set(overrides or {}):
        config[key] = copy.deepcopy(overrides[key])  # a subset of methods must be expressible
    check(config)
    return config


def check(config: Mapping[str, Any]) -> None:
    """Fail early, with the key's name, on settings the generator or the runs cannot honour."""
    k = config["key_tokens"]
    if not 1 <= k <= MAX_KEY_TOKENS:
        raise ValueError(f"poc: key_tokens must be 1..{MAX_KEY_TOKENS}, got {k}")
    for share in config["shares"]:
        if not 0.5 <= share < 1.0:
            raise ValueError(f"poc: shares must lie in [0.5, 1): each key word needs its own cue word, got {share}")
    if len({share_label(s) for s in config["shares"]}) != len(config["shares"]):
        raise ValueError(f"poc: shares must be distinct, got {config['shares']}")
    if not 0.0 <= config["paraphrase_prob"] <= 1.0:
        raise ValueError(f"poc: paraphrase_prob must be in [0, 1], got {config['paraphrase_prob']}")
    if len(set(config["seeds"])) != len(config["seeds"]) or not config["seeds"]:
        raise ValueError(f"poc: seeds must be a non-empty list of distinct integers, got {config['seeds']}")
    for name, run in config["methods"].items():
        if set(run) - {"method", "params"} or "method" not in run:
            raise ValueError(f"poc: methods/{name} needs 'method' and optional 'params', got {sorted(run)}")
    training = config["training"]
    for key in ("max_steps", "eval_every", "per_device_train_batch_size"):
        if int(training[key]) < 1:
            raise ValueError(f"poc: training/{key} must be >= 1, got {training[key]}")


def share_label(share: float) -> str:
    """The share as it appears in paths and tables: 0.8 -> '0.8'."""
    return f"{float(share):g}"


def response_length(share: float, key_tokens: int) -> int:
    """Words per response so that (length - key_tokens) / length is closest to ``share``."""
    return max(2 * key_tokens, round(key_tokens / (1.0 - share)))


__all__ = ["DEFAULTS_FILE", "check", "load_poc_config", "merge", "response_length", "share_label"]
