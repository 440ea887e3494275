"""Reference per-token log-probs, computed once per (variant, dataset) and reused by every method.

The file stores, for every record id, the reference's log-prob of each
response token, with the provenance they were computed under (the model's and
the data's identities, the tokenisation fingerprint and the precision: weights'
dtype and autocast). Training refuses a file whose provenance differs from its
own, naming what differs, and the reference is computed under the precision
training uses, so that at step 1, with the policy equal to the reference, the
log-ratios are ~0.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from suite.engine import (
    PreferenceCollator,
    PreferenceDataset,
    autocast,
    forward_batch,
    precision,
    tokenization_fingerprint,
)
from suite.io import atomic_path, read_jsonl
from suite.models import load_model, load_tokenizer
from suite.processes import gather_mapping, job_processes, my_share, progress
from suite.provenance import differences, identity


@torch.no_grad()
def reference_logps(
    model: PreTrainedModel,
    dataset: PreferenceDataset,
    pad_token_id: int,
    batch_size: int,
    numeric: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Tensor]]:
    """Per-response-token log-probs of ``model`` for every pair of ``dataset``, keyed by record id.

    ``numeric`` is the training block's :func:`~suite.engine.precision` (default: no autocast). In a job of
    several processes each computes its share of the batches (the same batches one process would) and every
    process returns them all (:mod:`suite.processes`).
    """
    model.eval()
    collator = PreferenceCollator(pad_token_id)
    numeric = numeric or {"autocast": None}
    processes = job_processes()
    out: dict[str, dict[str, Tensor]] = {}
    starts = list(range(0, len(dataset), batch_size))
    mine = [starts[i] for i in my_share(len(starts), processes)]
    for start in progress(mine, processes, desc="reference log-probs", unit="batch"):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        inputs = {k: v.to(model.device) if isinstance(v, Tensor) else v for k, v in collator(items).items()}
        with autocast(numeric, model.device):
            logps, mask, _ = forward_batch(model, inputs)
        for row, item in enumerate(items):
            chosen, rejected = row, row + len(items)
            out[item["id"]] = {
                "chosen": logps[chosen][mask[chosen].bool()].float().cpu(),
                "rejected": logps[rejected][mask[rejected].bool()].float().cpu(),
            }
    return gather_mapping(out, processes)


def reference_provenance(
    model_dir: Path, data: Path, tokenizer: PreTrainedTokenizerBase, training: Mapping[str, Any]
) -> dict[str, Any]:
    """What determines the reference log-probs of ``data`` under the model for a training block."""
    return {
        "model": identity(model_dir),
        "data": identity(data),
        "tokenisation": tokenization_fingerprint(tokenizer, training["max_length"], training["max_prompt_length"]),
        "precision": precision(training),
    }


def save_reference(path: Path, logps: Mapping[str, Any], provenance: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"provenance": dict(provenance), "logps": dict(logps)}, tmp)


def load_reference(path: Path, expected: Mapping[str, Any]) -> dict[str, dict[str, Tensor]]:
    """Load stored reference log-probs, refusing ones computed under another provenance (the differences named)."""
    stored = torch.load(path, weights_only=True)
    found = stored.get("provenance")
    if found is None:
        raise ValueError(f"{path}: reference log-probs without a provenance (an older suite made them); rerun its rule")
    changed = differences(found, expected)
    if changed:
        raise ValueError(
            f"{path}: the reference log-probs were computed under other settings than training uses "
            f"(stored -> training): {'; '.join(changed)}; rerun the reference rule"
        )
    return stored["logps"]


def compute_reference(model_dir: Path, data: Path, training: Mapping[str, Any], out: Path) -> None:
    """The reference rule's work: log-probs of ``data`` under ``model_dir`` and ``training``'s precision, saved with
    their provenance by the main process (every process of the job computes its share)."""
    processes = job_processes()
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, training.get("dtype", "float32")).to(processes.device)
    dataset = PreferenceDataset(read_jsonl(data), tokenizer, training["max_length"], training["max_prompt_length"])
    batch_size = training["reference_batch_size"]
    logps = reference_logps(model, dataset, tokenizer.pad_token_id, batch_size, precision(training))
    if processes.is_main_process:
        save_reference(out, logps, reference_provenance(model_dir, data, tokenizer, training))
