"""Rule entry point: TIS-DPO's token weights from the DPO and reverse-DPO models (baselines.tis_dpo)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from baselines.tis_dpo.weights import compute_tis_weights, summary
from pipeline import setup_logging
from suite.io import atomic_path

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tis_weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dpo", type=Path, required=True, help="the variant's DPO model")
    parser.add_argument("--reverse", type=Path, required=True, help="the DPO model trained on swapped pairs")
    parser.add_argument("--data", type=Path, required=True, help="the preference data TIS-DPO trains on")
    parser.add_argument("--training", required=True, help="JSON training block (max_length, max_prompt_length ...)")
    parser.add_argument("--params", default="{}", help="JSON: TIS-DPO's hyperparameters (transform, low, high, clip)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    artifact = compute_tis_weights(
        args.dpo, args.reverse, args.data, json.loads(args.training), json.loads(args.params)
    )
    with atomic_path(args.out) as tmp:
        torch.save(artifact, tmp)
    log.info("TIS weights of %d records: %s", len(artifact["values"]), summary(artifact))


if __name__ == "__main__":
    main()
