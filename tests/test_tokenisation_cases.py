"""The silent tokenisation cases on a real-format chat template (ChatML, written here), counted and logged:
a response whose leading whitespace merges with the template's last newline, an over-long prompt that keeps
its end, and responses cut to max_length."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from suite.engine import PreferenceDataset, tokenisation_report, tokenize_pair
from suite.io import write_jsonl
from suite.models import build_tiny_model, save_model, train_tokenizer
from suite.train import run_training
from tests.conftest import TINY_SIZE

# ChatML as Qwen and SmolLM2-Instruct ship it: each turn "<|im_start|>{role}\n{content}<|im_end|>\n".
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SYSTEM = {"role": "system", "content": "You are a careful cook who answers briefly."}
QUESTION = {"role": "user", "content": "How do I boil an egg?"}


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE that has learnt newline+space tokens, as real tokenizers have, with a ChatML template."""
    corpus = [
        "system\nYou are a careful cook who answers briefly.\nuser\nHow do I boil an egg?\n"
        "assistant\n  Boil it for eight minutes.\n  Then cool it in cold water."
    ] * 50
    tok = train_tokenizer(corpus, vocab_size=300)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    return tok


def pair(chosen: str, rejected: str = "Boil it.", prompt: list | None = None) -> dict:
    return {
        "id": "x",
        "prompt": prompt or [SYSTEM, QUESTION],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def test_a_response_that_merges_with_the_templates_newline_is_counted(tokenizer) -> None:
    record = pair("  Boil it for eight minutes.")
    prompt_text = tokenizer.apply_chat_template(record["prompt"], add_generation_prompt=True, tokenize=False)
    full_text = tokenizer.apply_chat_template(record["prompt"] + record["chosen"], tokenize=False)
    prompt_alone = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    assert full[: len(prompt_alone)] != prompt_alone, "the fixture must show the merge"
    cases: Counter[str] = Counter()
    ids = tokenize_pair(tokenizer, record, max_length=256, max_prompt_length=128, cases=cases)
    assert cases == Counter({"response_merged_with_prompt": 1})
    assert ids["prompt_ids"] == prompt_alone[:-1]  # the template's last newline went into the merged token
    assert tokenizer.decode(ids["prompt_ids"] + ids["chosen_ids"]) == full_text  # nothing is lost
    assert tokenizer.decode(ids["chosen_ids"]).startswith("\n  Boil")
    plain: Counter[str] = Counter()
    tokenize_pair(tokenizer, pair("Boil it for eight minutes."), 256, 128, plain)
    assert sum(plain.values()) == 0


def test_an_over_long_prompt_keeps_its_end_and_is_counted(tokenizer) -> None:
    record = pair("Boil it.")
    prompt_text = tokenizer.apply_chat_template(record["prompt"], add_generation_prompt=True, tokenize=False)
    n_prompt = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    cases: Counter[str] = Counter()
    ids = tokenize_pair(tokenizer, record, max_length=256, max_prompt_length=n_prompt - 5, cases=cases)
    assert cases == Counter({"prompt_truncated": 1})
    assert len(ids["prompt_ids"]) == n_prompt - 5
    kept = tokenizer.decode(ids["prompt_ids"])
    assert prompt_text.endswith(kept) and "<|im_start|>system" not in kept  # the system header is what was cut


def test_responses_cut_to_max_length_are_counted(tokenizer) -> None:
    record = pair("Boil it for eight minutes. Then cool it in cold water.", "Boil it.")
    cases: Counter[str] = Counter()
    ids = tokenize_pair(tokenizer, record, max_length=10_000, max_prompt_length=10_000, cases=cases)
    budget = len(ids["prompt_ids"]) + len(ids["rejected_ids"]) + 1  # room for all of rejected, not all of chosen
    assert len(ids["chosen_ids"]) > len(ids["rejected_ids"]) + 1
    cases.clear()
    cut = tokenize_pair(tokenizer, record, max_length=budget, max_prompt_length=10_000, cases=cases)
    assert cases == Counter({"chosen_truncated": 1})
    assert cut["chosen_ids"] == ids["chosen_ids"][: budget - len(ids["prompt_ids"])]


def test_the_dataset_counts_and_the_training_log_reports_every_case(
    tokenizer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [pair("  Boil it for eight minutes."), pair("Boil it."), pair("  Then cool it.", "  Boil it.")]
    records = [{**r, "id": f"r{i}"} for i, r in enumerate(records)]
    long_prompt = [SYSTEM, {"role": "user", "content": "How do I boil an egg? " * 20}]
    records.append({**pair("Boil it.", prompt=long_prompt), "id": "long"})
    ordinary = tokenizer(tokenizer.apply_chat_template([SYSTEM, QUESTION], add_generation_prompt=True, tokenize=False))
    ordinary = ordinary["input_ids"]
    limits = {"max_prompt_length": len(ordinary) + 2, "max_length": len(ordinary) + 30}
    dataset = PreferenceDataset(records, tokenizer, **limits)
    assert dataset.tokenisation["response_merged_with_prompt"] == 2
    assert dataset.tokenisation["prompt_truncated"] == 1
    report = tokenisation_report(dataset.tokenisation, len(dataset))
    assert report.startswith("tokenisation of 4 pairs: response start merged with the prompt's last token")
    model = build_tiny_model("llama", tokenizer, TINY_SIZE, seed=0)
    save_model(model, tokenizer, tmp_path / "start")
    write_jsonl(tmp_path / "data.jsonl", records)
    training = {"learning_rate": 1e-3, "max_steps": 1, "per_device_train_batch_size": 4, "logging_steps": 1}
    training.update(save_steps=1000, seed=0, **limits)
    run_training(
        "simpo", {}, tmp_path / "start", tmp_path / "data.jsonl", None, training, tmp_path / "ck", tmp_path / "out"
    )
    assert report in capsys.readouterr().out.splitlines()
