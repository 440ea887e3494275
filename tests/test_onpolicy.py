"""On-policy data at CPU scale: sampling from a tiny policy, scoring with a tiny reward model, best vs worst.

Also: a killed sampling job resumes from its finished shards, a changed
setting does not reuse them, and the DAG builds the data for the Instruct
variant at both scales.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pipeline.config import ConfigError, validate_config
from pipeline.onpolicy import main
from suite.generation import generate_isolated, generate_responses
from suite.io import read_json, read_jsonl, write_jsonl
from suite.onpolicy import (
    TIE_RULE,
    binarize,
    load_prompts,
    sample,
    sample_seed,
    score_samples,
)
from suite.reward import load_reward_model
from tests.workflow_helpers import REPO, clean_checkout, job_counts, snakemake

QUESTIONS = [
    "How do I bake bread?",
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain photosynthesis.",
    "What should I cook tonight?",
]
SAMPLED = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8}
GREEDY = {"temperature": 0.0, "max_new_tokens": 8}


def prompts(n: int = 5) -> list[dict]:
    return [{"id": f"uf-{i:06d}", "prompt": [{"role": "user", "content": QUESTIONS[i % 5]}]} for i in range(n)]


@pytest.fixture(scope="module")
def reward_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny reward model: the tiny Llama with a one-output head (RewardTrainer training: tests/test_reward.py)."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model.config.pad_token_id = tokenizer.pad_token_id
    out = tmp_path_factory.mktemp("reward") / "tiny-rm"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class Counting:
    """generate_responses that counts its generations and can fail on a given call, as a killed job would."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls = 0
        self.generations = 0
        self.fail_on_call = fail_on_call

    def __call__(self, model_dir, conversations, decoding, batch_size, seed, backend="hf"):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt("killed")
        self.generations += len(conversations)
        return generate_responses(model_dir, conversations, decoding, batch_size, seed, backend)


def run_sample(model_dir: Path, work: Path, items: list[dict], decoding=SAMPLED, generate=None, **overrides):
    settings = {"n_samples": 3, "decoding": decoding, "shard_size": 2, "seed": 7, "batch_size": 4, "backend": "hf"}
    return sample(model_dir, items, work_dir=work, generate=generate, **{**settings, **overrides})


# --------------------------------------------------------------------------- binarize


def test_binarize_keeps_best_and_worst_and_counts_ties() -> None:
    samples = [
        {"id": "a", "prompt": [{"role": "user", "content": "A?"}], "responses": ["x", "y", "z"]},
        {"id": "b", "prompt": [{"role": "user", "content": "B?"}], "responses": ["same", "same ", "same"]},
        {"id": "c", "prompt": [{"role": "user", "content": "C?"}], "responses": ["p", "q", "r"]},
        {"id": "d", "prompt": [{"role": "user", "content": "D?"}], "responses": ["", "only", "  "]},
        {"id": "e", "prompt": [{"role": "user", "content": "E?"}], "responses": ["m", "n", "m"]},
    ]
    scores = [
        {"id": "a", "scores": [1.0, 3.0, 2.0]},
        {"id": "b", "scores": [0.5, 0.5, 0.5]},
        {"id": "c", "scores": [2.0, 2.0, 2.0]},
        {"id": "d", "scores": [None, 1.0, None]},
        {"id": "e", "scores": [-1.0, 4.0, -1.0]},
    ]
    pairs, counts = binarize(samples, scores)
    assert [p["id"] for p in pairs] == ["a", "e"]
    a, e = pairs
    assert a["chosen"] == [{"role": "assistant", "content": "y"}] and a["rejected"][0]["content"] == "x"
    assert (a["score_chosen"], a["score_rejected"]) == (3.0, 1.0)
    assert (e["chosen"][0]["content"], e["rejected"][0]["content"]) == ("n", "m")
    assert a["prompt"] == samples[0]["prompt"] and set(a) == {
        "id",
        "prompt",
        "chosen",
        "rejected",
        "score_chosen",
        "score_rejected",
    }
    assert counts == {
        "prompts": 5,
        "pairs_kept": 2,
        "ties_dropped": 3,
        "ties_equal_reward": 1,  # c
        "ties_identical_responses": 2,  # b (one distinct response), d (one non-empty response)
        "empty_responses": 2,
        "duplicate_responses": 3,
    }
    with pytest.raises(ValueError, match="no scores"):
        binarize(samples, scores[:-1])


# --------------------------------------------------------------------------- sample -> score -> binarize


def test_tiny_policy_and_tiny_reward_model_make_pairs(tiny_model_dir: Path, reward_dir: Path, tmp_path: Path) -> None:
    records, meta = run_sample(tiny_model_dir, tmp_path, prompts())
    assert [r["id"] for r in records] == [p["id"] for p in prompts()]
    assert all(len(r["responses"]) == 3 and len(set(r["seeds"])) == 3 for r in records)
    assert meta["shards"] == 3 and meta["generations_this_run"] == 15

    model = load_reward_model(reward_dir)
    scores, _ = score_samples(
        records,
        reward_identity={"dir": "tiny"},
        shard_size=2,
        work_dir=tmp_path,
        scorer=lambda: lambda conversations: model.score(conversations, 4),
    )
    pairs, counts = binarize(records, scores)
    assert counts["pairs_kept"] == len(pairs) > 0
    assert counts["pairs_kept"] + counts["ties_dropped"] == counts["prompts"] == 5
    for pair in pairs:
        assert pair["score_chosen"] > pair["score_rejected"]
        assert pair["chosen"][0]["content"].strip() and pair["rejected"][0]["content"].strip()
        assert pair["chosen"] != pair["rejected"]
        got = model.score([pair["prompt"] + pair["chosen"], pair["prompt"] + pair["rejected"]])
        assert got == pytest.approx([pair["score_chosen"], pair["score_rejected"]], abs=1e-5)


def test_greedy_samples_are_identical_and_every_prompt_ties(
    tiny_model_dir: Path, reward_dir: Path, tmp_path: Path
) -> None:
    records, _ = run_sample(tiny_model_dir, tmp_path, prompts(), decoding=GREEDY)
    model = load_reward_model(reward_dir)
    scores, _ = score_samples(records, reward_identity={}, shard_size=2, work_dir=tmp_path, scorer=lambda: model.score)
    pairs, counts = binarize(records, scores)
    assert pairs == [] and counts["ties_dropped"] == counts["ties_identical_responses"] == 5


def test_a_constant_reward_ties_every_prompt(tiny_model_dir: Path, tmp_path: Path) -> None:
    records, _ = run_sample(tiny_model_dir, tmp_path, prompts())
    scores, _ = score_samples(
        records,
        reward_identity={"constant": 1.0},
        shard_size=2,
        work_dir=tmp_path,
        scorer=lambda: lambda conversations: [1.0] * len(conversations),
    )
    pairs, counts = binarize(records, scores)
    assert pairs == [] and counts["ties_dropped"] == 5
    distinct = sum(len({t.strip() for t in r["responses"] if t.strip()}) >= 2 for r in records)
    assert counts["ties_equal_reward"] == distinct


# --------------------------------------------------------------------------- resuming


def test_killed_sampling_resumes_from_finished_shards(tiny_model_dir: Path, tmp_path: Path) -> None:
    items = prompts(5)  # shards of 2 prompts: 2 + 2 + 1
    killed = Counting(fail_on_call=2 * 3 + 2)  # dies in the third shard's second pass (3 passes per shard)
    with pytest.raises(KeyboardInterrupt):
        run_sample(tiny_model_dir, tmp_path / "work", items, generate=killed)
    shard_dirs = list((tmp_path / "work").glob("samples-*"))
    assert len(shard_dirs) == 1 and len(list(shard_dirs[0].glob("shard-*.jsonl"))) == 2
    assert not list(shard_dirs[0].glob(".*.tmp")), "no half-written shard"

    resumed = Counting()
    records, meta = run_sample(tiny_model_dir, tmp_path / "work", items, generate=resumed)
    assert resumed.generations == 1 * 3, "only the missing shard (1 prompt x 3 samples) is generated again"
    assert (meta["shards_reused"], meta["shards_computed"], meta["generations_this_run"]) == (2, 1, 3)

    fresh, _ = run_sample(tiny_model_dir, tmp_path / "fresh", items)
    assert records == fresh, "a resumed run gives exactly the uninterrupted run's samples"

    again = Counting()
    run_sample(tiny_model_dir, tmp_path / "work", items, generate=again)
    assert again.generations == 0


def test_changed_settings_never_reuse_shards_but_a_larger_limit_does(tiny_model_dir: Path, tmp_path: Path) -> None:
    run_sample(tiny_model_dir, tmp_path, prompts(4))
    changed = Counting()
    run_sample(tiny_model_dir, tmp_path, prompts(4), decoding={**SAMPLED, "max_new_tokens": 6}, generate=changed)
    assert changed.generations == 4 * 3
    more_samples = Counting()
    run_sample(tiny_model_dir, tmp_path, prompts(4), generate=more_samples, n_samples=4)
    assert more_samples.generations == 4 * 4
    larger = Counting()
    run_sample(tiny_model_dir, tmp_path, prompts(6), generate=larger)
    assert larger.generations == 2 * 3, "the first two shards are reused, the new one is generated"
    assert len(list(tmp_path.glob("samples-*"))) == 3


def test_scoring_resumes_and_loads_the_reward_model_only_when_needed(tmp_path: Path) -> None:
    records = [
        {"id": f"p{i}", "prompt": [{"role": "user", "content": "Q"}], "responses": ["a", "bb"]} for i in range(3)
    ]
    loads: list[int] = []

    def scorer():
        loads.append(1)
        return lambda conversations: [float(len(c[-1]["content"])) for c in conversations]

    first, meta = score_samples(records, reward_identity={"rm": 1}, shard_size=2, work_dir=tmp_path, scorer=scorer)
    again, meta_again = score_samples(
        records, reward_identity={"rm": 1}, shard_size=2, work_dir=tmp_path, scorer=scorer
    )
    assert first == again and [r["scores"] for r in first] == [[1.0, 2.0]] * 3
    assert len(loads) == 1 and meta["shards_computed"] == 2 and meta_again["shards_reused"] == 2
    score_samples(records, reward_identity={"rm": 2}, shard_size=2, work_dir=tmp_path, scorer=scorer)
    assert len(loads) == 2, "another reward model scores again"


def test_seeds_differ_per_shard_and_sample() -> None:
    seeds = {sample_seed(42, shard, k) for shard in range(20) for k in range(5)}
    assert len(seeds) == 100 and all(0 <= s < 2**31 for s in seeds)


# --------------------------------------------------------------------------- CLI


def test_cli_builds_the_dataset_and_its_record(tiny_model_dir: Path, reward_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "uf.jsonl"
    rows = [
        {
            **p,
            "chosen": [{"role": "assistant", "content": "yes"}],
            "rejected": [{"role": "assistant", "content": "no"}],
            "score_chosen": None,
            "score_rejected": None,
        }
        for p in prompts(5)
    ]
    write_jsonl(source, [*rows, {**rows[0], "id": "uf-repeat"}])
    assert len(load_prompts(source)[0]) == 5 and load_prompts(source)[1] == 1
    work, out = tmp_path / "shards", tmp_path / "out"
    main(
        [
            *("sample", "--model", str(tiny_model_dir), "--prompts", str(source), "--limit", "4"),
            *("--n-samples", "3", "--decoding", json.dumps(SAMPLED), "--shard-size", "2", "--seed", "1"),
            *("--work-dir", str(work), "--out", str(out / "samples.jsonl"), "--meta", str(out / "samples.json")),
        ]
    )
    main(
        [
            *("score", "--samples", str(out / "samples.jsonl"), "--reward", str(reward_dir), "--shard-size", "2"),
            *("--work-dir", str(work), "--out", str(out / "scores.jsonl"), "--meta", str(out / "scores.json")),
        ]
    )
    describe = {"dataset": "uf_onpolicy", "policy": "llama-instruct", "prompts": "uf", "reward_model": {"name": "rm"}}
    status = main(
        [
            *("binarize", "--samples", str(out / "samples.jsonl"), "--samples-meta", str(out / "samples.json")),
            *("--scores", str(out / "scores.jsonl"), "--scores-meta", str(out / "scores.json")),
            *(
                "--describe",
                json.dumps(describe),
                "--out",
                str(out / "data.jsonl"),
                "--meta",
                str(out / "data.meta.json"),
            ),
        ]
    )
    assert status == 0
    meta = read_json(out / "data.meta.json")
    pairs = read_jsonl(out / "data.jsonl")
    assert all(p["score_chosen"] > p["score_rejected"] for p in pairs)
    assert meta["counts"]["prompts"] == 4 and meta["counts"]["pairs_kept"] == len(pairs)
    assert meta["tie_rule"] == TIE_RULE and meta["n_samples"] == 3
    assert meta["sampling"]["decoding"] == SAMPLED and meta["sampling"]["model"]["sha256"]
    assert meta["sampling"]["limit"] == 4 and meta["sampling"]["seed"] == 1
    assert meta["reward"]["name_or_path"] == str(reward_dir) and meta["reward"]["loaded"]["class"]
    assert meta["policy"] == "llama-instruct" and meta["dataset"] == "uf_onpolicy"


# --------------------------------------------------------------------------- config and DAG


def test_config_checks_onpolicy_references() -> None:
    config = yaml.safe_load((REPO / "workflow/config/config.yaml").read_text())
    (name,) = [n for n, d in config["datasets"].items() if "onpolicy" in d]
    checked = validate_config(copy.deepcopy(config))
    assert checked["datasets"][name]["onpolicy"]["backend"] == "hf"
    assert checked["reward_models"]["tiny-rm"]["batch_size"] == 8
    for path, value, message in [
        (("onpolicy", "reward_model"), "armo", "unknown reward model 'armo'"),
        (("onpolicy", "policy"), "llama-chat", "unknown variant 'llama-chat'"),
        (("onpolicy", "prompts"), "ultrachat", "is sft, needs preference"),
        (("onpolicy", "n_samples"), 1, "less than the minimum"),
    ]:
        broken = copy.deepcopy(config)
        broken["datasets"][name][path[0]][path[1]] = value
        with pytest.raises(ConfigError, match=re.escape(message)):
            validate_config(broken)
    broken = copy.deepcopy(config)
    broken["tokenizer"]["corpus"].append(name)
    with pytest.raises(ConfigError, match="on-policy data"):
        validate_config(broken)
    broken = copy.deepcopy(config)
    broken["reward_models"]["tiny-rm"]["train"]["data"] = name
    with pytest.raises(ConfigError, match="labelled by this reward model itself"):
        validate_config(broken)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_checkout(tmp_path_factory.mktemp("clone"))


@pytest.mark.parametrize("configfile", [None, "workflow/config/paper.yaml"])
def test_dag_builds_onpolicy_data_for_llama_instruct(checkout: Path, configfile: str | None) -> None:
    args = ("--configfile", configfile) if configfile else ()
    run = snakemake(checkout, "-n", "-p", *args)
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["onpolicy_sample"] == counts["onpolicy_score"] == counts["onpolicy_binarize"] == 1
    assert counts.get("reward_model_hub" if configfile else "train_reward_model") == 1
    config = yaml.safe_load((REPO / (configfile or "workflow/config/config.yaml")).read_text())
    data = config["variants"]["llama-instruct"]["preference_data"]
    assert "onpolicy" in config["datasets"][data]
    trains = re.findall(r"-m pipeline\.train .*?--data (\S+) .*?--out results/train/([\w-]+)/", run.stdout)
    assert trains and {d for d, v in trains if v == "llama-instruct"} == {f"results/data/{data}.jsonl"}
    assert f"results/data/{data}.jsonl" not in {d for d, v in trains if v != "llama-instruct"}
    assert f"--out results/data/{data}.jsonl" in run.stdout, "binarize writes the file training reads"


def test_an_isolated_pass_matches_the_in_process_one(
    tiny_model_dir: Path, single_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one thread on both sides: sampling from a near-flat tiny model flips on last-bit differences of the logits
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    conversations = [p["prompt"] for p in prompts(3)]
    alone = generate_isolated(tiny_model_dir, conversations, SAMPLED, 2, 11, backend="hf")
    assert alone == generate_responses(tiny_model_dir, conversations, SAMPLED, 2, 11, "hf")
