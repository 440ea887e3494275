"""The squeezing diagnostic: a held-out slice by id hash, the top-token probability, its log during training."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

import suite.train
from suite.diagnostics import held_out_split, top_token_probability
from suite.engine import IGNORE, PreferenceDataset
from suite.history_keys import FINAL, KEY
from suite.train import run_training
from tests.toy_preferences import TRAINING, prepare_toy_run, toy_pairs


def test_the_held_out_slice_depends_on_ids_not_order() -> None:
    records = toy_pairs("r")
    train, held = held_out_split(records, 4)
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    assert {r["id"] for r in held_out_split(shuffled, 4)[1]} == {r["id"] for r in held}
    assert len(held) == 4 and len(train) == len(records) - 4
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    assert held_out_split(records, 0) == (records, [])
    with pytest.raises(ValueError, match="only 16 pairs"):
        held_out_split(records, 16)


def test_top_token_probability_by_hand() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE, IGNORE, 3, 1, 2], [IGNORE, 4, 4, IGNORE, IGNORE]])
    expected = []
    for row in range(2):
        values = []
        for t in range(4):  # position t predicts token t + 1
            if labels[row, t + 1] != IGNORE:
                values.append(max(torch.softmax(logits[row, t], -1).tolist()))
        expected.append(sum(values) / len(values))
    assert top_token_probability(logits, labels).tolist() == pytest.approx(expected, rel=1e-6)


def test_training_logs_the_diagnostic_and_never_trains_on_the_held_out_pairs(
    tmp_path: Path, single_thread, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = toy_pairs("r")
    training = {**TRAINING, "max_steps": 6, "logging_steps": 2, "squeezing_held_out": 4}
    prepare_toy_run(tmp_path, records, training)
    seen: list[str] = []

    def recording(records, *args, **kwargs):
        seen.extend(r["id"] for r in records)
        return PreferenceDataset(records, *args, **kwargs)

    monkeypatch.setattr(suite.train, "PreferenceDataset", recording)
    history = run_training(
        "dpo", {"beta": 0.1}, tmp_path / "start", tmp_path / "data.jsonl", tmp_path / "reference.pt",
        training, tmp_path / "ckpt", tmp_path / "out",
    )  # fmt: skip
    held = {r["id"] for r in held_out_split(records, 4)[1]}
    assert seen and not held & set(seen), "a held-out pair reached the training set"

    start = history[0]
    assert start["step"] == 0 and 0 < start[KEY] <= 1
    logged = [h for h in history if "loss" in h]
    assert [h["step"] for h in logged] == [2, 4, 6]
    assert all(0 < h[KEY] <= 1 and h[f"{KEY}_chosen"] and h[f"{KEY}_rejected"] for h in logged)
    assert logged[-1][KEY] != start[KEY], "training moved the policy"
    final = history[-1]
    assert set(final[FINAL]) == held and final["step"] == 6
    assert sum(final[FINAL].values()) / 4 == pytest.approx(final[KEY])
