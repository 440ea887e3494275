"""Preference training of one (variant, method): the engine, the registered loss, and the checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments

from suite.diagnostics import squeezing_setup
from suite.engine import (
    PreferenceCollator,
    PreferenceDataset,
    PreferenceTrainer,
    tokenisation_report,
)
from suite.io import read_jsonl
from suite.methods import get_method
from suite.models import load_model, load_tokenizer
from suite.provenance import identity
from suite.reference import load_reference, reference_provenance
from suite.trainer_utils import (
    CompleteCheckpoints,
    init_processes,
    last_checkpoint,
    project_modules,
    run_directory,
    run_provenance,
    save_trained,
    trainer_fields,
)


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
    init_processes(training)
    method = get_method(method_name)
    params = method.resolve_params(method_params)
    tokenizer = load_tokenizer(model_dir)
    # The model's and the data's identities and the tokenisation, hashed once: this run's and its reference's.
    inputs = reference_provenance(model_dir, data, tokenizer, training)
    provenance = run_provenance(
        "preference training",
        [*project_modules("aao", "baselines"), "suite.engine"],
        training,
        method=method_name,
        params=params,
        swap_pairs=swap_pairs,
        model=inputs["model"],
        data=inputs["data"],
        reference=identity(reference) if reference is not None else None,
        artifact=identity(artifact) if artifact is not None else None,
    )
    dtype = training.get("dtype", "float32")
    stored = None
    if method.reference == "precomputed":
        if reference is None:
            raise ValueError(f"method {method_name!r} needs precomputed reference log-probs (--reference)")
        stored = load_reference(reference, inputs)
    if (artifact is None) != (method.artifact is None):
        need = f"its {method.artifact} artifact (--artifact)" if method.artifact else "no artifact"
        raise ValueError(f"method {method_name!r} needs {need}")
    if artifact is not None:  # a new dict: the provenance keeps the parameters, not the artifact's values
        params = {**params, "artifact": load_artifact(artifact, method.artifact, inputs["tokenisation"])}
    records, diagnostics = squeezing_setup(read_jsonl(data), tokenizer, training)
    if swap_pairs:
        records = [{**r, "chosen": r["rejected"], "rejected": r["chosen"]} for r in records]
        if stored is not None:
            stored = {key: {"chosen": ref["rejected"], "rejected": ref["chosen"]} for key, ref in stored.items()}
    dataset = PreferenceDataset(
        records, tokenizer, training["max_length"], training["max_prompt_length"], reference=stored
    )
    print(tokenisation_report(dataset.tokenisation, len(dataset)), flush=True)
    run = run_directory(checkpoints, provenance)
    trainer = PreferenceTrainer(
        model=load_model(model_dir, dtype),
        # A method's own modules (AAO's AW) run in the loss, outside the policy's forward: DDP then needs a static
        # graph to reduce their gradients with the policy's.
        args=TrainingArguments(**trainer_fields(training, run), ddp_static_graph=method.build_modules is not None),
        train_dataset=dataset,
        data_collator=PreferenceCollator(tokenizer.pad_token_id),
        method=method,
        method_params=params,
        ref_model=load_model(model_dir, dtype).eval() if method.reference == "live" else None,
        callbacks=[CompleteCheckpoints(), *diagnostics],
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(run))
    save_trained(trainer, tokenizer, out, provenance)
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
