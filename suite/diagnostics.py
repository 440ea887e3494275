"""The squeezing diagnostic: the policy's probability of its own top token on held-out responses, during training.

Why: the AAO paper claims to ease DPO's *squeezing effect* (Ren & Sutherland,
"Learning Dynamics of LLM Finetuning"): the negative gradient on rejected
responses pushes probability mass onto each position's most likely token, so
the model grows over-confident everywhere. It shows as a rising mean
probability of the top token, ``max_v p(v | prefix)``, on responses the model
was not trained on.

How: ``training.squeezing_held_out`` pairs are kept out of training, chosen
by a hash of their record ids (so every method on the same data holds out the
same pairs). At the start of training and at every logging step the callback
runs them through the policy (no gradient) and adds to the log history entry
``squeeze/top_prob_chosen`` and ``squeeze/top_prob_rejected`` (mean over
pairs of the mean over response tokens) and ``squeeze/top_prob`` (their
mean). At the end it appends one entry with ``squeeze/final``: each held-out
pair's value (mean of its two responses), by record id, for the paired
comparison of two methods in the tables. Every process runs the whole slice,
so a sharded (FSDP) model sees the same forwards on every rank.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase, TrainerCallback

from suite.engine import IGNORE, PreferenceCollator, PreferenceDataset
from suite.history_keys import FINAL, KEY


def held_out_split(
    records: Sequence[Mapping[str, Any]], size: int
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(training records, held-out records): the ``size`` records whose ids hash lowest, order kept."""
    if size <= 0:
        return list(records), []
    if size >= len(records):
        raise ValueError(f"squeezing_held_out is {size}, but the data has only {len(records)} pairs")
    digest = {r["id"]: hashlib.sha256(str(r["id"]).encode()).hexdigest() for r in records}
    held = set(sorted(digest, key=digest.__getitem__)[:size])
    return [r for r in records if r["id"] not in held], [r for r in records if r["id"] in held]


def top_token_probability(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean over each row's response positions of the top token's probability, (N,).

    Position t of the logits predicts token t+1, as in ``suite.engine.token_logps``;
    computed row by row in float32, like it, to bound memory on large vocabularies.
    """
    mask = labels[:, 1:] != IGNORE
    values = []
    for row_logits, row_mask in zip(logits[:, :-1], mask, strict=True):
        row = row_logits[row_mask].float()
        values.append(torch.exp(row.max(-1).values - torch.logsumexp(row, -1)).mean())
    return torch.stack(values)


@torch.no_grad()
def measure(model: torch.nn.Module, batches: Sequence[Mapping[str, Any]], device: torch.device) -> dict[str, Any]:
    """The diagnostic on collated held-out batches: means over pairs, and each pair's value by id."""
    was_training = model.training
    model.eval()
    chosen, rejected, ids = [], [], []
    for batch in batches:
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device), use_cache=False
        ).logits
        first, second = top_token_probability(logits, batch["labels"].to(device)).chunk(2)
        chosen.append(first.cpu())
        rejected.append(second.cpu())
        ids += list(batch["ids"])
    model.train(was_training)
    chosen_all, rejected_all = torch.cat(chosen), torch.cat(rejected)
    per_pair = (chosen_all + rejected_all) / 2
    return {
        f"{KEY}_chosen": chosen_all.mean().item(),
        f"{KEY}_rejected": rejected_all.mean().item(),
        KEY: per_pair.mean().item(),
        "by_id": dict(zip(ids, per_pair.tolist(), strict=True)),
    }


class SqueezingCallback(TrainerCallback):
    """Logs the diagnostic at the start, at every logging step and, per pair, at the end of training."""

    def __init__(self, held_out: PreferenceDataset, pad_token_id: int, batch_size: int) -> None:
        collate = PreferenceCollator(pad_token_id)
        items = [held_out[i] for i in range(len(held_out))]
        self.batches = [collate(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]

    def _means(self, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        values = measure(model, self.batches, device)
        values.pop("by_id")
        return values

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:  # not again when resuming: the history already holds it
            state.log_history.append({"step": 0, **self._means(model, args.device)})

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if logs and "loss" in logs and state.log_history:
            state.log_history[-1].update(self._means(model, args.device))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        values = measure(model, self.batches, args.device)
        state.log_history.append({"step": state.global_step, FINAL: values.pop("by_id"), **values})


def squeezing_setup(
    records: Sequence[Mapping[str, Any]], tokenizer: PreTrainedTokenizerBase, training: Mapping[str, Any]
) -> tuple[list[Mapping[str, Any]], list[TrainerCallback]]:
    """The records to train on and the callbacks to train with (none when ``squeezing_held_out`` is 0)."""
    train, held = held_out_split(records, int(training.get("squeezing_held_out", 0)))
    if not held:
        return train, []
    dataset = PreferenceDataset(held, tokenizer, training["max_length"], training["max_prompt_length"])
    batch_size = int(training.get("per_device_train_batch_size", 8))
    return train, [SqueezingCallback(dataset, tokenizer.pad_token_id, batch_size)]
