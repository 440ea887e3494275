"""Batched response generation for any benchmark's prompts.

The benchmark module decides how prompts are read and outputs written (see
:mod:`evals`); this module only turns conversations into responses. Prompts
are tokenised with the model's chat template exactly as training tokenises
them (``apply_chat_template`` with the generation prompt), left-padded, and
only the new tokens are decoded. ``backend`` picks the engine: ``hf``
(transformers, CPU or one GPU) or ``vllm`` (the cluster's fast path).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, set_seed

from evals import benchmark_names, get_benchmark
from suite.models import load_model, load_tokenizer, resolve

log = logging.getLogger(__name__)

Conversation = Sequence[Mapping[str, str]]


def _sampling(decoding: Mapping[str, Any]) -> dict[str, Any]:
    """transformers generate() kwargs: greedy when temperature is 0, else sampling."""
    temperature = float(decoding.get("temperature", 0.0))
    kwargs: dict[str, Any] = {"max_new_tokens": int(decoding["max_new_tokens"]), "do_sample": temperature > 0}
    if temperature > 0:
        kwargs.update(temperature=temperature, top_p=float(decoding.get("top_p", 1.0)))
    return kwargs


def _encode(tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Conversation]) -> dict[str, torch.Tensor]:
    """Left-padded ids of the templated prompts (no special tokens beyond the template's, as in training)."""
    ids = [
        list(
            tokenizer.apply_chat_template(list(c), add_generation_prompt=True, tokenize=True, return_dict=True)[
                "input_ids"
            ]
        )
        for c in conversations
    ]
    tokenizer.padding_side = "left"
    return tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")


def _generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Conversation],
    sampling: Mapping[str, Any],
) -> list[str]:
    batch = {k: v.to(model.device) for k, v in _encode(tokenizer, conversations).items()}
    with torch.no_grad():
        out = model.generate(**batch, **sampling, pad_token_id=tokenizer.pad_token_id)
    new_tokens = out[:, batch["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def _generate_hf(
    model_dir: Path,
    conversations: Sequence[Conversation],
    decoding: Mapping[str, Any],
    batch_size: int,
    seed: int,
) -> list[str]:
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, dtype=decoding.get("dtype", "float32"))
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    sampling = _sampling(decoding)
    set_seed(seed)
    responses: list[str] = []
    for start in tqdm(range(0, len(conversations), batch_size), desc="generate", unit="batch"):
        responses += _generate_batch(model, tokenizer, conversations[start : start + batch_size], sampling)
    return responses


def _generate_vllm(
    model_dir: Path,
    conversations: Sequence[Conversation],
    decoding: Mapping[str, Any],
    batch_size: int,
    seed: int,
) -> list[str]:
    """vLLM on the cluster; it batches on its own, so ``batch_size`` is unused."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as exc:
        raise RuntimeError(
            "generation backend 'vllm' was requested but vllm is not importable here; "
            "install it in the cluster environment or use backend 'hf'"
        ) from exc
    spec = resolve(model_dir)
    llm = LLM(model=spec["name_or_path"], revision=spec["revision"], seed=seed, dtype=decoding.get("dtype", "auto"))
    params = SamplingParams(
        temperature=float(decoding.get("temperature", 0.0)),
        top_p=float(decoding.get("top_p", 1.0)),
        max_tokens=int(decoding["max_new_tokens"]),
        seed=seed,
    )
    template = load_tokenizer(model_dir).chat_template
    outputs = llm.chat(
        [list(c) for c in conversations],
        sampling_params=params,
        chat_template=template,
        add_generation_prompt=True,
    )
    return [o.outputs[0].text.strip() for o in outputs]


BACKENDS: dict[str, Callable[..., list[str]]] = {"hf": _generate_hf, "vllm": _generate_vllm}


def generate_responses(
    model_dir: str | Path,
    conversations: Sequence[Conversation],
    decoding: Mapping[str, Any],
    batch_size: int,
    seed: int,
    backend: str = "hf",
) -> list[str]:
    """One response per conversation; deterministic for temperature 0, and for a seed otherwise.

    ``decoding`` holds ``max_new_tokens`` and optionally ``temperature``
    (default 0 = greedy), ``top_p`` and ``dtype``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown generation backend {backend!r}; valid: {', '.join(sorted(BACKENDS))}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return BACKENDS[backend](Path(model_dir), conversations, decoding, batch_size, seed)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.generate", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="model stage directory")
    parser.add_argument("--benchmark", required=True, choices=benchmark_names())
    parser.add_argument("--prompts", type=Path, required=True, help="the benchmark's prompt file")
    parser.add_argument("--decoding", required=True, help="JSON object: max_new_tokens, temperature, top_p, dtype")
    parser.add_argument("--generator", required=True, help="name recorded with every output")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="hf")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    benchmark = get_benchmark(args.benchmark)
    conversations = benchmark.read_prompts(args.prompts)
    responses = generate_responses(
        args.model, conversations, json.loads(args.decoding), args.batch_size, args.seed, args.backend
    )
    benchmark.write_outputs(args.prompts, responses, args.generator, args.out)
    log.info("wrote %d %s outputs to %s", len(responses), args.benchmark, args.out)


if __name__ == "__main__":
    main()
