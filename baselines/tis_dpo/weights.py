"""TIS-DPO's token weights, computed once per variant from its DPO and reverse-DPO models (see the package).

Both models score every response token of the variant's preference data (the
same tokenisation training uses); the per-token log-prob differences become
weights in [low, high]. The file stores, for every record id, the chosen and
rejected weights, with the tokenisation fingerprint, the settings that made
them and the two models, in the artifact format ``suite.train --artifact``
reads::

    {"kind": "tis_weights", "fingerprint": ..., "params": {...}, "models": {...},
     "values": {record id: {"chosen": (n,) weights, "rejected": (m,) weights}}}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from baselines.tis_dpo import METHOD, WEIGHT_PARAMS, token_weights
from suite.engine import PreferenceDataset, precision, tokenization_fingerprint
from suite.io import read_jsonl
from suite.models import load_model, load_tokenizer
from suite.processes import job_processes
from suite.reference import reference_logps

log = logging.getLogger(__name__)
KIND = METHOD.artifact


def compute_tis_weights(
    dpo_dir: Path, reverse_dir: Path, data: Path, training: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    """The artifact (see the module docstring) for ``data`` under the two models."""
    params = METHOD.resolve_params(params)
    tokenizer = load_tokenizer(dpo_dir)
    fingerprint = tokenization_fingerprint(tokenizer, training["max_length"], training["max_prompt_length"])
    reverse_fingerprint = tokenization_fingerprint(
        load_tokenizer(reverse_dir), training["max_length"], training["max_prompt_length"]
    )
    if reverse_fingerprint != fingerprint:
        raise ValueError(f"{dpo_dir} and {reverse_dir} tokenise differently: they must share the start model")
    dataset = PreferenceDataset(read_jsonl(data), tokenizer, training["max_length"], training["max_prompt_length"])
    batch_size = int(training.get("reference_batch_size", 8))
    logps = {}
    for name, model_dir in (("dpo", dpo_dir), ("reverse", reverse_dir)):
        model = load_model(model_dir, training.get("dtype", "float32")).to(job_processes().device)  # as suite.reference
        logps[name] = {
            key: {side: value.float().cpu() for side, value in sides.items()}
            for key, sides in reference_logps(
                model, dataset, tokenizer.pad_token_id, batch_size, precision(training)
            ).items()
        }
        del model
    values = token_weights(
        logps["dpo"], logps["reverse"], params["transform"], params["low"], params["high"], params["clip"]
    )
    return {
        "kind": KIND,
        "fingerprint": fingerprint,
        "params": {key: params[key] for key in WEIGHT_PARAMS},
        "models": {"dpo": str(dpo_dir), "reverse": str(reverse_dir)},
        "values": values,
    }


def summary(artifact: Mapping[str, Any]) -> dict[str, float]:
    """Mean, min and max weight per side, for the log."""
    out = {}
    for side in ("chosen", "rejected"):
        flat = torch.cat([v[side] for v in artifact["values"].values()] or [torch.zeros(0)])
        if len(flat):
            out.update({f"{side}/mean": flat.mean().item(), f"{side}/min": flat.min().item()})
            out[f"{side}/max"] = flat.max().item()
    return out
