"""Rule entry points of reward models: train one, point to a hub checkpoint, score conversations (suite.reward)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pipeline import setup_logging
from suite.io import read_jsonl, write_json, write_jsonl
from suite.models import fetch_checkpoint
from suite.reward import DTYPES, load_reward_model, train_reward_model, write_reward_pointer

log = logging.getLogger(__name__)


def _cmd_train(args: argparse.Namespace) -> None:
    from accelerate import PartialState

    history, report = train_reward_model(
        args.base, args.data, json.loads(args.training), args.checkpoints, args.out, args.held_out
    )
    if PartialState().is_main_process:
        write_json(args.log_history, history)
        write_json(args.eval_out, report)


def _cmd_score(args: argparse.Namespace) -> None:
    records = read_jsonl(args.conversations)
    model = load_reward_model(
        args.reward, revision=args.revision, trust_remote_code=args.trust_remote_code, dtype=args.dtype
    )
    values = model.score([r["messages"] for r in records], args.batch_size)
    write_jsonl(
        args.out, ({"id": r.get("id", i), "score": v} for i, (r, v) in enumerate(zip(records, values, strict=True)))
    )
    log.info("scored %d conversations with %s", len(values), model.describe())


def _cmd_pointer(args: argparse.Namespace) -> None:
    recorded = fetch_checkpoint(args.hub, args.revision, args.download)
    write_reward_pointer(args.out, args.hub, args.revision, args.trust_remote_code, **recorded)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.reward", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a reward model with TRL's RewardTrainer")
    train.add_argument("--base", type=Path, required=True, help="base model stage (weights or pointer.json)")
    train.add_argument("--data", type=Path, required=True, help="preference data in the suite's format")
    train.add_argument("--training", required=True, help="JSON training block")
    train.add_argument("--held-out", type=float, default=0.0, help="share of pairs kept out to report accuracy")
    train.add_argument("--checkpoints", type=Path, required=True)
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--log-history", type=Path, required=True)
    train.add_argument("--eval-out", type=Path, required=True, help="held-out report (JSON)")
    train.set_defaults(func=_cmd_train)

    sc = sub.add_parser("score", help="score conversations (JSONL records with 'messages')")
    sc.add_argument("--reward", required=True, help="reward model directory, pointer stage or hub id")
    sc.add_argument("--revision")
    sc.add_argument("--trust-remote-code", action="store_true")
    sc.add_argument("--dtype", choices=DTYPES, default="float32")
    sc.add_argument("--conversations", type=Path, required=True)
    sc.add_argument("--batch-size", type=int, default=8)
    sc.add_argument("--out", type=Path, required=True)
    sc.set_defaults(func=_cmd_score)

    ptr = sub.add_parser("pointer", help="a hub reward model (or a local checkpoint directory) as a workflow stage")
    ptr.add_argument("--hub", required=True, help="a hub id or a local checkpoint directory")
    ptr.add_argument("--revision")
    ptr.add_argument("--trust-remote-code", action="store_true")
    ptr.add_argument("--download", action="store_true")
    ptr.add_argument("--out", type=Path, required=True)
    ptr.set_defaults(func=_cmd_pointer)

    args = parser.parse_args(argv)
    setup_logging()
    args.func(args)


if __name__ == "__main__":
    main()
