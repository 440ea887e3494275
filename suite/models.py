"""Model stage: tiny local stand-ins for CPU runs, and loading of hub or local checkpoints.

Every model stage of the workflow produces a directory. It holds either the
weights and tokenizer themselves, or a ``pointer.json`` naming a hub id (and
revision) or another directory, so that the cluster never copies an 8B
checkpoint just to give the DAG a file to depend on. A pointer records what it
points to exactly: for a hub id the commit the download resolved to
(``resolved_revision``; loading uses it, so an unpinned ``main`` that moves
later cannot change the model), for a local checkpoint directory its content
identity (``content``, see :func:`suite.provenance.identity`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from suite.io import atomic_dir, read_jsonl, write_json
from suite.provenance import POINTER, identity, write_stamp

SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]

# Zephyr-style template (the one alignment-handbook and SimPO use for Base models).
# Rendering a prompt with add_generation_prompt=True is a prefix of rendering
# prompt + answer, which the engine relies on to find where a response starts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

TINY_ARCHITECTURES = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
}


def corpus_texts(paths: Iterable[Path]) -> Iterable[str]:
    """Every string found in the shipped JSONL/JSON data, the tokenizer's training text."""
    for path in paths:
        records = json.loads(path.read_text()) if path.suffix == ".json" else read_jsonl(path)
        for record in records:
            yield from _strings(record)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the project's own text, with a chat template (no hub tokenizer needed)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=2048,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(arch: str, tokenizer: PreTrainedTokenizerBase, size: dict[str, int], seed: int) -> PreTrainedModel:
    """A randomly initialised Llama- or Mistral-architecture model, reproducible for a seed.

    Each architecture draws from its own stream (seed + its index), so that
    the two tiny families differ even at equal sizes, as the real ones do.
    """
    if arch not in TINY_ARCHITECTURES:
        raise ValueError(f"unknown tiny architecture {arch!r}; valid: {sorted(TINY_ARCHITECTURES)}")
    config_cls, model_cls = TINY_ARCHITECTURES[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=size["hidden_size"],
        intermediate_size=size["intermediate_size"],
        num_hidden_layers=size["num_hidden_layers"],
        num_attention_heads=size["num_attention_heads"],
        num_key_value_heads=size["num_key_value_heads"],
        max_position_embeddings=size["max_position_embeddings"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed + sorted(TINY_ARCHITECTURES).index(arch))
    return model_cls(config)


def write_pointer(
    out: Path, name_or_path: str, revision: str | None, chat_template: str | None, **recorded: Any
) -> None:
    """Make ``out`` a model stage that refers to a hub id or another directory (``recorded``: what it resolved to)."""
    with atomic_dir(out) as tmp:
        write_json(
            tmp / POINTER,
            {"name_or_path": name_or_path, "revision": revision, "chat_template": chat_template, **recorded},
        )


def fetch_checkpoint(name_or_path: str, revision: str | None, download: bool) -> dict[str, Any]:
    """What a pointer records of its target: a local directory's content, or the hub commit the download got.

    A local checkpoint directory is never sent to the hub (its path is not a repo
    id). A hub download returns its snapshot directory, named by the commit.
    """
    if Path(name_or_path).is_dir():
        return {"content": identity(name_or_path)}
    if not download:
        return {}
    from huggingface_hub import snapshot_download

    return {"resolved_revision": Path(snapshot_download(name_or_path, revision=revision)).name}


def resolve(model_dir: str | Path) -> dict[str, Any]:
    """Follow pointers until a hub id or a directory with weights; returns loading arguments.

    A hub pointer's recorded commit (``resolved_revision``) is the revision loaded.
    """
    spec: dict[str, Any] = {"name_or_path": str(model_dir), "revision": None, "chat_template": None}
    seen = set()
    while (Path(spec["name_or_path"]) / POINTER).exists():
        if spec["name_or_path"] in seen:
            raise ValueError(f"pointer cycle at {spec['name_or_path']}")
        seen.add(spec["name_or_path"])
        target = json.loads((Path(spec["name_or_path"]) / POINTER).read_text())
        spec = {
            **target,
            "revision": target.get("resolved_revision") or target.get("revision"),
            "chat_template": target.get("chat_template") or spec["chat_template"],
        }
    return spec


def load_tokenizer(model_dir: str | Path) -> PreTrainedTokenizerBase:
    """Tokenizer of a model stage, with a chat template and a pad token guaranteed."""
    spec = resolve(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(spec["name_or_path"], revision=spec["revision"])
    if spec["chat_template"] == "zephyr" or tokenizer.chat_template is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_dir: str | Path, dtype: str = "float32") -> PreTrainedModel:
    """Causal LM of a model stage (a hub id on the cluster, a local directory here)."""
    spec = resolve(model_dir)
    return AutoModelForCausalLM.from_pretrained(
        spec["name_or_path"], revision=spec["revision"], dtype=getattr(torch, dtype)
    )


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> None:
    """Save weights and tokenizer so that the stage directory appears only when complete."""
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_stamp(tmp)
