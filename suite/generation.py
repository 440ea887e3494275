"""Response generation: batched, seeded, over the job's processes; the hf and vllm backends.

The foundation's generation, shared by the benchmarks (:mod:`evals.generate`
reads a benchmark's prompts and writes its outputs) and by on-policy sampling
(:mod:`suite.onpolicy`). Prompts are tokenised with the model's chat template
exactly as training tokenises them (``apply_chat_template`` with the generation
prompt), left-padded, and only the new tokens are decoded. ``backend`` picks
the engine: ``hf`` (transformers, CPU or GPUs) or ``vllm`` (the cluster's fast
path).

Several processes (``accelerate launch --num_processes N``, one per GPU the
job holds, or CPU processes joined by gloo) share the work: the batches one
process would generate are planned first (conversations grouped by sampling
settings, in order, cut into ``batch_size``), process ``p`` generates batches
``p, p + N, ...``, and the answers are gathered and merged in order. Every
batch is generated under its own seed (:func:`batch_seed`), so the output is
the same for any number of processes, greedy or sampled.

Multi-turn prompts are answered turn by turn (:func:`converse`), as FastChat's
``gen_model_answer`` does: turn ``t`` is generated with the prompt's earlier
user turns and the model's own answers to them in the conversation.

``python -m suite.generation REQUEST REPLY`` answers one request file in a
fresh process (:func:`generate_isolated`): vLLM does not free its GPU memory
when an engine is dropped, so each pass that needs its own engine gets a
process of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, set_seed

from suite.io import read_json, write_json
from suite.models import load_model, load_tokenizer, resolve
from suite.processes import gather_mapping, job_processes, my_share, progress

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
        for index in progress(mine, processes, desc="generate", unit="batch"):
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


def shared_dtype(decodings: Sequence[Mapping[str, Any]]) -> str | None:
    dtypes = {d.get("dtype") for d in decodings} or {None}
    if len(dtypes) > 1:
        raise ValueError(f"all prompts must share one dtype, got {sorted(map(str, dtypes))}")
    return dtypes.pop()


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


def generate_isolated(
    model_dir: Path,
    conversations: Sequence[Sequence[Mapping[str, str]]],
    decoding: Mapping[str, Any],
    batch_size: int,
    seed: int,
    backend: str = "hf",
) -> list[str]:
    """One generation pass in a child process, which hands the GPU back when it exits.

    vLLM does not free its memory when an engine is dropped, so a second
    engine in the same process (the next pass) would not fit; every pass
    therefore gets a fresh process (one model load per pass).
    """
    with tempfile.TemporaryDirectory(prefix="onpolicy-pass-") as tmp:
        request, reply = Path(tmp) / "request.json", Path(tmp) / "reply.json"
        write_json(
            request,
            {
                "model_dir": str(model_dir),
                "conversations": [list(c) for c in conversations],
                "decoding": dict(decoding),
                "batch_size": batch_size,
                "seed": seed,
                "backend": backend,
            },
        )
        subprocess.run([sys.executable, "-m", "suite.generation", str(request), str(reply)], check=True)
        return read_json(reply)


def answer_request(request_file: Path, reply_file: Path) -> None:
    """The child's side of :func:`generate_isolated`: answer the request file, write the reply file."""
    request = read_json(request_file)
    request["model_dir"] = Path(request["model_dir"])
    write_json(reply_file, generate_responses(**request))


if __name__ == "__main__":
    answer_request(Path(sys.argv[1]), Path(sys.argv[2]))
