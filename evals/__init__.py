"""Evaluation benchmarks and the one registry the workflow reads them from.

Each entry maps a benchmark name to the module that implements it. A benchmark
module exposes module-level ``NAME``, ``COLUMNS`` (result key -> table column
header), ``ERRORS`` (result key -> the result key of its standard error),
``read_prompts(path)`` (the conversations to generate for),
``write_outputs(prompts_path, responses, generator, out)`` and
``item_scores(annotations_path)`` (one outcome per item, on the table's scale,
for the paired intervals of ``pipeline.tables``; it raises ``NotImplementedError``
where the score is not a mean of per-item outcomes). A judged
benchmark also has ``OPTIONS`` (its options' defaults, ``allow_partial``
among them), writes the completeness keys of :mod:`evals.results` into every
result, and says what one judge reply is expected to cost in tokens
(``EXPECTED_JUDGE_OUTPUT_TOKENS``, or ``expected_judge_output_tokens(options)``)
for :mod:`evals.budget`. Modules are imported lazily so that listing names
imports neither torch nor alpaca_eval.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    import pandas as pd

BENCHMARKS: dict[str, str] = {
    "alpaca_eval": "evals.alpaca_eval",
    "mt_bench": "evals.mt_bench",
    "arena_hard": "evals.arena_hard",
    "harmless": "evals.harmless",
    "hh_helpful": "evals.hh_helpful",
    "capability": "evals.capability",
}


class Benchmark(Protocol):
    """What the generation and evaluation entry points need of a benchmark module."""

    NAME: str
    COLUMNS: Mapping[str, str]
    ERRORS: Mapping[str, str]

    def read_prompts(self, path: Path) -> list[list[dict[str, str]]]: ...

    def write_outputs(self, prompts_path: Path, responses: Sequence[str], generator: str, out: Path) -> None: ...

    def item_scores(self, annotations_path: Path) -> pd.Series:
        """Per-item outcomes of an annotations file, indexed by a stable item id (first index level)."""
        ...


def benchmark_names() -> list[str]:
    return sorted(BENCHMARKS)


def get_benchmark(name: str) -> Benchmark:
    """Import and return a registered benchmark module; an unknown name lists the valid ones."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; valid benchmarks: {', '.join(benchmark_names())}")
    module: ModuleType = importlib.import_module(BENCHMARKS[name])
    if name != module.NAME:
        raise ValueError(f"registry entry {name!r} points to a module defining {module.NAME!r}")
    return cast(Benchmark, module)
