"""Trainer plumbing shared by SFT, reward-model and preference training (and RTO's checkpoints).

One place translates the workflow's `training` config block into
TrainingArguments fields, decides which checkpoint may be resumed and
publishes the final model, so every stage reads the same knobs (the
protocol's 1 epoch, cosine schedule, warmup 0.1, seed 42 ...) and fails the
same safe way.

Checkpoints live outside the rule outputs (a job killed at its time limit
resumes), in one directory per *provenance*: ``<checkpoints>/run-<fingerprint>``,
where the fingerprint covers everything that determines the trained model
(inputs' content, parameters, training block, process count, code and library
versions; see :mod:`suite.provenance`). A rerun after any change therefore
starts fresh, and its log says what changed; a rerun with nothing changed
resumes. A checkpoint counts only once its completion marker is written, after
every process has finished saving it: a half-written one (a kill during the
save) is skipped with a warning and removed, and the older complete one is
kept until the new one is complete.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import accelerate
from accelerate import PartialState
from transformers import (
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from suite.processes import job_processes
from suite.provenance import code_version, differences, digest, write_stamp

log = logging.getLogger(__name__)

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
# How often to log and save, and the reference rule's batch size: they do not change what is trained.
NOT_PROVENANCE = ("logging_steps", "save_steps", "reference_batch_size")
RUN_PREFIX = "run-"
RUN_PROVENANCE = "provenance.json"
COMPLETE = "complete.json"  # written into a checkpoint once every process has finished saving it
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
LIBRARIES = ("torch", "transformers", "trl", "accelerate")


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
        "save_total_limit": None,  # CompleteCheckpoints rotates, only once the new checkpoint is complete
        "report_to": [],
        "disable_tqdm": False,
        "remove_unused_columns": False,
        "use_cpu": not training.get("cuda", False),
    }


# ---------------------------------------------------------------- processes and provenance of a run


def init_processes(training: Mapping[str, Any]) -> PartialState:
    """Join the job's process group before anything else asks for it: on CPU (``cuda: false``) several processes
    launched by ``accelerate launch`` (torchrun) form a gloo group only if the state is created with ``cpu=True``;
    the first ``PartialState()`` of a process decides, and the Trainer's own later request reuses it.

    The launcher's mixed precision (``ACCELERATE_MIXED_PRECISION``, from an accelerate config) must agree with the
    training block's ``bf16``: the Trainer would otherwise autocast under a precision no provenance records.
    """
    if not training.get("cuda", False) and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        log.warning(
            "FSDP needs GPU processes: accelerate %s turns only GPU-type process groups into FSDP, so these CPU "
            "processes train with DDP (every process holds the whole model)",
            accelerate.__version__,
        )
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")  # set only under `accelerate launch`
    wanted = "bf16" if training.get("bf16") else "no"
    if launched is not None and launched != wanted:
        raise ValueError(
            f"the launcher's mixed precision is {launched!r} (accelerate config or --mixed_precision), the training "
            f"block's bf16 is {bool(training.get('bf16'))} ({wanted!r}): launch with --mixed_precision {wanted}"
        )
    return job_processes(cuda=bool(training.get("cuda", False)))


def run_provenance(
    stage: str, code_modules: Iterable[str], training: Mapping[str, Any], **parts: Any
) -> dict[str, Any]:
    """What determines one training job's result: its stage, the training block (less :data:`NOT_PROVENANCE`),
    ``parts`` (inputs' identities, parameters ...), the number of processes (it sets the global batch and the data
    order), code and library versions."""
    return {
        "stage": stage,
        "training": {key: value for key, value in training.items() if key not in NOT_PROVENANCE},
        **parts,
        "processes": PartialState().num_processes,
        "code": code_version(code_modules),
        "libraries": {name: importlib.metadata.version(name) for name in LIBRARIES},
    }


def project_modules(*packages: str) -> list[str]:
    """The imported modules of the given project packages (a method's loss and everything it imports)."""
    return [name for name in sys.modules if name.split(".")[0] in packages]


def run_directory(checkpoints: Path, provenance: Mapping[str, Any]) -> Path:
    """The checkpoint directory of exactly these settings, created with its provenance on first use.

    Logs whether the job resumes or starts fresh, and if fresh, what differs
    from the newest checkpoints made under other settings.
    """
    run = checkpoints / f"{RUN_PREFIX}{digest(provenance)}"
    state = PartialState()
    if state.is_main_process:
        if (run / RUN_PROVENANCE).is_file():
            log.info("checkpoints: settings unchanged (%s); resuming from its newest complete checkpoint, if any", run)
        else:
            log.warning("checkpoints: starting fresh in %s: %s", run, _why_fresh(checkpoints, provenance))
            run.mkdir(parents=True, exist_ok=True)
            (run / RUN_PROVENANCE).write_text(json.dumps(provenance, indent=2, sort_keys=True, default=str) + "\n")
    state.wait_for_everyone()
    return run


def _why_fresh(checkpoints: Path, provenance: Mapping[str, Any]) -> str:
    """What changed since the newest earlier run of this job (or that there was none)."""
    earlier = sorted(checkpoints.glob(f"{RUN_PREFIX}*/{RUN_PROVENANCE}"), key=lambda p: p.stat().st_mtime)
    if not earlier:
        return "no earlier checkpoints of this job"
    changed = differences(json.loads(earlier[-1].read_text()), provenance)
    return f"the newest earlier checkpoints ({earlier[-1].parent.name}) were made under other settings: " + "; ".join(
        changed
    )


def last_checkpoint(run: Path) -> str | None:
    """The newest *complete* checkpoint of a run directory, or None; half-written newer ones are removed.

    A checkpoint is complete once :class:`CompleteCheckpoints` marked it; one
    without the marker was being written when its job was killed.
    """
    state = PartialState()
    if state.is_main_process:
        for _, path in _checkpoints(run):
            if (path / COMPLETE).is_file():
                break
            log.warning("checkpoints: skipping %s: half-written (its job was killed while saving it); removed", path)
            shutil.rmtree(path)
    state.wait_for_everyone()
    complete = [path for _, path in _checkpoints(run) if (path / COMPLETE).is_file()]
    if complete:
        log.info("checkpoints: resuming from %s", complete[0])
    return str(complete[0]) if complete else None


def _checkpoints(run: Path) -> list[tuple[int, Path]]:
    """``checkpoint-N`` directories of a run, newest first."""
    if not run.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return sorted(found, reverse=True)


class CompleteCheckpoints(TrainerCallback):
    """Marks a checkpoint complete once every process has saved its part, then removes the older ones."""

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        PartialState().wait_for_everyone()
        if state.is_world_process_zero:
            run = Path(args.output_dir)
            newest = run / f"checkpoint-{state.global_step}"
            (newest / COMPLETE).write_text(json.dumps({"step": state.global_step}) + "\n")
            for step, path in _checkpoints(run):
                if step < state.global_step:
                    shutil.rmtree(path)
        PartialState().wait_for_everyone()
        return control


def save_trained(
    trainer: Trainer, tokenizer: PreTrainedTokenizerBase, out: Path, provenance: Mapping[str, Any]
) -> None:
    """Save the final model from every process (FSDP gathers the full state on rank 0), then publish it atomically.

    The model is written to a hidden sibling, stamped with its content hash
    and provenance (what consumers key their own work by), and renamed into
    place by the main process, so ``out`` never exists half-written.
    """
    partial = out.with_name(f".{out.name}.partial")
    if trainer.accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(partial))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(partial)
        write_stamp(partial, provenance)
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    trainer.accelerator.wait_for_everyone()
