"""Rule entry point: supervised fine-tuning with TRL's SFTTrainer (suite.sft.run_sft)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from pipeline import setup_logging
from suite.io import write_json
from suite.sft import run_sft


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sft", description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--training", required=True, help="JSON training block")
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-history", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    history = run_sft(args.model, args.data, json.loads(args.training), args.checkpoints, args.out)
    write_json(args.log_history, history)


if __name__ == "__main__":
    main()
