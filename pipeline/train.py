"""Rule entry point: preference training of one (variant, method) (suite.train.run_training)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from pipeline import setup_logging
from suite.io import write_json
from suite.train import run_training


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__)
    parser.add_argument("--method", required=True)
    parser.add_argument("--params", default="{}", help="JSON: the method's hyperparameters (over its defaults)")
    parser.add_argument("--model", type=Path, required=True, help="start model (also the reference)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--reference", type=Path, help="precomputed reference log-probs")
    parser.add_argument("--training", required=True, help="JSON training block")
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-history", type=Path, required=True)
    parser.add_argument("--swap-pairs", action="store_true", help="swap chosen and rejected (reverse DPO)")
    parser.add_argument("--artifact", type=Path, help="the method's precomputed artifact (e.g. TIS-DPO's weights)")
    args = parser.parse_args(argv)
    setup_logging()
    history = run_training(
        args.method,
        json.loads(args.params),
        args.model,
        args.data,
        args.reference,
        json.loads(args.training),
        args.checkpoints,
        args.out,
        swap_pairs=args.swap_pairs,
        artifact=args.artifact,
    )
    write_json(args.log_history, history)


if __name__ == "__main__":
    main()
