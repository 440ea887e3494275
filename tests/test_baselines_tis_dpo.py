"""TIS-DPO: token weights from a DPO and a reverse-DPO model (hand-checked, both transforms), the weighted loss,
and the whole chain on a tiny model: DPO, reverse DPO (swapped pairs), weights artifact, TIS-DPO training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from baselines.dpo import dpo_loss, weighted_dpo_loss
from baselines.tis_dpo import average_ranks, place_weights, score_weights, tis_dpo_loss, token_weights
from baselines.tis_dpo.weights import compute_tis_weights
from pipeline.tis_weights import main as tis_weights_main
from suite.engine import PreferenceBatch, tokenization_fingerprint, tokenize_pair
from suite.io import read_jsonl, write_jsonl
from suite.methods import get_method
from suite.models import build_tiny_model, load_model, load_tokenizer, save_model, train_tokenizer
from suite.provenance import identity
from suite.train import load_artifact, run_training
from suite.trainer_utils import RUN_PROVENANCE
from tests.conftest import TINY_SIZE
from tests.toy_preferences import TRAINING as TOY_TRAINING
from tests.toy_preferences import prepare_toy_run, toy_pairs

TRAINING = {**TOY_TRAINING, "reference_batch_size": 8}


def pairs() -> list[dict]:
    return toy_pairs("tis")


pytestmark = pytest.mark.usefixtures("single_thread")


# ---------------------------------------------------------------- the transforms, by hand


def test_rank_and_clip_transforms_match_a_hand_computation():
    scores = torch.tensor([0.3, -2.0, 0.3, 1.0])
    # ranks: -2.0 -> 0, the two 0.3 share (1 + 2) / 2 = 1.5, 1.0 -> 3; spread over [0.7, 1.3] by rank / 3
    torch.testing.assert_close(average_ranks(scores), torch.tensor([1.5, 0.0, 1.5, 3.0], dtype=torch.float64))
    torch.testing.assert_close(score_weights(scores, "rank", 0.7, 1.3, 1.5), torch.tensor([1.0, 0.7, 1.0, 1.3]))
    # clip to [-1.5, 1.5], then 0.7 + 0.6 * (s + 1.5) / 3
    expected = torch.tensor([0.7 + 0.6 * 1.8 / 3, 0.7, 0.7 + 0.6 * 1.8 / 3, 0.7 + 0.6 * 2.5 / 3])
    torch.testing.assert_close(score_weights(scores, "clip", 0.7, 1.3, 1.5), expected)
    assert score_weights(torch.tensor([5.0]), "rank", 0.7, 1.3, 1.5).item() == pytest.approx(1.0)  # one token
    assert score_weights(torch.tensor([0.0]), "clip", 0.7, 1.3, 1.5).item() == pytest.approx(1.0)  # models agree
    with pytest.raises(ValueError, match="unknown transform"):
        score_weights(scores, "softmax", 0.7, 1.3, 1.5)


def test_scores_flip_sign_between_chosen_and_rejected():
    dpo = {"r": {"chosen": torch.tensor([-1.0, -2.0, -0.5]), "rejected": torch.tensor([-1.0, -3.0])}}
    rev = {"r": {"chosen": torch.tensor([-2.0, -1.0, -0.5]), "rejected": torch.tensor([-2.0, -1.0])}}
    weights = token_weights(dpo, rev, "clip", 0.7, 1.3, 1.5)
    # chosen: dpo - rev = [1, -1, 0]; rejected: rev - dpo = [-1, 2 -> clipped 1.5]
    torch.testing.assert_close(weights["r"]["chosen"], torch.tensor([1.2, 0.8, 1.0]))
    torch.testing.assert_close(weights["r"]["rejected"], torch.tensor([0.8, 1.3]))


def hand_logps(model, tokenizer, record) -> dict[str, torch.Tensor]:
    """Per-token log-probs of one record's responses, one sequence at a time, without the engine's batching."""
    ids = tokenize_pair(tokenizer, record, TRAINING["max_length"], TRAINING["max_prompt_length"])
    out = {}
    with torch.no_grad():
        for side in ("chosen", "rejected"):
            sequence = torch.tensor([ids["prompt_ids"] + ids[f"{side}_ids"]])
            logps = F.log_softmax(model(sequence).logits[0].double(), dim=-1)
            start = len(ids["prompt_ids"])
            out[side] = torch.stack([logps[t - 1, sequence[0, t]] for t in range(start, sequence.shape[1])])
    return out


def hand_rank(scores: list[float], low: float = 0.7, high: float = 1.3) -> list[float]:
    n = len(scores)
    ranks = [sum(o < s for o in scores) + (sum(o == s for o in scores) - 1) / 2 for s in scores]
    return [low + (high - low) * (r / (n - 1) if n > 1 else 0.5) for r in ranks]


@pytest.fixture(scope="module")
def toy_models(tmp_path_factory):
    """Two known (random, differently seeded) tiny models on one tokenizer, and a few records."""
    root = tmp_path_factory.mktemp("tis-toy")
    records = pairs()[:4]
    texts = [m["content"] for r in records for k in ("prompt", "chosen", "rejected") for m in r[k]]
    tokenizer = train_tokenizer(texts * 10, vocab_size=200)
    for name, seed in (("dpo", 1), ("reverse", 2)):
        save_model(build_tiny_model("llama", tokenizer, TINY_SIZE, seed=seed), tokenizer, root / name)
    write_jsonl(root / "data.jsonl", records)
    return root


@pytest.mark.parametrize("transform", ["rank", "clip"])
def test_weights_from_two_known_models_equal_a_hand_computation(toy_models: Path, transform: str):
    root = toy_models
    artifact = compute_tis_weights(
        root / "dpo", root / "reverse", root / "data.jsonl", TRAINING, {"transform": transform}
    )
    tokenizer = load_tokenizer(root / "dpo")
    dpo, rev = load_model(root / "dpo"), load_model(root / "reverse")
    assert artifact["kind"] == "tis_weights"
    assert artifact["fingerprint"] == tokenization_fingerprint(tokenizer, 64, 32)
    assert artifact["params"]["transform"] == transform
    for record in read_jsonl(root / "data.jsonl"):
        p_dpo, p_rev = hand_logps(dpo, tokenizer, record), hand_logps(rev, tokenizer, record)
        for side, sign in (("chosen", 1.0), ("rejected", -1.0)):
            scores = (sign * (p_dpo[side] - p_rev[side])).tolist()
            if transform == "rank":
                expected = hand_rank(scores)
            else:
                expected = [0.7 + 0.6 * (min(max(s, -1.5), 1.5) + 1.5) / 3.0 for s in scores]
            got = artifact["values"][record["id"]][side]
            assert got.min() >= 0.7 - 1e-6 and got.max() <= 1.3 + 1e-6
            torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32), atol=2e-5, rtol=0)


# ---------------------------------------------------------------- the loss


def toy_batch(ids: list[str]) -> PreferenceBatch:
    torch.manual_seed(0)
    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.float32)
    batch = PreferenceBatch(
        chosen_logps=torch.randn(2, 5) * mask,
        rejected_logps=torch.randn(2, 5) * mask,
        chosen_mask=mask,
        rejected_mask=mask.flip(0),
        ref_chosen_logps=torch.randn(2, 5) * mask,
        ref_rejected_logps=torch.randn(2, 5) * mask.flip(0),
    )
    batch.extras["ids"] = ids
    return batch


def artifact_for(values: dict, **params) -> dict:
    return {"kind": "tis_weights", "fingerprint": "x", "params": params, "values": values}


def test_all_ones_weights_reduce_to_dpo_and_other_weights_are_used():
    batch = toy_batch(["a", "b"])
    ones = {rid: {"chosen": torch.ones(3), "rejected": torch.ones(3)} for rid in ("a", "b")}
    torch.testing.assert_close(tis_dpo_loss(batch, 0.1, artifact_for(ones)).loss, dpo_loss(batch, 0.1).loss)

    values = {
        "a": {"chosen": torch.tensor([0.7, 1.0, 1.3]), "rejected": torch.tensor([1.3, 1.3, 0.7])},
        "b": {"chosen": torch.tensor([1.1, 0.9, 1.0]), "rejected": torch.tensor([0.8, 1.2, 1.0])},
    }
    out = tis_dpo_loss(batch, 0.1, artifact_for(values))
    # by hand: -log sigma(beta * (sum_t w_t (pi - ref)_chosen - sum_t w_t (pi - ref)_rejected)), averaged
    losses = []
    for row, rid in enumerate(("a", "b")):
        margins = []
        for side, mask in (("chosen", batch.chosen_mask), ("rejected", batch.rejected_mask)):
            pi = getattr(batch, f"{side}_logps")[row][mask[row].bool()]
            ref = getattr(batch, f"ref_{side}_logps")[row][mask[row].bool()]
            margins.append((values[rid][side] * (pi - ref)).sum())
        losses.append(-F.logsigmoid(0.1 * (margins[0] - margins[1])))
    torch.testing.assert_close(out.loss, torch.stack(losses).mean())
    assert not torch.allclose(out.loss, dpo_loss(batch, 0.1).loss)
    chosen_w = place_weights(values, ["a", "b"], batch.chosen_mask, "chosen")
    rejected_w = place_weights(values, ["a", "b"], batch.rejected_mask, "rejected")
    torch.testing.assert_close(out.loss, weighted_dpo_loss(batch, 0.1, chosen_w, rejected_w).loss)
    assert out.metrics["weights/chosen_mean"][0].item() == pytest.approx(1.0)


def test_loss_refuses_missing_mismatched_or_stale_weights():
    batch = toy_batch(["a", "b"])
    short = {rid: {"chosen": torch.ones(2), "rejected": torch.ones(3)} for rid in ("a", "b")}
    with pytest.raises(ValueError, match="another tokenisation"):
        tis_dpo_loss(batch, 0.1, artifact_for(short))
    ones = {rid: {"chosen": torch.ones(3), "rejected": torch.ones(3)} for rid in ("a", "b")}
    with pytest.raises(KeyError, match="no token weights for record 'b'"):
        tis_dpo_loss(batch, 0.1, artifact_for({"a": ones["a"]}))
    with pytest.raises(ValueError, match="other settings"):
        tis_dpo_loss(batch, 0.1, artifact_for(ones, transform="rank"), transform="clip")
    with pytest.raises(ValueError, match="needs its token weights"):
        tis_dpo_loss(batch, 0.1, None)
    assert get_method("tis_dpo").artifact == "tis_weights"


# ---------------------------------------------------------------- the chain on a tiny model


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Start model + reference log-probs, then DPO and reverse DPO (pairs swapped), as the workflow runs them."""
    root = tmp_path_factory.mktemp("tis-chain")
    records = pairs()
    prepare_toy_run(root, records, TRAINING)
    histories = {}
    for name, swap in (("dpo", False), ("dpo_reverse", True)):
        histories[name] = run_training(
            "dpo", {"beta": 0.1}, root / "start", root / "data.jsonl", root / "reference.pt", TRAINING,
            root / "checkpoints" / name, root / name, swap_pairs=swap,
        )  # fmt: skip
    return root, histories


def test_reverse_dpo_learns_the_swapped_preference(chain):
    root, histories = chain
    data = read_jsonl(root / "data.jsonl")
    tokenizer = load_tokenizer(root / "start")
    start, dpo, rev = (load_model(root / name) for name in ("start", "dpo", "dpo_reverse"))

    def margin(model):  # summed log-ratio margin chosen - rejected over the data, against the start model
        total = 0.0
        for record in data:
            mine, ref = hand_logps(model, tokenizer, record), hand_logps(start, tokenizer, record)
            total += float((mine["chosen"] - ref["chosen"]).sum() - (mine["rejected"] - ref["rejected"]).sum())
        return total / len(data)

    assert margin(dpo) > 0 > margin(rev)
    assert [h["loss"] for h in histories["dpo_reverse"] if "loss" in h][-1] < math.log(2)


def test_tis_dpo_trains_from_the_weights_artifact(chain):
    root, _ = chain
    out = root / "tis_weights.pt"
    tis_weights_main(
        ["--dpo", str(root / "dpo"), "--reverse", str(root / "dpo_reverse"), "--data", str(root / "data.jsonl"),
         "--training", '{"max_length": 64, "max_prompt_length": 32}', "--params", '{"transform": "rank"}',
         "--out", str(out)]
    )  # fmt: skip
    tokenizer = load_tokenizer(root / "start")
    artifact = load_artifact(out, "tis_weights", tokenization_fingerprint(tokenizer, 64, 32))
    weights = torch.cat([w[side] for w in artifact["values"].values() for side in ("chosen", "rejected")])
    assert weights.min() >= 0.7 and weights.max() <= 1.3 and weights.std() > 0.05
    # where the responses differ ("kind and useful" vs "rude and useless") the two models disagree most
    record = read_jsonl(root / "data.jsonl")[0]
    ids = tokenize_pair(tokenizer, record, 64, 32)
    chosen, rejected = ids["chosen_ids"], ids["rejected_ids"]
    shared = next(i for i, (a, b) in enumerate(zip(chosen, rejected, strict=False)) if a != b)
    w = artifact["values"][record["id"]]["chosen"]
    assert w[shared:shared + 3].mean() > w[:shared].mean()  # fmt: skip

    with pytest.raises(ValueError, match="needs its tis_weights artifact"):
        run_training("tis_dpo", {}, root / "start", root / "data.jsonl", root / "reference.pt", TRAINING,
                     root / "checkpoints" / "x", root / "x")  # fmt: skip
    history = run_training(
        "tis_dpo", {"beta": 0.1, "transform": "rank"}, root / "start", root / "data.jsonl", root / "reference.pt",
        TRAINING, root / "checkpoints" / "tis_dpo", root / "tis_dpo", artifact=out,
    )  # fmt: skip
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == TRAINING["max_steps"]
    # the run is identified by the artifact's file hash, never by its values (they once leaked into params)
    (run,) = (root / "checkpoints" / "tis_dpo").glob("run-*")
    provenance = json.loads((run / RUN_PROVENANCE).read_text())
    assert provenance["params"] == {**get_method("tis_dpo").defaults, "beta": 0.1, "transform": "rank"}
    assert provenance["artifact"] == identity(out)
    assert all(math.isfinite(x) for x in losses), losses
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    logged = [h for h in history if "weights/chosen_mean" in h]
    assert logged and logged[-1]["rewards/margins"] > logged[0]["rewards/margins"]
    assert (root / "tis_dpo" / "config.json").exists()
