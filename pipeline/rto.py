"""Rule entry point: RTO's PPO training of one variant (baselines.rto.trainer.run_rto)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from baselines.rto.trainer import run_rto
from pipeline import setup_logging
from suite.io import write_json


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.rto", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--params", default="{}", help="JSON: RTO's hyperparameters (over baselines/rto/__init__.py defaults)"
    )
    parser.add_argument("--model", type=Path, required=True, help="start model: the policy's start and the reference")
    parser.add_argument("--dpo", type=Path, required=True, help="the variant's DPO model (dense token rewards)")
    parser.add_argument("--reward", type=Path, required=True, help="reward model (directory or pointer stage)")
    parser.add_argument("--data", type=Path, required=True, help="preference data whose prompts are sampled")
    parser.add_argument("--training", required=True, help="JSON training block")
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-history", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    history = run_rto(
        json.loads(args.params),
        args.model,
        args.dpo,
        args.reward,
        args.data,
        json.loads(args.training),
        args.checkpoints,
        args.out,
    )
    from accelerate import PartialState

    if PartialState().is_main_process:
        write_json(args.log_history, history)


if __name__ == "__main__":
    main()
