"""FastChat's MT-Bench judging constants, read from its installed source instead of imported.

``fastchat.llm_judge.common`` imports FastChat's model adapter at module level,
which pulls torch._dynamo, openai and anthropic: about 6 s per process, paid by
every generation and evaluation job of the DAG for four constants. Here the
module's source is parsed (never executed) and the literal values of those
constants are taken from it, so they still come from the pinned FastChat and
a change in a FastChat release reaches the suite (``tests/test_evals_mt_bench.py``
checks the values equal what the imported module holds).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

from evals.source_constants import assignments

COMMON_MODULE = "fastchat.llm_judge.common"
CHANGED = "FastChat changed; check the fschat pin in pyproject.toml"


def common_source() -> Path:
    spec = importlib.util.find_spec(COMMON_MODULE)
    if spec is None or spec.origin is None:
        raise ImportError(f"{COMMON_MODULE} not found: install fschat (pyproject.toml pins it)")
    return Path(spec.origin)


@cache
def module_constants() -> dict[str, ast.expr]:
    """Every top-level ``NAME = expression`` of FastChat's judging module, unevaluated."""
    return assignments(common_source())


def literal(name: str) -> Any:
    """A constant written as a Python literal (list, dict, string, number)."""
    try:
        return ast.literal_eval(module_constants()[name])
    except KeyError:
        raise ImportError(f"{common_source()}: no top-level {name!r} ({CHANGED})") from None


def compiled_pattern(name: str) -> re.Pattern[str]:
    """A constant written as ``re.compile("literal")``."""
    node = module_constants().get(name)
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
        raise ImportError(f"{common_source()}: {name!r} is not re.compile('...') ({CHANGED})")
    return re.compile(node.args[0].value)


NEED_REF_CATS: list[str] = literal("NEED_REF_CATS")
temperature_config: dict[str, float] = literal("temperature_config")
one_score_pattern = compiled_pattern("one_score_pattern")
one_score_pattern_backup = compiled_pattern("one_score_pattern_backup")
