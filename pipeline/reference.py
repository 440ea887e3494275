"""Rule entry point: reference log-probs once per (variant, dataset) (suite.reference.compute_reference)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from suite.reference import compute_reference


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.reference", description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--training", required=True, help="JSON: max_length, max_prompt_length, eval batch size, dtype")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    compute_reference(args.model, args.data, json.loads(args.training), args.out)


if __name__ == "__main__":
    main()
