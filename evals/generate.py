"""A benchmark's answers: its prompts read, answered by the model, its outputs written.

How a benchmark reads prompts and writes outputs is its module's (see
:mod:`evals`); generation itself is :mod:`suite.generation`. Multi-turn
benchmarks (MT-Bench) define two optional hooks: ``read_turns(path)`` (each
prompt's user turns) and ``prompt_decodings(path, decoding)`` (each prompt's
decoding, e.g. FastChat's category temperatures); their ``write_outputs``
receives one list of answers per prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evals import get_benchmark
from suite.generation import Responder, converse


def answer_benchmark(respond: Responder, benchmark_name: str, prompts: Path, decoding: Mapping[str, Any]) -> list:
    """A benchmark's responses in the shape its ``write_outputs`` takes (a list of turns for multi-turn ones)."""
    benchmark = get_benchmark(benchmark_name)
    if hasattr(benchmark, "read_turns"):  # multi-turn (see the module docstring)
        turns = benchmark.read_turns(prompts)
        decodings = (
            benchmark.prompt_decodings(prompts, decoding)
            if hasattr(benchmark, "prompt_decodings")
            else [decoding] * len(turns)
        )
        return converse(respond, turns, decodings)
    conversations = benchmark.read_prompts(prompts)
    return respond(conversations, [decoding] * len(conversations))
