"""Batched generation with the tiny model: one response per prompt, reproducible, in a benchmark's format."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.generate import main
from suite.generation import generate_responses, make_responder, plan_batches, vllm_sampling, vllm_texts

CONVERSATIONS = [
    [{"role": "user", "content": "How do I bake bread?"}],
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a short poem about the sea."}],
]
GREEDY = {"temperature": 0.0, "max_new_tokens": 6}
SAMPLED = {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 6}


def test_one_string_per_prompt_and_greedy_is_deterministic(tiny_model_dir: Path) -> None:
    first = generate_responses(tiny_model_dir, CONVERSATIONS, GREEDY, batch_size=2, seed=0)
    second = generate_responses(tiny_model_dir, CONVERSATIONS, GREEDY, batch_size=2, seed=123)
    assert len(first) == len(CONVERSATIONS) and all(isinstance(text, str) for text in first)
    assert first == second
    assert generate_responses(tiny_model_dir, CONVERSATIONS, GREEDY, batch_size=1, seed=0) == first, "left padding"


def test_sampling_is_reproducible_for_a_seed(tiny_model_dir: Path) -> None:
    first = generate_responses(tiny_model_dir, CONVERSATIONS, SAMPLED, batch_size=2, seed=7)
    second = generate_responses(tiny_model_dir, CONVERSATIONS, SAMPLED, batch_size=2, seed=7)
    assert first == second


def test_backend_errors(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="hf, vllm"):
        generate_responses(tiny_model_dir, CONVERSATIONS, GREEDY, batch_size=1, seed=0, backend="tgi")
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(RuntimeError, match="vllm is not importable"):
            generate_responses(tiny_model_dir, CONVERSATIONS, GREEDY, batch_size=1, seed=0, backend="vllm")


def test_cli_writes_alpaca_eval_model_outputs(tiny_model_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.json"
    records = [
        {"instruction": c[0]["content"], "output": "-", "generator": "ref", "dataset": "d"} for c in CONVERSATIONS
    ]
    prompts.write_text(json.dumps(records))
    out = tmp_path / "outputs" / "model_outputs.json"
    main(
        [
            *("--model", str(tiny_model_dir), "--generator", "tiny-dpo"),
            *("--task", "alpaca_eval", str(prompts), json.dumps(GREEDY), str(out)),
            *("--batch-size", "2", "--seed", "0"),
        ]
    )
    written = json.loads(out.read_text())
    assert [r["instruction"] for r in written] == [r["instruction"] for r in records]
    assert {r["generator"] for r in written} == {"tiny-dpo"} and {r["dataset"] for r in written} == {"d"}
    assert [r["output"] for r in written] == generate_responses(tiny_model_dir, CONVERSATIONS, GREEDY, 2, 0)


# ---------------------------------------------------------------- batches and processes


def test_batches_are_planned_by_sampling_settings_in_order() -> None:
    decodings = [GREEDY, SAMPLED, GREEDY, GREEDY, SAMPLED]
    plan = plan_batches(decodings, batch_size=2)
    assert [members for _, members in plan] == [[0, 2], [3], [1, 4]]
    assert plan[0][0] == {"max_new_tokens": 6, "do_sample": False}
    assert plan[2][0] == {"max_new_tokens": 6, "do_sample": True, "temperature": 1.0, "top_p": 0.9}


def test_sampled_answers_do_not_depend_on_which_other_batches_ran(tiny_model_dir: Path) -> None:
    """Each batch is seeded by its index, so a process that generates only some batches gets the same answers."""
    both = generate_responses(tiny_model_dir, CONVERSATIONS, SAMPLED, batch_size=1, seed=7)
    respond = make_responder(tiny_model_dir, None, batch_size=1, seed=7)
    assert respond(CONVERSATIONS, [SAMPLED] * 3) == both
    assert generate_responses(tiny_model_dir, CONVERSATIONS, SAMPLED, batch_size=1, seed=8) != both


# ---------------------------------------------------------------- vLLM's requests and replies, without vLLM


def test_vllm_sampling_parameters_follow_each_conversations_decoding() -> None:
    assert vllm_sampling([GREEDY, SAMPLED], seed=3) == [
        {"temperature": 0.0, "top_p": 1.0, "max_tokens": 6, "seed": 3},
        {"temperature": 1.0, "top_p": 0.9, "max_tokens": 6, "seed": 3},
    ]


def test_vllm_outputs_are_read_in_request_order_and_checked() -> None:
    def output(*texts: str) -> SimpleNamespace:  # vLLM's RequestOutput: .outputs[k].text
        return SimpleNamespace(outputs=[SimpleNamespace(text=t) for t in texts])

    assert vllm_texts([output(" Paris. ", "Lyon"), output("\nBread\n")], expected=2) == ["Paris.", "Bread"]
    with pytest.raises(RuntimeError, match="2 outputs for 3 conversations"):
        vllm_texts([output("a"), output("b")], expected=3)
    with pytest.raises(RuntimeError, match="no completion for conversation 1"):
        vllm_texts([output("a"), output()], expected=2)
