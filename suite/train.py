"""Preference training of one (variant, method): the engine, the registered loss, and the checkpoint."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments

from baselines import get_method
from suite.diagnostics import squeezing_setup
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
    swap_pairs: bool = False,
    artifact: Path | None = None,
) -> list[dict]:
    """Train ``model_dir`` on ``data`` under a registered method; returns the log history.

    ``swap_pairs`` trains on every pair with chosen and rejected swapped (and
    the reference's log-probs with them): TIS-DPO's reverse-DPO model.
    ``artifact`` is the method's precomputed artifact (``Method.artifact``).
    """
    method = get_method(method_name)
    params = {**method.defaults, **method_params}
    tokenizer = load_tokenizer(model_dir)
    dtype = training.get("dtype", "float32")
    fingerprint = tokenization_fingerprint(tokenizer, training["max_length"], training["max_prompt_length"])
    stored = None
    if method.reference == "precomputed":
        if reference is None:
            raise ValueError(f"method {method_name!r} needs precomputed reference log-probs (--reference)")
        stored = load_reference(reference, fingerprint)
    if (artifact is None) != (method.artifact is None):
        need = f"its {method.artifact} artifact (--artifact)" if method.artifact else "no artifact"
        raise ValueError(f"method {method_name!r} needs {need}")
    if artifact is not None:
        params["artifact"] = load_artifact(artifact, method.artifact, fingerprint)
    records, diagnostics = squeezing_setup(read_jsonl(data), tokenizer, training)
    if swap_pairs:
        records = [{**r, "chosen": r["rejected"], "rejected": r["chosen"]} for r in records]
        if stored is not None:
            stored = {key: {"chosen": ref["rejected"], "rejected": ref["chosen"]} for key, ref in stored.items()}
    dataset = PreferenceDataset(
        records, tokenizer, training["max_length"], training["max_prompt_length"], reference=stored
    )
    trainer = PreferenceTrainer(
        model=load_model(model_dir, dtype),
        args=TrainingArguments(**trainer_fields(training, checkpoints)),
        train_dataset=dataset,
        data_collator=PreferenceCollator(tokenizer.pad_token_id),
        method=method,
        method_params=params,
        ref_model=load_model(model_dir, dtype).eval() if method.reference == "live" else None,
        callbacks=diagnostics,
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(checkpoints))
    save_trained(trainer, tokenizer, out)
    return trainer.state.log_history


def load_artifact(path: Path, kind: str, fingerprint: str) -> dict[str, Any]:
    """A method's stored artifact ({"kind", "fingerprint", "values", ...}), refusing another kind or tokenisation."""
    stored = torch.load(path, weights_only=True)
    if stored.get("kind") != kind:
        raise ValueError(f"{path}: holds a {stored.get('kind')!r} artifact, the method needs {kind!r}")
    if stored.get("fingerprint") != fingerprint:
        raise ValueError(
            f"{path}: the {kind} artifact was computed with tokenisation {stored.get('fingerprint')}, "
            f"training uses {fingerprint}; rerun its rule"
        )
    return stored


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
    parser.add_argument("--swap-pairs", action="store_true", help="swap chosen and rejected (reverse DPO)")
    parser.add_argument("--artifact", type=Path, help="the method's precomputed artifact (e.g. TIS-DPO's weights)")
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
        swap_pairs=args.swap_pairs,
        artifact=args.artifact,
    )
    write_json(args.log_history, history)


if __name__ == "__main__":
    main()
