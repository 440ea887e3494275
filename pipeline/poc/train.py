"""One PoC run: train a start model under one method on one share's pairs, evaluating held-out pairs every k steps.

The run uses the suite's engine unchanged (PreferenceDataset, PreferenceTrainer,
the registered loss); the start model is also the reference, whose per-token
log-probs are computed once here. Held-out metrics, at step 0, every
``eval_every`` steps and at the end:

* ``accuracy``: share of pairs with an unweighted implicit reward margin > 0,
  i.e. (log-ratio chosen - log-ratio rejected) > 0, summed over response tokens;
* ``margin``: the mean of that log-ratio difference;
* ``key_margin``: mean over pairs of the mean over key positions of
  log pi(chosen key) - log pi(rejected key);
* ``key_accuracy``: share of key positions where the chosen key is the likelier;
* ``margin_key`` / ``margin_shared``: the parts of ``margin`` that come from
  the key positions and from all other (shared) response tokens;
* ``aao_weight_{key,shared}_{hidden,embedding}``: the mean weight AAO's
  similarity (fixed thresholds a=0.7, b=0.3, default curve) gives the chosen
  response's key tokens and its other tokens, with the representation
  ``hidden`` (AAO's default: this model's last hidden state at the position
  that predicts the token, as the engine aligns it) or ``embedding`` (the
  token's input embedding): whether AAO can see the key tokens at all.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainingArguments, set_seed

from aao.config import AAOConfig
from aao.similarity import token_similarity
from aao.weights import token_weights
from suite.engine import PreferenceCollator, PreferenceDataset, PreferenceTrainer, forward_batch
from suite.io import read_jsonl, write_json
from suite.methods import get_method
from suite.models import load_model, load_tokenizer
from suite.reference import reference_logps
from suite.trainer_utils import trainer_fields

TRAINING_KEYS = ("max_steps", "learning_rate", "per_device_train_batch_size", "lr_scheduler_type", "warmup_ratio")
EVAL_BATCH = 64
TAIL_TOKENS = 2  # the chat template ends each response with eos and a newline


def check_alignment(records: Sequence[Mapping[str, Any]], dataset: PreferenceDataset) -> None:
    """Every word is one token and chosen/rejected differ exactly at the key and paraphrase positions."""
    for record, item in zip(records, dataset.items, strict=True):
        n = len(record["chosen_words"])
        chosen, rejected = item["chosen_ids"], item["rejected_ids"]
        if len(chosen) != n + TAIL_TOKENS or len(rejected) != n + TAIL_TOKENS:
            raise ValueError(
                f"poc record {record['id']}: {n} words became {len(chosen)}/{len(rejected)} response tokens "
                f"(expected {n + TAIL_TOKENS}): a word was split, or max_length cut the response"
            )
        differing = sorted(i for i in range(n) if chosen[i] != rejected[i])
        expected = sorted(record["key_positions"] + record["paraphrase_positions"])
        if differing != expected:
            raise ValueError(f"poc record {record['id']}: tokens differ at {differing}, recorded {expected}")


def with_reference(records, tokenizer, training, model) -> PreferenceDataset:
    plain = PreferenceDataset(records, tokenizer, training["max_length"], training["max_prompt_length"])
    check_alignment(records, plain)
    stored = reference_logps(model, plain, tokenizer.pad_token_id, EVAL_BATCH)
    return PreferenceDataset(
        records, tokenizer, training["max_length"], training["max_prompt_length"], reference=stored
    )


def aao_weights(chosen, rejected, chosen_mask, rejected_mask, config: AAOConfig):
    """AAO's chosen-side token weights for given representations, with the config's thresholds a, b."""
    similarity = token_similarity(chosen, rejected, chosen_mask, rejected_mask, config.reduction, config.minmax_eps)
    return token_weights(
        similarity.chosen_scores,
        chosen_mask,
        config.fixed_a,
        config.fixed_b,
        w_min=config.w_min,
        w_max=config.w_max,
        gating=config.gating,
        tau=config.tau,
        renormalise_weights=config.renormalise,
    )


@torch.no_grad()
def evaluate(model, dataset: PreferenceDataset, records: Sequence[Mapping[str, Any]], pad_token_id: int) -> dict:
    """The held-out metrics of the module docstring, for the model as it is now."""
    was_training = model.training
    model.eval()
    collator = PreferenceCollator(pad_token_id)
    weights_config = AAOConfig(thresholds="fixed")
    sums: dict[str, float] = {}
    key_positions = 0
    for start in range(0, len(dataset), EVAL_BATCH):
        items = [dataset[i] for i in range(start, min(start + EVAL_BATCH, len(dataset)))]
        inputs = collator(items)
        logps, mask, hidden = forward_batch(model, inputs, hidden_states=True)
        ratio = (logps - inputs["ref_logps"]) * mask  # (2B, T)
        b = len(items)
        key_mask = torch.zeros_like(mask)
        for row in range(b):
            response = mask[row].nonzero().squeeze(-1)  # shifted positions of the response tokens
            positions = response[records[start + row]["key_positions"]]
            key_mask[row, positions] = 1.0
            key_mask[row + b, positions] = 1.0
        diff = ratio[:b].sum(-1) - ratio[b:].sum(-1)
        diff_key = (ratio * key_mask)[:b].sum(-1) - (ratio * key_mask)[b:].sum(-1)
        key_logp = (logps * key_mask)[:b] - (logps * key_mask)[b:]  # (B, T), nonzero at key positions
        n_keys = key_mask[:b].sum(-1)
        targets = inputs["labels"][:, 1:]
        embedded = model.get_input_embeddings()(targets.masked_fill(targets < 0, 0))  # (2B, T, D)
        weights = {
            name: aao_weights(repr_[:b], repr_[b:], mask[:b], mask[b:], weights_config)
            for name, repr_ in (("hidden", hidden), ("embedding", embedded))
        }
        shared_mask = mask[:b] - key_mask[:b]
        batch = {
            "accuracy": (diff > 0).float().sum(),
            "margin": diff.sum(),
            "margin_key": diff_key.sum(),
            "margin_shared": (diff - diff_key).sum(),
            "key_margin": (key_logp.sum(-1) / n_keys).sum(),
        }
        for name, w in weights.items():
            batch[f"aao_weight_key_{name}"] = ((w * key_mask[:b]).sum(-1) / n_keys).sum()
            batch[f"aao_weight_shared_{name}"] = ((w * shared_mask).sum(-1) / shared_mask.sum(-1).clamp_min(1)).sum()
        for key, value in batch.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        sums["key_accuracy"] = sums.get("key_accuracy", 0.0) + float(((key_logp > 0).float() * key_mask[:b]).sum())
        key_positions += int(n_keys.sum())
    metrics = {key: value / len(dataset) for key, value in sums.items()}
    metrics["key_accuracy"] = sums["key_accuracy"] / max(key_positions, 1)
    if was_training:
        model.train()
    return metrics


class HeldOutCurve(TrainerCallback):
    """Held-out metrics at step 0, every ``every`` steps and at the last step."""

    def __init__(self, evaluate_now, every: int) -> None:
        self.evaluate_now = evaluate_now
        self.every = every
        self.curve: list[dict] = []

    def _record(self, step: int, model) -> None:
        if not self.curve or self.curve[-1]["step"] != step:
            self.curve.append({"step": step, **self.evaluate_now(model)})

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._record(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step >= state.max_steps:
            self._record(state.global_step, model)


def method_params(method_name: str, params: Mapping[str, Any], beta: float, seed: int) -> dict:
    """The method's defaults, the run's parameters, the shared beta, and the run seed where the method has one."""
    method = get_method(method_name)
    merged = {**method.defaults, **params, "beta": beta}
    if "seed" in method.defaults and "seed" not in params:
        merged["seed"] = seed
    return merged


def run(
    model_dir: Path,
    train_path: Path,
    heldout_path: Path,
    method_name: str,
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int,
) -> dict:
    started = time.perf_counter()
    # Seed before anything draws random numbers: the engine builds AAO's AW module
    # (random init) before the Trainer seeds itself, so an unseeded process would
    # start every adaptive-AAO run from a different AW initialisation.
    set_seed(seed)
    method = get_method(method_name)
    full_params = method_params(method_name, params, training["beta"], seed)
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir)
    train_records, heldout_records = read_jsonl(train_path), read_jsonl(heldout_path)
    train_set = with_reference(train_records, tokenizer, training, model)
    heldout_set = with_reference(heldout_records, tokenizer, training, model)
    curve = HeldOutCurve(
        lambda m: evaluate(m, heldout_set, heldout_records, tokenizer.pad_token_id), int(training["eval_every"])
    )
    block = {key: training[key] for key in TRAINING_KEYS if key in training}
    with tempfile.TemporaryDirectory(prefix="poc-run-") as scratch:
        fields = trainer_fields({**block, "seed": seed, "logging_steps": training["eval_every"]}, Path(scratch))
        fields.update({"save_strategy": "no", "disable_tqdm": True})
        trainer = PreferenceTrainer(
            model=model,
            args=TrainingArguments(**fields),
            train_dataset=train_set,
            data_collator=PreferenceCollator(tokenizer.pad_token_id),
            method=method,
            method_params=full_params,
            callbacks=[curve],
        )
        trainer.train()
    history = [
        {k: v for k, v in h.items() if isinstance(v, int | float) and math.isfinite(v)}
        for h in trainer.state.log_history
    ]
    return {
        "method": method_name,
        "params": full_params,
        "seed": seed,
        "share": train_records[0]["share"],
        "training": dict(training),
        "curve": curve.curve,
        "final": curve.curve[-1],
        "log_history": history,
        "wall_s": time.perf_counter() - started,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.poc.train", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="start model, also the reference")
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--run-name", required=True, help="the run's name in the report (e.g. aao_fixed)")
    parser.add_argument("--method", required=True, help="registered method")
    parser.add_argument("--params", default="{}", help="JSON: method parameters over its defaults")
    parser.add_argument("--training", required=True, help="JSON: the poc training block")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(
        args.model, args.train, args.heldout, args.method, json.loads(args.params), json.loads(args.training), args.seed
    )
    write_json(args.out, {"run": args.run_name, **result})
    final = result["final"]
    print(f"{args.run_name} seed {args.seed}: accuracy {final['accuracy']:.3f} key_margin {final['key_margin']:.3f}")


if __name__ == "__main__":
    main()
