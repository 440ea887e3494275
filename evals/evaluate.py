"""Evaluate one model on several benchmarks in one process: one Python start-up, one job.

Each ``--step MODULE ARGS`` runs a registered benchmark module's own command
line (``python -m MODULE ARGS`` would do the same), in order; the first
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.evaluate", description=__doc__)
    parser.add_argument(
        "--step",
        nargs=2,
        action="append",
        required=True,
        metavar=("MODULE", "ARGS"),
        help="a benchmark module and its command line (one string); repeat for more benchmarks",
    )
    args = parser.parse_args(argv)
    modules = set(BENCHMARKS.values())
    for module, _ in args.step:
        if module not in modules:
            parser.error(f"{module!r} is not a registered benchmark module; registered: {', '.join(sorted(modules))}")
    for module, step_args in args.step:
        try:
            importlib.import_module(module).main(shlex.split(step_args))
        except EXPECTED_ERRORS as exc:
            print(f"error: {module}: {type(exc).__name__}: {exc}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
