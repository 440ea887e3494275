"""The PoC experiment: its synthetic generator, its interval arithmetic, and its place in the workflow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.poc.config import load_poc_config, response_length, share_label
from pipeline.poc.data import KINDS, fact_table, generate
from pipeline.poc.models import check_single_tokens, corpus
from pipeline.poc.report import paired_differences, summary_table, t_interval, write_summary
from pipeline.poc.train import check_alignment
from suite.engine import PreferenceDataset
from tests.workflow_helpers import REPO, job_counts, snakemake


@pytest.fixture(scope="module")
def config() -> dict:
    return load_poc_config({"n_train": 48, "n_heldout": 16})


def shared_positions(record: dict) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(record["chosen_words"], record["rejected_words"], strict=True)) if a == b]


@pytest.mark.parametrize("share", [0.5, 0.8, 0.95])
def test_pairs_share_the_configured_share_and_differ_only_at_keys(config: dict, share: float) -> None:
    train, heldout = generate(config, share)
    k = config["key_tokens"]
    length = response_length(share, k)
    assert abs((length - k) / length - share) < 1e-9  # the default shares are met exactly
    facts = fact_table(config["data_seed"], config["subjects"], k)
    for record in train + heldout:
        chosen, rejected = record["chosen_words"], record["rejected_words"]
        assert len(chosen) == len(rejected) == length
        keys, paraphrases = record["key_positions"], record["paraphrase_positions"]
        assert len(keys) == k and not set(keys) & set(paraphrases)
        differing = [i for i in range(length) if chosen[i] != rejected[i]]
        assert differing == sorted(keys + paraphrases)
        # the ambiguous share: identical plus paraphrased words, i.e. everything but the keys
        assert (len(shared_positions(record)) + len(paraphrases)) / length == pytest.approx(share)
        assert record["realised_share"] == pytest.approx(share)
        # the keys decide the preference: chosen has the subject's facts, rejected wrong ones
        for (kind, values), pos in zip(KINDS, keys, strict=False):
            assert chosen[pos - 1] == rejected[pos - 1] == kind  # the shared cue word
            assert chosen[pos] == facts[record["subject"]][kind]
            assert rejected[pos] in values and rejected[pos] != chosen[pos]
        assert record["chosen"][0]["content"] == " ".join(chosen)


def test_without_paraphrases_exactly_the_share_is_identical(config: dict) -> None:
    plain = {**config, "paraphrase_prob": 0.0}
    train, _ = generate(plain, 0.8)
    for record in train:
        assert record["paraphrase_positions"] == []
        assert len(shared_positions(record)) / len(record["chosen_words"]) == pytest.approx(0.8)


def test_paraphrases_happen_at_the_configured_rate(config: dict) -> None:
    train, heldout = generate({**config, "n_train": 200}, 0.95)
    filler = sum(len(r["chosen_words"]) - 2 * config["key_tokens"] for r in train + heldout)
    rate = sum(len(r["paraphrase_positions"]) for r in train + heldout) / filler
    assert rate == pytest.approx(config["paraphrase_prob"], abs=0.03)


def test_held_out_split_is_disjoint(config: dict) -> None:
    for share in config["shares"]:
        train, heldout = generate(config, share)
        assert len(train) == config["n_train"] and len(heldout) == config["n_heldout"]
        assert not {r["id"] for r in train} & {r["id"] for r in heldout}

        def content(records):
            return {
                (r["prompt"][0]["content"], r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in records
            }

        assert len(content(train)) == len(train) and len(content(heldout)) == len(heldout)
        assert not content(train) & content(heldout)


def test_generation_is_deterministic_for_a_seed(config: dict) -> None:
    assert generate(config, 0.8) == generate(config, 0.8)
    other = generate({**config, "data_seed": config["data_seed"] + 1}, 0.8)
    assert other != generate(config, 0.8)
    # the facts depend on the data seed only, so every share teaches the same facts
    assert fact_table(7, 12, 2) == fact_table(7, 12, 2)


def test_words_are_single_tokens_and_keys_are_the_differing_token_positions(config: dict) -> None:
    from suite.models import train_tokenizer

    records = [r for share in config["shares"] for r in generate(config, share)[1]]
    tokenizer = train_tokenizer(corpus(records), config["vocab_size"])
    check_single_tokens(tokenizer)
    training = config["training"]
    dataset = PreferenceDataset(records, tokenizer, training["max_length"], training["max_prompt_length"])
    check_alignment(records, dataset)  # raises unless token positions = word positions
    broken = [{**records[0], "key_positions": [0]}]
    with pytest.raises(ValueError, match="differ at"):
        check_alignment(broken, PreferenceDataset(broken, tokenizer, 96, 32))


def test_config_rejects_unknown_keys_and_bad_shares() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        load_poc_config({"sharez": [0.5]})
    with pytest.raises(ValueError, match="shares"):
        load_poc_config({"shares": [0.3]})
    assert list(load_poc_config({"methods": {"dpo": {"method": "dpo"}}})["methods"]) == ["dpo"]
    assert share_label(0.95) == "0.95" and share_label(0.5) == "0.5"


# ---------------------------------------------------------------- report


def test_t_interval_matches_a_hand_computation() -> None:
    values = [0.61, 0.72, 0.55, 0.80, 0.67]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.975, df=n - 1) * sd / math.sqrt(n)
    got = t_interval(values)
    assert got == pytest.approx((mean, mean - half, mean + half), rel=1e-12)
    assert half == pytest.approx(2.7764451051977987 * sd / math.sqrt(5))  # t_{0.975, 4}
    single = t_interval([0.5])
    assert single[0] == 0.5 and math.isnan(single[1]) and math.isnan(single[2])


def test_summary_and_paired_tables() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(5):
        base = rng.normal()
        for method, shift in (("dpo", 0.0), ("aao", 1.0)):
            metrics = {m: base + shift for m in ("accuracy", "key_margin", "key_accuracy", "margin", "margin_shared")}
            metrics |= {f"aao_weight_{p}_{r}": 1.0 for p in ("key", "shared") for r in ("hidden", "embedding")}
            rows.append({"share": 0.8, "method": method, "seed": seed, "steps": 10, **metrics})
    finals = pd.DataFrame(rows)
    table = summary_table(finals, ["dpo", "aao"])
    assert list(table["method"]) == ["dpo", "aao"]
    dpo = finals[finals["method"] == "dpo"]["key_margin"]
    assert table.loc[0, "key_margin_ci_low"] == pytest.approx(t_interval(dpo)[1])
    paired = paired_differences(finals, "dpo")
    row = paired[(paired["method"] == "aao") & (paired["metric"] == "key_margin")].iloc[0]
    assert row["diff_mean"] == pytest.approx(1.0) and row["n_pairs"] == 5
    assert row["diff_ci_low"] == pytest.approx(1.0) and row["diff_ci_high"] == pytest.approx(1.0)
    init = finals[finals["method"] == "dpo"].assign(method="init")
    summary = write_summary(table, paired, init, "dpo", steps=10, n_seeds=5)
    # the text follows the numbers: aao is 1.0 above dpo on every seed
    assert "highest mean: **aao**" in summary
    assert "aao - dpo: +1.000 (paired 95% CI [+1.000, +1.000]): better" in summary


# ---------------------------------------------------------------- workflow


def dry_run(*targets: str) -> dict[str, int]:
    run = snakemake(REPO, "-n", "--forceall", *targets, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    return job_counts(run.stdout + run.stderr)


def test_poc_target_has_the_expected_jobs_and_all_does_not_need_it() -> None:
    poc = load_poc_config()
    n_shares, n_methods, n_seeds = len(poc["shares"]), len(poc["methods"]), len(poc["seeds"])
    counts = dry_run("poc")
    assert counts == {
        "poc": 1,
        "poc_data": n_shares,
        "poc_tokenizer": 1,
        "poc_model": n_seeds,
        "poc_train": n_shares * n_methods * n_seeds,
        "poc_report": 1,
        "total": 3 + n_shares + n_seeds + n_shares * n_methods * n_seeds,
    }
    assert not [rule for rule in dry_run() if rule.startswith("poc")]
