"""Supervised fine-tuning with TRL's SFTTrainer: the Base variants' first stage, and the tiny Instruct stand-ins."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from suite.io import read_jsonl
from suite.models import load_model, load_tokenizer
from suite.provenance import identity
from suite.trainer_utils import (
    CompleteCheckpoints,
    init_processes,
    last_checkpoint,
    run_directory,
    run_provenance,
    save_trained,
    trainer_fields,
)


def run_sft(model_dir: Path, data: Path, training: dict, checkpoints: Path, out: Path) -> list[dict]:
    """Fine-tune on chat transcripts; returns the log history."""
    init_processes(training)
    provenance = run_provenance("sft", ["suite.sft"], training, model=identity(model_dir), data=identity(data))
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, training.get("dtype", "float32"))
    records = [{"messages": record["messages"]} for record in read_jsonl(data)]
    run = run_directory(checkpoints, provenance)
    args = SFTConfig(**trainer_fields(training, run), max_length=training["max_length"])
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        callbacks=[CompleteCheckpoints()],
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(run))
    save_trained(trainer, tokenizer, out, provenance)
    return trainer.state.log_history
