"""Reward models: train one with TRL's RewardTrainer, and score conversations with any of them.

One interface serves every consumer (the on-policy data of the Instruct
variants, and later RTO): a reward model is a sequence-classification model
that maps a whole conversation (prompt + assistant response) to one number.

* ``train``: a base model stage (a tiny local model here, a hub model behind a
  pointer on the cluster) gets a one-output classification head and is trained
  with :class:`trl.RewardTrainer` on the suite's preference data (Bradley-Terry
  loss on chosen vs rejected). A share of the pairs can be held out; their
  accuracy is reported both by the trainer and through :func:`score`, so the
  two tokenisations are checked against each other.
* ``score``: any sequence-classification reward model (a trained directory, a
  pointer stage, or a hub id such as ``RLHFlow/ArmoRM-Llama3-8B-v0.1``, which
  needs ``trust_remote_code`` and returns its preference score in ``.score``;
  plain models return ``logits[:, 0]``).
* ``pointer``: a hub reward model as a workflow stage (a ``pointer.json`` that
  also records ``trust_remote_code``), downloaded into the HF cache first.

Conversations are tokenised exactly as the RewardTrainer tokenises them
(``apply_chat_template`` of the full conversation). Batches are right-padded
with the model config's pad token (the tokenizer's if the config has none),
which both pooling conventions in use read correctly (the rightmost non-pad
token, and the token before the first pad); a conversation that contains the
pad token itself, or any conversation when there is no pad token, is scored
on its own, without padding, as the model cards do.

Command line::

    python -m pipeline.reward train --base results/models/tiny-llama --data results/data/ultrafeedback.jsonl \\
        --training '{"learning_rate": 1e-3, "max_length": 256}' --held-out 0.1 \\
        --checkpoints results/checkpoints/reward_models/tiny-rm --out results/reward_models/tiny-rm \\
        --log-history results/reward_models/tiny-rm.log_history.json --eval-out results/reward_models/tiny-rm.eval.json
    python -m pipeline.reward score --reward results/reward_models/tiny-rm --conversations c.jsonl --out s.jsonl
"""

from __future__ import annotations

import gc
import logging
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from suite.io import atomic_dir, read_jsonl, write_json
from suite.models import CHAT_TEMPLATE, POINTER, resolve
from suite.provenance import identity

log = logging.getLogger(__name__)

Conversation = Sequence[Mapping[str, str]]
DTYPES = ("float32", "bfloat16", "float16")


# --------------------------------------------------------------------------- loading


def reward_source(reward: str | Path, revision: str | None = None, trust_remote_code: bool = False) -> dict[str, Any]:
    """Where and how to load a reward model: a pointer stage, a directory with weights, or a hub id.

    A pointer's own ``revision`` and ``trust_remote_code`` win over the arguments,
    so a workflow stage always loads what its config named.
    """
    path = Path(reward)
    if (path / POINTER).exists():
        spec = resolve(path)
        return {
            "name_or_path": spec["name_or_path"],
            "revision": spec.get("revision"),
            "trust_remote_code": bool(spec.get("trust_remote_code", trust_remote_code)),
        }
    if path.is_dir():
        return {"name_or_path": str(path), "revision": None, "trust_remote_code": trust_remote_code}
    return {"name_or_path": str(reward), "revision": revision, "trust_remote_code": trust_remote_code}


def write_reward_pointer(
    out: Path, hub_id: str, revision: str | None, trust_remote_code: bool, **recorded: Any
) -> None:
    """Make ``out`` a reward-model stage referring to a hub checkpoint or local directory (see :func:`reward_source`).

    ``recorded``: what the target resolved to (:func:`suite.models.fetch_checkpoint`).
    """
    with atomic_dir(out) as tmp:
        write_json(
            tmp / POINTER,
            {
                "name_or_path": hub_id,
                "revision": revision,
                "chat_template": None,
                "trust_remote_code": trust_remote_code,
                **recorded,
            },
        )


class RewardModel:
    """A loaded reward model and its tokenizer; :meth:`score` maps conversations to floats."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source: Mapping[str, Any]):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.source = dict(source)
        # Pad with the id the model's pooling looks for (its config's), else the tokenizer's.
        config_pad = getattr(model.config, "pad_token_id", None)
        self.pad_id = config_pad if config_pad is not None else tokenizer.pad_token_id
        if config_pad is None and self.pad_id is not None:
            model.config.pad_token_id = self.pad_id

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def describe(self) -> dict[str, Any]:
        """What was loaded, for the records kept with derived data (the hub commit actually used included)."""
        return {
            **self.source,
            "resolved_revision": getattr(self.model.config, "_commit_hash", None),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "class": type(self.model).__name__,
        }

    def encode(self, conversation: Conversation) -> list[int]:
        """Token ids of the full conversation, as the RewardTrainer tokenises a training example."""
        encoded = self.tokenizer.apply_chat_template(list(conversation), tokenize=True, return_dict=True)
        return list(encoded["input_ids"])

    @torch.no_grad()
    def _forward(self, batch: Sequence[Sequence[int]]) -> list[float]:
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_id if self.pad_id is not None else 0, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # right padding: see the module docstring
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device))
        values = getattr(out, "score", None)  # ArmoRM-style custom heads
        if values is None:
            logits = out.logits
            if logits.shape[-1] != 1:
                raise ValueError(
                    f"{self.source['name_or_path']}: the model returns {logits.shape[-1]} logits and no `.score`; "
                    "a reward model needs num_labels=1 or a `.score` output"
                )
            values = logits[:, 0]
        return values.float().reshape(len(batch), -1)[:, 0].cpu().tolist()

    def score(self, conversations: Sequence[Conversation], batch_size: int = 8) -> list[float]:
        """One reward per conversation (prompt messages + the assistant response), in input order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        encoded = [self.encode(c) for c in conversations]
        alone = [i for i, ids in enumerate(encoded) if self.pad_id is None or self.pad_id in ids]
        padded = sorted(set(range(len(encoded))) - set(alone), key=lambda i: -len(encoded[i]))
        scores: list[float | None] = [None] * len(encoded)
        for i in alone:
            scores[i] = self._forward([encoded[i]])[0]
        for start in range(0, len(padded), batch_size):
            rows = padded[start : start + batch_size]
            for i, value in zip(rows, self._forward([encoded[i] for i in rows]), strict=True):
                scores[i] = value
        return [float(s) for s in scores]


def load_reward_model(
    reward: str | Path,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    dtype: str = "float32",
    device: str | None = None,
) -> RewardModel:
    """Load a reward model (trained directory, pointer stage or hub id) on the GPU when there is one."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    source = reward_source(reward, revision, trust_remote_code)
    kwargs = {"revision": source["revision"], "trust_remote_code": source["trust_remote_code"]}
    tokenizer = AutoTokenizer.from_pretrained(source["name_or_path"], **kwargs)
    if tokenizer.chat_template is None:
        log.warning("%s has no chat template; using the suite's zephyr template", source["name_or_path"])
        tokenizer.chat_template = CHAT_TEMPLATE
    model = AutoModelForSequenceClassification.from_pretrained(
        source["name_or_path"], dtype=getattr(torch, dtype), **kwargs
    )
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return RewardModel(model, tokenizer, source)


def score(
    reward: str | Path,
    conversations: Sequence[Conversation],
    batch_size: int = 8,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    dtype: str = "float32",
) -> list[float]:
    """Rewards of ``conversations`` under ``reward`` (a directory, a pointer stage, or a hub id)."""
    model = load_reward_model(reward, revision=revision, trust_remote_code=trust_remote_code, dtype=dtype)
    return model.score(conversations, batch_size)


# --------------------------------------------------------------------------- training


def split_held_out(records: Sequence[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded random ``fraction`` of the pairs (at least one when the fraction is positive) kept out of training."""
    if not 0 <= fraction < 1:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    count = math.ceil(fraction * len(records)) if fraction > 0 else 0
    if count >= len(records):
        raise ValueError(f"holding out {count} of {len(records)} pairs leaves nothing to train on")
    held = set(random.Random(seed).sample(range(len(records)), count))
    train = [r for i, r in enumerate(records) if i not in held]
    return train, [r for i, r in enumerate(records) if i in held]


def _pairs(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The RewardTrainer's conversational format with an explicit prompt."""
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in records]


def pair_accuracy(model: RewardModel, records: Sequence[Mapping[str, Any]], batch_size: int = 8) -> dict[str, float]:
    """Share of pairs whose chosen response gets the higher reward, and the mean reward margin."""
    chosen = model.score([r["prompt"] + r["chosen"] for r in records], batch_size)
    rejected = model.score([r["prompt"] + r["rejected"] for r in records], batch_size)
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "pairs": len(records),
        "accuracy": sum(m > 0 for m in margins) / len(margins),
        "mean_margin": sum(margins) / len(margins),
    }


def train_reward_model(
    base_dir: Path,
    data: Path,
    training: Mapping[str, Any],
    checkpoints: Path,
    out: Path,
    held_out: float = 0.0,
) -> tuple[list[dict], dict[str, Any]]:
    """Train a reward model from a base model stage on preference data; returns (log history, held-out report).

    The report holds the trainer's own evaluation of the held-out pairs and the
    same pairs scored through :func:`load_reward_model` on the saved directory.
    """
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from suite.models import load_tokenizer
    from suite.trainer_utils import (
        CompleteCheckpoints,
        init_processes,
        last_checkpoint,
        run_directory,
        run_provenance,
        save_trained,
        trainer_fields,
    )

    init_processes(training)
    provenance = run_provenance(
        "reward model",
        ["suite.reward"],
        training,
        held_out=held_out,
        base=identity(base_dir),
        data=identity(data),
    )
    seed = int(training.get("seed", 42))
    train_records, held_records = split_held_out(read_jsonl(data), held_out, seed)
    tokenizer = load_tokenizer(base_dir)  # chat template and pad token guaranteed
    spec = resolve(base_dir)
    torch.manual_seed(seed)  # the new score head is drawn here
    model = AutoModelForSequenceClassification.from_pretrained(
        spec["name_or_path"],
        revision=spec["revision"],
        num_labels=1,
        dtype=getattr(torch, training.get("dtype", "float32")),
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    run = run_directory(checkpoints, provenance)
    fields = {"bf16": False, **trainer_fields(training, run)}  # TRL's configs default to bf16, the suite's not
    args = RewardConfig(**fields, max_length=training.get("max_length", 1024))
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(_pairs(train_records)),
        eval_dataset=Dataset.from_list(_pairs(held_records)) if held_records else None,
        processing_class=tokenizer,
        callbacks=[CompleteCheckpoints()],
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(run))
    report: dict[str, Any] = {
        "train_pairs": len(train_records),
        "train_pairs_within_max_length": len(trainer.train_dataset),  # the trainer drops longer pairs
        "held_out_pairs": len(held_records),
    }
    if held_records:
        report["held_out_pairs_within_max_length"] = len(trainer.eval_dataset)
        report["trainer"] = trainer.evaluate()
    save_trained(trainer, tokenizer, out, provenance)
    history = trainer.state.log_history
    is_main = trainer.accelerator.is_main_process
    del trainer, model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if held_records and is_main:
        batch = int(training.get("per_device_eval_batch_size", training.get("per_device_train_batch_size", 8)))
        report["scored"] = pair_accuracy(
            load_reward_model(out, dtype=training.get("dtype", "float32")), held_records, batch
        )
    return history, report
