"""Reward models: RewardTrainer training on the suite's pairs, and one scoring interface for any reward head."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pipeline.reward import main
from suite.io import read_json, read_jsonl, write_jsonl
from suite.reward import (
    RewardModel,
    load_reward_model,
    pair_accuracy,
    reward_source,
    score,
    split_held_out,
    train_reward_model,
    write_reward_pointer,
)

GOOD = [
    "The capital of France is Paris.",
    "Mix flour, water, salt and yeast, knead the dough, let it rise and bake it.",
    "Plants turn light, water and carbon dioxide into sugar and oxygen.",
    "The sea is wide and blue, it sings to me and you.",
]
BAD = "I cannot help with that request."
QUESTIONS = [
    "What is the capital of France?",
    "How do I bake bread?",
    "Explain photosynthesis.",
    "Write a short poem about the sea.",
]


def pairs(n: int) -> list[dict]:
    """Preference pairs with an easy signal: a real answer beats a refusal."""
    return [
        {
            "id": f"toy-{i:06d}",
            "prompt": [{"role": "user", "content": QUESTIONS[i % 4]}],
            "chosen": [{"role": "assistant", "content": GOOD[i % 4]}],
            "rejected": [{"role": "assistant", "content": BAD}],
            "score_chosen": None,
            "score_rejected": None,
        }
        for i in range(n)
    ]


TRAINING = {
    "learning_rate": 1.0e-2,
    "max_steps": 12,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8,
    "max_length": 512,
    "logging_steps": 4,
    "save_steps": 100,
    "warmup_ratio": 0.0,
}


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, dict, list[dict]]:
    work = tmp_path_factory.mktemp("reward")
    data = work / "pairs.jsonl"
    write_jsonl(data, pairs(40))
    history, report = train_reward_model(
        tiny_model_dir, data, TRAINING, work / "checkpoints", work / "rm", held_out=0.2
    )
    _, held = split_held_out(read_jsonl(data), 0.2, seed=42)
    return work / "rm", history, report, held


def test_reward_trainer_learns_and_scores_held_out_pairs(trained: tuple) -> None:
    out, history, report, held = trained
    assert (out / "config.json").exists() and (out / "tokenizer_config.json").exists()
    assert AutoModelForSequenceClassification.from_pretrained(out).config.num_labels == 1
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses and all(loss == loss for loss in losses)
    assert report["train_pairs"] == 32 and report["held_out_pairs"] == len(held) == 8
    assert report["held_out_pairs_within_max_length"] == 8
    # The scorer's view of the held-out pairs agrees with the trainer's own evaluation:
    # the same tokenisation and the same pooled token.
    assert report["scored"]["accuracy"] == pytest.approx(report["trainer"]["eval_accuracy"])
    assert report["scored"]["mean_margin"] == pytest.approx(report["trainer"]["eval_margin"], abs=1e-4)
    assert report["scored"]["accuracy"] >= 0.75, report


def test_score_a_saved_directory_in_batches(trained: tuple) -> None:
    out, _, report, held = trained
    conversations = [r["prompt"] + r["chosen"] for r in held] + [r["prompt"] + r["rejected"] for r in held]
    batched = score(out, conversations, batch_size=5)
    alone = [score(out, [c], batch_size=1)[0] for c in conversations[:3]]
    assert len(batched) == len(conversations) and all(isinstance(v, float) for v in batched)
    assert batched[:3] == pytest.approx(alone, abs=1e-5), "padding changed a score"
    again = pair_accuracy(load_reward_model(out), held, batch_size=3)
    assert again["accuracy"] == pytest.approx(report["scored"]["accuracy"])


def test_a_conversation_holding_the_pad_token_is_scored_alone(trained: tuple) -> None:
    out = trained[0]
    model = load_reward_model(out)
    odd = [{"role": "user", "content": "Say <pad> twice <pad>"}, {"role": "assistant", "content": "<pad> <pad>"}]
    assert model.pad_id == model.tokenizer.pad_token_id and model.pad_id in model.encode(odd)
    plain = [{"role": "user", "content": QUESTIONS[0]}, {"role": "assistant", "content": GOOD[0]}]
    together = model.score([plain, odd, plain], batch_size=3)
    assert together == pytest.approx(
        [model.score([plain])[0], model.score([odd])[0], model.score([plain])[0]], abs=1e-5
    )


def test_pointer_stage_and_score_cli(trained: tuple, tmp_path: Path) -> None:
    out = trained[0]
    stage = tmp_path / "stage"
    write_reward_pointer(stage, str(out), None, trust_remote_code=True)
    assert reward_source(stage) == {"name_or_path": str(out), "revision": None, "trust_remote_code": True}
    assert reward_source("org/some-rm", "abc", False) == {
        "name_or_path": "org/some-rm",
        "revision": "abc",
        "trust_remote_code": False,
    }
    conversations = tmp_path / "conversations.jsonl"
    records = [{"id": r["id"], "messages": r["prompt"] + r["chosen"]} for r in pairs(3)]
    write_jsonl(conversations, records)
    scores_file = tmp_path / "scores.jsonl"
    main(["score", "--reward", str(stage), "--conversations", str(conversations), "--out", str(scores_file)])
    written = read_jsonl(scores_file)
    assert [r["id"] for r in written] == [r["id"] for r in records]
    assert [r["score"] for r in written] == pytest.approx(score(out, [r["messages"] for r in records]), abs=1e-5)


class _CustomHead(torch.nn.Module):
    """A stand-in for ArmoRM-style remote code: many logits, the preference score in `.score`."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        reward = self.inner(input_ids=input_ids, attention_mask=attention_mask).logits
        return SimpleNamespace(score=2 * reward, logits=torch.zeros(len(input_ids), 19))


def test_score_output_and_logits_are_both_read(trained: tuple) -> None:
    out = trained[0]
    tokenizer = AutoTokenizer.from_pretrained(out)
    plain = AutoModelForSequenceClassification.from_pretrained(out)
    conversations = [r["prompt"] + r["chosen"] for r in pairs(4)]
    base = RewardModel(plain, tokenizer, {"name_or_path": str(out)}).score(conversations, 2)
    custom = RewardModel(_CustomHead(plain), tokenizer, {"name_or_path": "custom"}).score(conversations, 2)
    assert custom == pytest.approx([2 * v for v in base], abs=1e-5)

    plain.config.num_labels = 3
    plain.score = torch.nn.Linear(plain.config.hidden_size, 3, bias=False)
    with pytest.raises(ValueError, match="3 logits and no"):
        RewardModel(plain, tokenizer, {"name_or_path": "three"}).score(conversations, 2)


def test_train_cli_writes_history_and_report(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, pairs(12))
    main(
        [
            *("train", "--base", str(tiny_model_dir), "--data", str(data), "--held-out", "0.25"),
            *("--training", json.dumps({**TRAINING, "max_steps": 2, "save_steps": 1})),
            *("--checkpoints", str(tmp_path / "ck"), "--out", str(tmp_path / "rm")),
            *("--log-history", str(tmp_path / "history.json"), "--eval-out", str(tmp_path / "eval.json")),
        ]
    )
    report = read_json(tmp_path / "eval.json")
    assert report["held_out_pairs"] == 3 and report["scored"]["pairs"] == 3
    assert isinstance(read_json(tmp_path / "history.json"), list)
    assert (tmp_path / "ck").is_dir(), "checkpoints live outside the output, for resuming"


def test_held_out_split_is_seeded_and_never_empties_training() -> None:
    records = pairs(10)
    train, held = split_held_out(records, 0.2, seed=1)
    assert len(held) == 2 and len(train) == 8
    assert split_held_out(records, 0.2, seed=1) == (train, held)
    assert split_held_out(records, 0.0, seed=1) == (records, [])
    with pytest.raises(ValueError):
        split_held_out(records[:1], 0.5, seed=1)


def test_without_a_pad_token_every_conversation_is_scored_alone(trained: tuple) -> None:
    out = trained[0]
    conversations = [r["prompt"] + r["chosen"] for r in pairs(4)]
    expected = load_reward_model(out).score(conversations, 4)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model.config.pad_token_id = None
    tokenizer.pad_token = None
    bare = RewardModel(model, tokenizer, {"name_or_path": "no-pad"})
    assert bare.pad_id is None
    assert bare.score(conversations, 4) == pytest.approx(expected, abs=1e-5)


def test_a_rerun_with_other_settings_trains_a_new_reward_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The finished run's checkpoint is never resumed under another learning rate (it was, and published as is)."""
    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, pairs(12))
    training = {**TRAINING, "max_steps": 2, "save_steps": 1}
    train_reward_model(tiny_model_dir, data, training, tmp_path / "ck", tmp_path / "first")
    train_reward_model(tiny_model_dir, data, {**training, "learning_rate": 1e-3}, tmp_path / "ck", tmp_path / "other")
    first, other = (load_file(tmp_path / name / "model.safetensors") for name in ("first", "other"))
    assert any(not torch.equal(first[key], other[key]) for key in first)
    assert len(list((tmp_path / "ck").glob("run-*"))) == 2
