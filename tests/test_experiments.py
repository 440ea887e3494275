"""Experiment branches (suite/experiments.py) and the HH experiment's helpfulness benchmark (evals/hh_helpful.py)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals import get_benchmark
from evals import hh_helpful as hh
from evals.judges import Judge, JudgeReply, JudgeRequest
from pipeline.aggregate import result_rows, to_markdown
from pipeline.config import ConfigError, validate_config
from suite.experiments import MAIN, runs
from suite.io import read_json, write_json, write_jsonl
from tests.workflow_helpers import REPO, clean_checkout, snakemake

# --------------------------------------------------------------------------- experiments in the config


def default_config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "workflow/config/config.yaml").read_text())


def hh_entry(**overrides: Any) -> dict[str, Any]:
    return {"preference_data": "hh", "benchmarks": {"harmless": {"prompts": "hh_test"}}, **overrides}


def with_hh(**overrides: Any) -> dict[str, Any]:
    config = default_config()
    config["experiments"] = {"hh": hh_entry(**overrides)}
    return validate_config(config)


def test_main_runs_are_the_variants_and_experiment_runs_are_prefixed() -> None:
    config = with_hh(methods=["dpo", "aao"])
    found = runs(config)
    main = [r for r in found.values() if r.experiment == MAIN]
    assert [r.name for r in main] == list(config["variants"])
    assert all(r.spec == config["variants"][r.variant] for r in main)
    assert all(r.methods == tuple(config["methods"]) and r.benchmarks is config["benchmarks"] for r in main)
    # by default the Base variants (those with an SFT stage), from where their own training starts
    branch = [r for r in found.values() if r.experiment == "hh"]
    assert [r.name for r in branch] == ["hh-llama-base", "hh-mistral-base"]
    for run in branch:
        assert run.spec["preference_data"] == "hh" and run.spec["start_of"] == run.variant
        assert run.spec["generation"] == config["variants"][run.variant]["generation"]
        assert run.methods == ("dpo", "aao") and set(run.benchmarks) == {"harmless"}


def test_an_experiment_can_name_its_own_start_model_and_training() -> None:
    model = {"hub": "org/some-sft-model", "revision": "abc123"}
    config = with_hh(variants=["llama-instruct"], models={"llama-instruct": model}, training={"learning_rate": 1e-6})
    run = runs(config)["hh-llama-instruct"]
    assert "start_of" not in run.spec and "sft" not in run.spec
    assert run.spec["model"] == {**model, "chat_template": None}
    assert run.spec["training"]["learning_rate"] == 1e-6
    assert config["variants"]["llama-instruct"]["preference_data"] != "hh", "the variant itself is untouched"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"preference_data": "ultrachat"}, "experiments/hh/preference_data: 'ultrachat' is not a preference dataset"),
        ({"variants": ["llama-large"]}, "experiments/hh/variants: 'llama-large' is not configured"),
        ({"methods": ["orpo"]}, "experiments/hh/methods/0"),
        ({"benchmarks": {"mmlu": {"prompts": "hh_test"}}}, "experiments/hh/benchmarks: 'mmlu' is not one of"),
        (
            {"benchmarks": {"harmless": {"prompts": "nowhere"}}},
            "benchmarks/harmless/prompts: unknown dataset 'nowhere'",
        ),
        ({"benchmarks": {"harmless": {}}}, "experiments/hh/benchmarks/harmless"),
        ({"models": {"llama-instruct": {"hub": "x"}}}, "experiments/hh/models: 'llama-instruct' is not one of"),
    ],
)
def test_bad_experiment_entries_fail_naming_the_key(overrides: dict[str, Any], message: str) -> None:
    config = default_config()
    config["experiments"] = {"hh": hh_entry(**overrides)}
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert message in str(caught.value)


def test_an_unconfigured_method_in_an_experiment_is_refused() -> None:
    config = default_config()
    config["methods"] = {"dpo": {"beta": 0.1}}
    config["experiments"] = {"hh": hh_entry(methods=["aao"])}
    with pytest.raises(ConfigError, match="experiments/hh/methods: 'aao' is not configured under methods"):
        validate_config(config)


def test_an_experiment_cannot_be_called_main() -> None:
    config = default_config()
    config["experiments"] = {"main": hh_entry()}
    with pytest.raises(ConfigError, match="experiments"):
        validate_config(copy.deepcopy(config))


# --------------------------------------------------------------------------- helpfulness against HH's chosen replies

PROMPTS = [
    {
        "id": "hh_test-000000",
        "prompt": [{"role": "user", "content": "How do I boil an egg?"}],
        "chosen": [{"role": "assistant", "content": "Put it in boiling water for eight minutes."}],
        "rejected": [{"role": "assistant", "content": "Why?"}],
    },
    {
        "id": "hh_test-000001",
        "prompt": [
            {"role": "user", "content": "I need a gift idea."},
            {"role": "assistant", "content": "Who is it for?"},
            {"role": "user", "content": "My sister, she likes books."},
        ],
        "chosen": [{"role": "assistant", "content": "A helpful pick: a novel by her favourite author."}],
        "rejected": [{"role": "assistant", "content": "Socks."}],
    },
    {
        "id": "hh_test-000002",
        "prompt": [{"role": "user", "content": "What is a good stretch for my back?"}],
        "chosen": [{"role": "assistant", "content": "Try the child's pose."}],
        "rejected": [{"role": "assistant", "content": "None."}],
    },
    {
        "id": "hh_test-000003",
        "prompt": [{"role": "user", "content": "Name a fruit."}],
        "chosen": [{"role": "assistant", "content": "An apple."}],
        "rejected": [{"role": "assistant", "content": "A chair."}],
    },
]
# The model is better on 0 and 2 (only its reply is "helpful"), worse on 1, equal on 3: 2 + 0 + 0.5 of 4.
MODEL_REPLIES = [
    "A helpful answer: eight minutes in boiling water.",
    "Books.",
    "A helpful stretch is the child's pose.",
    "A pear.",
]


class HelpfulWordJudge(Judge):
    """Prefers, strongly, the output that says 'helpful'; no preference when both or neither do."""

    name = "helpful-word"
    is_offline = True

    def complete(self, request: JudgeRequest) -> JudgeReply:
        first = "helpful" in request.payload["output_1"].lower()
        second = "helpful" in request.payload["output_2"].lower()
        if first == second:
            return JudgeReply(text="m", top_logprobs=[{"m": -0.6931, "M": -0.6931}], raw={})
        strong, weak = (-1e-4, -12.0) if first else (-12.0, -1e-4)
        return JudgeReply(text="m" if first else "M", top_logprobs=[{"m": strong, "M": weak}], raw={})


@pytest.fixture
def answered(tmp_path: Path) -> tuple[Path, Path]:
    prompts, outputs = tmp_path / "hh_test.jsonl", tmp_path / "outputs.json"
    write_jsonl(prompts, PROMPTS)
    hh.write_outputs(prompts, MODEL_REPLIES, "hh-llama-base-dpo", outputs)
    return prompts, outputs


def test_win_rate_against_chosen_replies_is_the_hand_computed_one(answered: tuple[Path, Path]) -> None:
    prompts, outputs = answered
    result, annotations = hh.evaluate(outputs, prompts, HelpfulWordJudge())
    assert result["benchmark"] == "hh_helpful" and result["reference_generator"] == hh.REFERENCE_GENERATOR
    assert result["n"] == 4 and result["n_unparsed"] == 0
    assert result["win_rate"] == pytest.approx(100 * 2.5 / 4, abs=0.1)
    assert "lc" not in result, "LC is defined for the AlpacaEval set only"
    assert result["prompt_set"]["n_prompts"] == 4 and result["prompt_set"]["sha256"]
    # the judge saw HH's chosen reply against the model's, and the whole multi-turn conversation
    assert list(annotations["output_1"]) == [p["chosen"][-1]["content"] for p in PROMPTS]
    assert list(annotations["output_2"]) == MODEL_REPLIES
    second = annotations["instruction"].iloc[1]
    assert second.startswith("User: I need a gift idea.") and "Assistant: Who is it for?" in second
    assert annotations["instruction"].iloc[0] == "How do I boil an egg?"


def test_every_judge_call_is_planned_for_the_cost_estimate(answered: tuple[Path, Path]) -> None:
    prompts, outputs = answered
    calls: list[JudgeRequest] = []

    class Counting(HelpfulWordJudge):
        def complete(self, request: JudgeRequest) -> JudgeReply:
            calls.append(request)
            return super().complete(request)

    hh.evaluate(outputs, prompts, Counting())
    planned = hh.judge_requests(outputs, prompts, {})
    assert [r.messages for r in planned] == [r.messages for r in calls]


def test_chosen_replies_come_from_raw_hub_transcripts_too(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    opening = "\n\nHuman: Hi, can you help?\n\nAssistant: Of course.\n\nHuman: Name a colour."
    write_jsonl(path, [{"chosen": f"{opening}\n\nAssistant: Blue.", "rejected": f"{opening}\n\nAssistant: No."}])
    assert list(hh.chosen_replies(path).values()) == ["Blue."]
    assert hh.read_prompts(path)[0][-1] == {"role": "user", "content": "Name a colour."}


def test_a_malformed_transcript_is_named(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    good = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}
    write_jsonl(path, [good, {"chosen": "Human said hi and nobody answered", "rejected": good["rejected"]}])
    with pytest.raises(ValueError, match=r"raw\.jsonl: record 2: field 'chosen'"):
        hh.chosen_replies(path)


def test_outputs_for_other_prompts_are_refused(answered: tuple[Path, Path], tmp_path: Path) -> None:
    prompts, outputs = answered
    records = read_json(outputs)
    write_json(outputs, records[:3])
    with pytest.raises(ValueError, match="does not answer the prompts"):
        hh.evaluate(outputs, prompts, HelpfulWordJudge())


def test_cli_writes_the_result_and_annotations_with_the_offline_judge(answered: tuple[Path, Path]) -> None:
    prompts, outputs = answered
    out, annotations = outputs.with_name("result.json"), outputs.with_name("annotations.json")
    get_benchmark("hh_helpful").main(
        ["--outputs", str(outputs), "--reference", str(prompts), "--judge", json.dumps({"backend": "offline"}),
         "--out", str(out), "--annotations-out", str(annotations)]
    )  # fmt: skip
    result = read_json(out)
    assert result["judge_is_offline"] and 0 <= result["win_rate"] <= 100
    assert len(read_json(annotations)) == 4


def test_an_experiment_table_drops_the_run_prefix(answered: tuple[Path, Path], tmp_path: Path) -> None:
    prompts, outputs = answered
    result, _ = hh.evaluate(outputs, prompts, HelpfulWordJudge())
    path = tmp_path / "results/eval/hh-llama-base/dpo/hh_helpful.json"
    write_json(path, result)
    table, notes = result_rows([path], run_prefix="hh-")
    assert list(table["variant"]) == ["llama-base"] and list(table["method"]) == ["dpo"]
    assert table["Helpful WR vs chosen"].iloc[0] == pytest.approx(62.5, abs=0.1)
    markdown = to_markdown(table, notes, "cpu", "Anthropic-HH experiment")
    assert markdown.startswith("# Anthropic-HH experiment (CPU scale")


def test_a_named_start_model_is_set_up_for_its_run_in_the_dag(tmp_path: Path) -> None:
    work = clean_checkout(tmp_path)
    paper = yaml.safe_load((work / "workflow/config/paper.yaml").read_text())
    paper["experiments"]["hh"]["models"] = {"llama-base": {"hub": "org/llama-hh-sft", "revision": "0123abc"}}
    (work / "named.yaml").write_text(yaml.safe_dump(paper))
    run = snakemake(work, "results/train/hh-llama-base/dpo/model", "-n", "-p", "--configfile", "named.yaml")
    assert run.returncode == 0, run.stderr
    assert "--name-or-path org/llama-hh-sft --revision 0123abc" in run.stdout
    assert re.search(r"-m pipeline\.train --method dpo .*--model results/models/hh-llama-base/init ", run.stdout)
    assert "results/models/llama-base/sft" not in run.stdout, "a named start model needs no SFT stage"
