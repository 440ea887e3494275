"""Trainer plumbing shared by SFT and preference training.

One place translates the workflow's `training` config block into
TrainingArguments fields, resumes from checkpoints and publishes the final
model, so both stages read the same knobs (the protocol's 1 epoch, cosine
schedule, warmup 0.1, seed 42 ...) and fail the same safe way.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase, Trainer
from transformers.trainer_utils import get_last_checkpoint

TRAINER_FIELDS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "weight_decay",
    "seed",
    "bf16",
    "logging_steps",
    "save_steps",
    "gradient_checkpointing",
)


def trainer_fields(training: Mapping[str, Any], checkpoints: Path) -> dict[str, Any]:
    """Fields for TrainingArguments (or a TRL config) from the config block.

    Checkpoints go to a directory that is not a workflow output, so a killed
    job resumes from its last checkpoint instead of starting again.
    """
    fields = {key: training[key] for key in TRAINER_FIELDS if key in training}
    return {
        **fields,
        "warmup_steps": float(training.get("warmup_ratio", 0.0)),  # transformers 5: a float < 1 is a ratio
        "output_dir": str(checkpoints),
        "save_strategy": "steps",
        "save_total_limit": 1,
        "report_to": [],
        "disable_tqdm": False,
        "remove_unused_columns": False,
        "use_cpu": not training.get("cuda", False),
    }


def last_checkpoint(checkpoints: Path) -> str | None:
    """The checkpoint to resume from, if an earlier run of the same job left one."""
    return get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None


def save_trained(trainer: Trainer, tokenizer: PreTrainedTokenizerBase, out: Path) -> None:
    """Save the final model from every process (FSDP gathers the full state on rank 0), then publish it atomically.

    The model is written to a hidden sibling and renamed into place by the
    main process, so ``out`` never exists half-written.
    """
    partial = out.with_name(f".{out.name}.partial")
    if trainer.accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(partial))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(partial)
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    trainer.accelerator.wait_for_everyone()
