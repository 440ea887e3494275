"""Constants read from a Python source file without executing it.

Some benchmarks keep the values their protocol needs in code rather than
data (FastChat's judging constants, arena-hard-auto's per-category judge
settings). The file is parsed, never run, and a constant is evaluated as a
Python literal in which a name may stand for another top-level literal of the
same file (``{"system_prompt": OG_PROMPT}``).
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def assignments(path: str | Path) -> dict[str, ast.expr]:
    """Every top-level ``NAME = expression`` of a Python source file, unevaluated."""
    with warnings.catch_warnings():  # e.g. regexes that are not raw strings (invalid escape warnings)
        warnings.simplefilter("ignore")
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    return {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
    }


def literal(name: str, found: Mapping[str, ast.expr], origin: str) -> Any:
    """The value of the top-level constant ``name``, names inside it replaced by their own literal values."""
    if name not in found:
        raise ValueError(f"{origin}: no top-level {name!r}")

    class Inline(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            if node.id not in found or node.id == name:
                raise ValueError(f"{origin}: {name!r} refers to {node.id!r}, which is not a top-level literal")
            return ast.Constant(literal(node.id, found, origin))

    try:
        return ast.literal_eval(Inline().visit(ast.parse(ast.unparse(found[name]), mode="eval")))
    except (SyntaxError, TypeError) as exc:
        raise ValueError(f"{origin}: {name!r} is not a literal: {exc}") from None
