"""Rule entry point of evaluation: one model on several benchmarks in one process (one Python start-up, one job).

Each ``--step MODULE ARGS`` runs a registered benchmark module's own command
line (its ``main``: judging and scoring, or fetching an asset), in order; the first
failure stops the job, so no later result is written after an earlier one
failed. The suite's own errors (an incomplete result, bad input data, a judge
that gave no reply, a refused spend) end the job with their message and exit
status 2 instead of a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence

from evals import BENCHMARKS
from evals.budget import BudgetError
from evals.judges import JudgeError
from evals.results import IncompleteResultError
from suite.data import DataError

EXPECTED_ERRORS = (IncompleteResultError, DataError, JudgeError, BudgetError)


def parse_steps(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[tuple[str, str]]:
    """``--step MODULE ARGS`` pairs, ARGS taken verbatim (argparse would read a lone ``--flag`` ARGS as an option)."""
    argv, steps = list(argv), []
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        parser.exit()
    while argv:
        if argv[0] != "--step" or len(argv) < 3:
            parser.error(f"expected --step MODULE ARGS, got {' '.join(argv[:3])!r}")
        steps.append((argv[1], argv[2]))
        argv = argv[3:]
    return steps


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.evaluate",
        description=__doc__,
        usage="%(prog)s --step MODULE ARGS [--step MODULE ARGS ...]",
    )
    steps = parse_steps(parser, sys.argv[1:] if argv is None else argv)
    modules = set(BENCHMARKS.values())
    for module, _ in steps:
        if module not in modules:
            parser.error(f"{module!r} is not a registered benchmark module; registered: {', '.join(sorted(modules))}")
    for module, step_args in steps:
        try:
            importlib.import_module(module).main(shlex.split(step_args))
        except EXPECTED_ERRORS as exc:
            print(f"error: {module}: {type(exc).__name__}: {exc}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
