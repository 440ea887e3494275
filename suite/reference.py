"""Reference per-token log-probs, computed once per (variant, dataset) and reused by every method.

The file stores, for every record id, the reference's log-prob of each
response token, plus the tokenisation fingerprint they were computed under.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm
from transformers import PreTrainedModel

from suite.engine import PreferenceCollator, PreferenceDataset, forward_batch, tokenization_fingerprint
from suite.io import atomic_path, read_jsonl
from suite.models import load_model, load_tokenizer


@torch.no_grad()
def reference_logps(
    model: PreTrainedModel, dataset: PreferenceDataset, pad_token_id: int, batch_size: int
) -> dict[str, dict[str, Tensor]]:
    """Per-response-token log-probs of ``model`` for every pair of ``dataset``, keyed by record id."""
    model.eval()
    collator = PreferenceCollator(pad_token_id)
    out: dict[str, dict[str, Tensor]] = {}
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc="reference log-probs", unit="batch"):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        inputs = {k: v.to(model.device) if isinstance(v, Tensor) else v for k, v in collator(items).items()}
        logps, mask, _ = forward_batch(model, inputs)
        for row, item in enumerate(items):
            chosen, rejected = row, row + len(items)
            out[item["id"]] = {
                "chosen": logps[chosen][mask[chosen].bool()].cpu(),
                "rejected": logps[rejected][mask[rejected].bool()].cpu(),
            }
    return out


def save_reference(path: Path, logps: Mapping[str, Any], fingerprint: str, model_dir: str) -> None:
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": fingerprint, "model": model_dir, "logps": dict(logps)}, tmp)


def load_reference(path: Path, fingerprint: str) -> dict[str, dict[str, Tensor]]:
    """Load stored reference log-probs, refusing ones computed under another tokenisation."""
    stored = torch.load(path, weights_only=True)
    if stored["fingerprint"] != fingerprint:
        raise ValueError(
            f"{path}: reference log-probs were computed with tokenisation {stored['fingerprint']}, "
            f"training uses {fingerprint}; rerun the reference rule"
        )
    return stored["logps"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m suite.reference", description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--training", required=True, help="JSON: max_length, max_prompt_length, eval batch size, dtype")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    training = json.loads(args.training)
    tokenizer = load_tokenizer(args.model)
    model = load_model(args.model, training.get("dtype", "float32"))
    if torch.cuda.is_available():
        model = model.to("cuda")
    dataset = PreferenceDataset(read_jsonl(args.data), tokenizer, training["max_length"], training["max_prompt_length"])
    logps = reference_logps(model, dataset, tokenizer.pad_token_id, training["reference_batch_size"])
    fingerprint = tokenization_fingerprint(tokenizer, training["max_length"], training["max_prompt_length"])
    save_reference(args.out, logps, fingerprint, str(args.model))


if __name__ == "__main__":
    main()
