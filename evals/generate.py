"""Batched response generation for any benchmark's prompts.

The benchmark module decides how prompts are read and outputs written (see
:mod:`evals`); this module only turns conversations into responses. Prompts
are tokenised with the model's chat template exactly as training tokenises
them (``apply_chat_template`` with the generation prompt), left-padded, and
only the new tokens are decoded. ``backend`` picks the engine: ``hf``
(transformers, CPU or GPUs) or ``vllm`` (the cluster's fast path).

Several processes (``accelerate launch --num_processes N``, one per GPU the
job holds, or CPU processes joined by gloo) share the work: the batches one
process would generate are planned first (conversations grouped by sampling
settings, in order, cut into ``batch_size``), process ``p`` generates batches
``p, p + N, ...``, and the answers are gathered and merged in order. Every
batch is generated under its own seed (:func:`batch_seed`), so the output is
the same for any number of processes, greedy or sampled, and only the main
process writes it.

Multi-turn benchmarks (MT-Bench) define two optional hooks: ``read_turns(path)``
(each prompt's user turns) and ``prompt_decodings(path, decoding)`` (each
prompt's decoding, e.g. FastChat's category temperatures). Their prompts are
answered turn by turn as FastChat's ``gen_model_answer`` does: turn ``t`` is
generated with the prompt's earlier user turns and the model's own answers to
them in the conversation, and ``write_outputs`` receives one list of answers
per prompt.
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
from suite.processes import gather_mapping, job_processes, my_share

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


# Answers a batch of conversations, each with its own decoding settings.
Responder = Callable[[Sequence[Conversation], Sequence[Mapping[str, Any]]], list[str]]


def plan_batches(decodings: Sequence[Mapping[str, Any]], batch_size: int) -> list[tuple[dict[str, Any], list[int]]]:
    """The batches of one call: (sampling kwargs, conversation indices), grouped by sampling settings, in order."""
    groups: dict[str, list[int]] = {}
    for i, decoding in enumerate(decodings):
        groups.setdefault(json.dumps(_sampling(decoding), sort_keys=True), []).append(i)
    return [
        (json.loads(key), members[start : start + batch_size])
        for key, members in groups.items()
        for start in range(0, len(members), batch_size)
    ]


def batch_seed(seed: int, index: int) -> int:
    """The seed batch ``index`` of a call is sampled under, whichever process generates it."""
    return seed + 7919 * index


def _hf_responder(model_dir: Path, dtype: str, batch_size: int, seed: int) -> Responder:
    """Load the model once per process; each process answers its share of the batches (module docstring).

    Every batch is seeded by :func:`batch_seed`, so each benchmark's samples depend on the seed alone, not on
    which benchmarks the same job answered before, nor on how many processes share the job.
    """
    processes = job_processes()
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, dtype=dtype).to(processes.device)
    model.eval()

    def respond(conversations: Sequence[Conversation], decodings: Sequence[Mapping[str, Any]]) -> list[str]:
        batches = plan_batches(decodings, batch_size)
        local: dict[int, str] = {}
        mine = my_share(len(batches), processes)
        for index in tqdm(mine, desc="generate", unit="batch", disable=not processes.is_local_main_process):
            sampling, members = batches[index]
            set_seed(batch_seed(seed, index))
            texts = _generate_batch(model, tokenizer, [conversations[i] for i in members], sampling)
            local.update(zip(members, texts, strict=True))
        answers = gather_mapping(local, processes)
        return [answers[i] for i in range(len(conversations))]

    return respond


def _vllm_responder(model_dir: Path, dtype: str, batch_size: int, seed: int) -> Responder:
    """vLLM with one sampling-parameter set per conversation (it batches on its own)."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as exc:
        raise RuntimeError(
            "generation backend 'vllm' was requested but vllm is not importable here; "
            "install it in the cluster environment or use backend 'hf'"
        ) from exc
    spec = resolve(model_dir)
    llm = LLM(model=spec["name_or_path"], revision=spec["revision"], seed=seed, dtype=dtype)
    template = load_tokenizer(model_dir).chat_template

    def respond(conversations: Sequence[Conversation], decodings: Sequence[Mapping[str, Any]]) -> list[str]:
        params = [SamplingParams(**kwargs) for kwargs in vllm_sampling(decodings, seed)]
        outputs = llm.chat(
            [list(c) for c in conversations],
            sampling_params=params,
            chat_template=template,
            add_generation_prompt=True,
        )
        return vllm_texts(outputs, len(conversations))

    return respond


def vllm_sampling(decodings: Sequence[Mapping[str, Any]], seed: int) -> list[dict[str, Any]]:
    """vLLM ``SamplingParams`` keyword arguments per conversation (temperature 0 is greedy in vLLM too)."""
    return [
        {
            "temperature": float(d.get("temperature", 0.0)),
            "top_p": float(d.get("top_p", 1.0)),
            "max_tokens": int(d["max_new_tokens"]),
            "seed": seed,
        }
        for d in decodings
    ]


def vllm_texts(outputs: Sequence[Any], expected: int) -> list[str]:
    """The first completion of each of vLLM's ``RequestOutput``s, in request order, stripped as the hf backend's."""
    if len(outputs) != expected:
        raise RuntimeError(f"vllm returned {len(outputs)} outputs for {expected} conversations")
    texts = []
    for number, output in enumerate(outputs):
        if not output.outputs:
            raise RuntimeError(f"vllm returned no completion for conversation {number}")
        texts.append(output.outputs[0].text.strip())
    return texts


RESPONDERS: dict[str, Callable[[Path, str, int, int], Responder]] = {"hf": _hf_responder, "vllm": _vllm_responder}


def converse(
    respond: Responder, turns: Sequence[Sequence[str]], decodings: Sequence[Mapping[str, Any]]
) -> list[list[str]]:
    """Answer every prompt's user turns in order, each turn seeing the earlier turns and answers.

    All prompts' turn ``t`` go to ``respond`` together; a prompt with fewer
    turns simply drops out of later rounds.
    """
    if len(turns) != len(decodings):
        raise ValueError(f"{len(decodings)} decodings for {len(turns)} prompts")
    conversations: list[list[dict[str, str]]] = [[] for _ in turns]
    answers: list[list[str]] = [[] for _ in turns]
    for t in range(max((len(user_turns) for user_turns in turns), default=0)):
        active = [i for i, user_turns in enumerate(turns) if t < len(user_turns)]
        for i in active:
            conversations[i].append({"role": "user", "content": turns[i][t]})
        texts = respond([list(conversations[i]) for i in active], [decodings[i] for i in active])
        if len(texts) != len(active):
            raise RuntimeError(f"the generator returned {len(texts)} answers for {len(active)} conversations")
        for i, text in zip(active, texts, strict=True):
            conversations[i].append({"role": "assistant", "content": text})
            answers[i].append(text)
    return answers


def make_responder(
    model_dir: str | Path, dtype: str | None, batch_size: int, seed: int, backend: str = "hf"
) -> Responder:
    """Load the model once behind a function that answers batches of conversations."""
    if backend not in RESPONDERS:
        raise ValueError(f"unknown generation backend {backend!r}; valid: {', '.join(sorted(RESPONDERS))}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dtype = dtype or ("auto" if backend == "vllm" else "float32")
    return RESPONDERS[backend](Path(model_dir), dtype, batch_size, seed)


def _shared_dtype(decodings: Sequence[Mapping[str, Any]]) -> str | None:
    dtypes = {d.get("dtype") for d in decodings} or {None}
    if len(dtypes) > 1:
        raise ValueError(f"all prompts must share one dtype, got {sorted(map(str, dtypes))}")
    return dtypes.pop()


def generate_multi_turn(
    model_dir: str | Path,
    turns: Sequence[Sequence[str]],
    decodings: Sequence[Mapping[str, Any]],
    batch_size: int,
    seed: int,
    backend: str = "hf",
) -> list[list[str]]:
    """One answer per user turn of every prompt; ``decodings`` holds each prompt's settings (as above)."""
    respond = make_responder(model_dir, _shared_dtype(decodings), batch_size, seed, backend)
    return converse(respond, turns, decodings)


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
    respond = make_responder(model_dir, decoding.get("dtype"), batch_size, seed, backend)
    return respond(conversations, [decoding] * len(conversations))


def answer_benchmark(respond: Responder, benchmark_name: str, prompts: Path, decoding: Mapping[str, Any]) -> list:
    """A benchmark's responses in the shape its ``write_outputs`` takes (a list of turns for multi-turn ones)."""
    benchmark = get_benchmark(benchmark_name)
    if hasattr(benchmark, "read_turns"):  # multi-turn (see the module docstring)
        turns = benchmark.read_turns(prompts)
        decodings = (
            benchmark.prompt_decodings(prompts, decoding)
            if hasattr(benchmark, "prompt_decodings")
            else [decoding] * len(turns)
        )
        return converse(respond, turns, decodings)
    conversations = benchmark.read_prompts(prompts)
    return respond(conversations, [decoding] * len(conversations))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.generate", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="model stage directory")
    parser.add_argument(
        "--task",
        nargs=4,
        action="append",
        required=True,
        metavar=("BENCHMARK", "PROMPTS", "DECODING", "OUT"),
        help="a benchmark, its prompt file, its decoding (JSON) and the output file; repeat for more "
        "benchmarks: the model is loaded once",
    )
    parser.add_argument("--generator", required=True, help="name recorded with every output")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=sorted(RESPONDERS), default="hf")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    tasks = [(name, Path(prompts), json.loads(decoding), Path(out)) for name, prompts, decoding, out in args.task]
    for name, *_ in tasks:
        if name not in benchmark_names():
            parser.error(f"unknown benchmark {name!r}; valid: {', '.join(benchmark_names())}")
    respond = make_responder(args.model, _shared_dtype([t[2] for t in tasks]), args.batch_size, args.seed, args.backend)
    main_process = job_processes().is_main_process
    for name, prompts, decoding, out in tasks:
        responses = answer_benchmark(respond, name, prompts, decoding)
        if main_process:
            get_benchmark(name).write_outputs(prompts, responses, args.generator, out)
            log.info("wrote %d %s outputs to %s", len(responses), name, out)


if __name__ == "__main__":
    main()
