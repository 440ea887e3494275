"""Preference training of one (variant, method): the engine, the registered loss, and the checkpoint."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from baselines import get_method
from suite.engine import PreferenceCollator, PreferenceDataset, PreferenceTrainer, tokenization_fingerprint
from suite.io import read_jsonl, write_json
from suite.models import load_model, load_tokenizer
from suite.reference import load_reference
from suite.trainer_utils import last_checkpoint, save_trained, trainer_fields


def run_training(
    method_name: str,
    method_params: Mapping[str, Any],
    model_dir: Path,
    data: Path,
    reference: Path | None,
    training: Mapping[str, Any],
    checkpoints: Path,
    out: Path,
) -> list[dict]:
    """Train ``model_dir`` on ``data`` under a registered method; returns the log history."""
    method = get_method(method_name)
    params = {**method.defaults, **method_params}
    tokenizer = load_tokenizer(model_dir)
    dtype = training.get("dtype", "float32")
    stored = None
    if method.reference == "precomputed":
        if reference is None:
            raise ValueError(f"method {method_name!r} needs precomputed reference log-probs (--reference)")
        fingerprint = tokenization_fingerprint(tokenizer, training["max_length"], training["max_prompt_length"])
        stored = load_reference(reference, fingerprint)
    dataset = PreferenceDataset(
        read_jsonl(data), tokenizer, training["max_length"], training["max_prompt_length"], reference=stored
    )
    trainer = PreferenceTrainer(
        model=load_model(model_dir, dtype),
        args=TrainingArguments(**trainer_fields(training, checkpoints)),
        train_dataset=dataset,
        data_collator=PreferenceCollator(tokenizer.pad_token_id),
        method=method,
        method_params=params,
        ref_model=load_model(model_dir, dtype).eval() if method.reference == "live" else None,
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(checkpoints))
    save_trained(trainer, tokenizer, out)
    return trainer.state.log_history


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m suite.train", description=__doc__)
    parser.add_argument("--method", required=True)
    parser.add_argument("--params", default="{}", help="JSON: the method's hyperparameters (over its defaults)")
    parser.add_argument("--model", type=Path, required=True, help="start model (also the reference)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--reference", type=Path, help="precomputed reference log-probs")
    parser.add_argument("--training", required=True, help="JSON training block")
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-history", type=Path, required=True)
    args = parser.parse_args(argv)
    history = run_training(
        args.method,
        json.loads(args.params),
        args.model,
        args.data,
        args.reference,
        json.loads(args.training),
        args.checkpoints,
        args.out,
    )
    write_json(args.log_history, history)


if __name__ == "__main__":
    main()
