"""Rule entry point and command line of the judge-cost guard (evals.budget): one step's check, or the run's table."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from evals.budget import (
    CONFIRM_ENV,
    BudgetError,
    asset_files,
    budget_settings,
    check,
    confirmed,
    format_table,
    plan_run,
    refusal,
    run_total,
    step_estimate,
)
from pipeline import setup_logging
from pipeline.config import load_config

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.budget", description=__doc__)
    parser.add_argument("--config", type=Path, help="workflow config YAML: print the run's judge-cost table")
    parser.add_argument("--results", type=Path, default=Path("results"), help="the workflow's results directory")
    parser.add_argument("--check", action="store_true", help="with --config: apply the budget to the run total")
    step = parser.add_argument_group("one evaluate step (what the workflow runs before judging)")
    step.add_argument("--step", action="store_true")
    step.add_argument("--benchmark")
    step.add_argument("--outputs", type=Path)
    step.add_argument("--reference", type=Path)
    step.add_argument("--judge", help="judge config as JSON, budget keys included")
    step.add_argument("--cache", type=Path)
    step.add_argument("--options", default="{}")
    step.add_argument(
        "--assets", help="asset files as JSON {name: path}; default: those under --results/data/assets/BENCHMARK/"
    )
    args = parser.parse_args(argv)
    setup_logging()

    try:
        if args.step:
            missing = [f"--{k}" for k in ("benchmark", "outputs", "reference", "judge") if getattr(args, k) is None]
            if missing:
                parser.error(f"--step needs {', '.join(missing)}")
            judge_config = json.loads(args.judge)
            settings = budget_settings(judge_config)
            if settings.get("max_budget_usd") is None and not settings.get("confirm"):
                return 0
            options = json.loads(args.options)
            assets = (
                {k: Path(v) for k, v in json.loads(args.assets).items()}
                if args.assets is not None
                else asset_files(args.benchmark, args.results)
            )
            found, _ = step_estimate(
                args.benchmark, judge_config, args.outputs, args.reference, args.cache, options, assets
            )
            for note in found.notes:
                log.warning(note)
            check(found, settings, f"{args.benchmark} on {args.outputs}")
            log.info("budget: %s: %d calls to make, estimated cost %s", args.benchmark, found.to_call, found.cost_usd)
            return 0
        if args.config is None:
            parser.error("give --config (the run's table) or --step (one evaluate step)")
        config = load_config(args.config)
        settings = budget_settings(config.get("judge") or {})
        rows = plan_run(config, args.results)
        print(format_table(rows, settings))
        if args.check:
            total = run_total(rows)
            reason = refusal(total, settings, f"the run of {args.config}")
            if reason is not None and not confirmed():
                print(f"\nrefused: {reason}; set {CONFIRM_ENV}=1 to confirm", file=sys.stderr)
                return 3
        return 0
    except BudgetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
