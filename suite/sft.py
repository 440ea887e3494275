"""Supervised fine-tuning with TRL's SFTTrainer: the Base variants' first stage, and the tiny Instruct stand-ins."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from suite.io import read_jsonl, write_json
from suite.models import load_model, load_tokenizer
from suite.trainer_utils import last_checkpoint, save_trained, trainer_fields


def run_sft(model_dir: Path, data: Path, training: dict, checkpoints: Path, out: Path) -> list[dict]:
    """Fine-tune on chat transcripts; returns the log history."""
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, training.get("dtype", "float32"))
    records = [{"messages": record["messages"]} for record in read_jsonl(data)]
    args = SFTConfig(**trainer_fields(training, checkpoints), max_length=training["max_length"])
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(records), processing_class=tokenizer)
    trainer.train(resume_from_checkpoint=last_checkpoint(checkpoints))
    save_trained(trainer, tokenizer, out)
    return trainer.state.log_history


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m suite.sft", description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--training", required=True, help="JSON training block")
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-history", type=Path, required=True)
    args = parser.parse_args(argv)
    history = run_sft(args.model, args.data, json.loads(args.training), args.checkpoints, args.out)
    write_json(args.log_history, history)


if __name__ == "__main__":
    main()
