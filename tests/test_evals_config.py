"""The judge block at start: backend, backend keys, per-benchmark overrides, budget keys, and pasted secrets."""

from __future__ import annotations

import copy
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals.budget import BUDGET_KEYS
from pipeline.config import ConfigError, validate_config
from tests.workflow_helpers import REPO, clean_checkout, snakemake

OPENAI_KEYS = ["api_key_env", "base_url", "concurrency", "initial_backoff_s", "max_retries", "model", "timeout_s"]


def paper() -> dict[str, Any]:
    return yaml.safe_load((REPO / "workflow/config/paper.yaml").read_text())


def refused(config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    return str(info.value)


def test_a_typo_in_the_backend_lists_the_backends() -> None:
    config = paper()
    config["judge"]["backend"] = "opneai"
    assert refused(config).startswith(
        "config: judge: unknown judge backend 'opneai'; valid backends: hf, offline, openai"
    )


def test_a_typo_in_a_backend_key_names_it_and_lists_the_valid_ones() -> None:
    config = paper()
    config["judge"]["modle"] = config["judge"].pop("model")
    message = refused(config)
    assert message.startswith(f"config: judge: openai judge: unknown key(s) ['modle']; valid keys: {OPENAI_KEYS}")
    assert f"(the cost guard's keys: {', '.join(BUDGET_KEYS)})" in message


def test_a_typo_in_a_budget_key_is_caught_too() -> None:
    config = paper()
    config["judge"]["max_budjet_usd"] = 100
    assert "unknown key(s) ['max_budjet_usd']" in refused(config)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"modle": "gpt-4-0613"}, "openai judge: unknown key(s) ['modle']"),
        ({"max_retries": "6"}, "openai judge: max_retries must be an integer, got str"),
        ({"max_budget_usd": "100"}, "max_budget_usd: must be a number >= 0"),
        ({"confirm": "yes"}, "confirm: must be true or false"),
        ({"expected_output_tokens": -5}, "expected_output_tokens: must be an integer >= 0"),
        ({"prices": {"gpt-4-0613": {"input": 30}}}, "prices/gpt-4-0613: must be {input: USD"),
        ({"backend": "hf"}, "hf judge: unknown key(s) ['api_key_env']"),  # the top-level openai keys do not fit hf
    ],
)
def test_a_benchmarks_judge_override_is_checked_merged_over_the_top_level(
    override: dict[str, Any], expected: str
) -> None:
    config = paper()
    config["benchmarks"]["mt_bench"]["judge"] = override
    message = refused(config)
    assert message.startswith("config: benchmarks/mt_bench/judge: ") and expected in message


def test_an_experiments_benchmark_judge_is_checked() -> None:
    config = paper()
    config["experiments"]["hh"]["benchmarks"]["harmless"]["judge"] = {"timeout": 30}
    assert refused(config).startswith("config: experiments/hh/benchmarks/harmless/judge: openai judge: unknown key")


def test_values_of_the_right_type_and_the_shipped_configs_pass() -> None:
    config = paper()
    config["judge"].update(max_budget_usd=100, confirm=True, prices={"gpt-4.1": {"input": 2.0, "output": 8.0}})
    config["benchmarks"]["arena_hard"]["judge"] = {"expected_output_tokens": 700, "base_url": "http://vllm:8000/v1"}
    validate_config(config)
    validate_config(yaml.safe_load((REPO / "workflow/config/config.yaml").read_text()))


def fake_key(prefix: str = "sk-proj-") -> str:
    return prefix + secrets.token_urlsafe(24).replace("-", "a").replace("_", "b")


@pytest.mark.parametrize(
    ("where", "place"),
    [
        ("judge/api_key_env", lambda config, key: config["judge"].update(api_key_env=key)),
        ("judge/api_key", lambda config, key: config["judge"].update(api_key=key)),
        (
            "benchmarks/mt_bench/judge/api_key",
            lambda config, key: config["benchmarks"]["mt_bench"]["judge"].update(api_key=key),
        ),
        (
            "benchmarks/arena_hard/judge/base_url",
            lambda config, key: config["benchmarks"]["arena_hard"].update(
                judge={"base_url": f"https://proxy.example/v1?key={key}"}
            ),
        ),
        ("datasets/hh/hub/revision", lambda config, key: config["datasets"]["hh"]["hub"].update(revision=key)),
    ],
)
def test_a_key_pasted_into_the_config_is_refused_without_repeating_it(where: str, place: Any) -> None:
    config = paper()
    key = fake_key()
    place(config, key)
    message = refused(copy.deepcopy(config))
    assert message.startswith(f"config: {where}: ") and "not repeated" in message
    assert key not in message and key[8:20] not in message
    assert "judge.api_key_env" in message


def test_other_token_shapes_are_refused_and_ordinary_values_are_not() -> None:
    for key in (fake_key("hf_"), fake_key("sk-ant-api03-"), "AKIA" + "ABCDEFGHIJKLMNOP"):
        config = paper()
        config["judge"]["model"] = key
        assert key not in refused(config)
    config = paper()
    config["datasets"]["hh"]["hub"]["revision"] = "9a1d386" + "0" * 33  # a commit hash is no secret
    config["judge"]["api_key_env"] = "MY_TEAM_OPENAI_KEY"
    config["benchmarks"]["alpaca_eval"]["judge"] = {"expected_output_tokens": 1}
    config["datasets"]["extra"] = {
        "kind": "sft",
        "format": "ultrachat",
        "path": "data/task-abcdefghijklmnopqrstuvwx.jsonl",
    }
    validate_config(config)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_checkout(tmp_path_factory.mktemp("clone"))


@pytest.mark.parametrize(
    ("slip", "expected"),
    [
        ({"backend": "opneai"}, "unknown judge backend 'opneai'; valid backends: hf, offline, openai"),
        ({"backend": "openai", "model": "gpt-4.1", "max_retries": "six"}, "max_retries must be an integer"),
        ({"backend": "openai", "model": "gpt-4.1", "api_key_env": "KEY"}, "this value looks like an API key"),
    ],
)
def test_snakemake_dry_run_fails_on_each_judge_slip_and_never_shows_the_key(
    checkout: Path, slip: dict[str, Any], expected: str
) -> None:
    key = fake_key()
    if slip.get("api_key_env") == "KEY":
        slip = {**slip, "api_key_env": key}
    config = yaml.safe_load((checkout / "workflow/config/config.yaml").read_text())
    config["judge"] = slip
    path = checkout / "slip.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(checkout, "-n", "--configfile", str(path))
    assert run.returncode != 0
    assert expected in run.stderr + run.stdout
    assert key not in run.stderr + run.stdout
    for folder in (checkout / ".snakemake", checkout / "results"):
        for file in folder.rglob("*") if folder.exists() else []:
            if file.is_file():
                assert key.encode() not in file.read_bytes(), file
    assert re.search(r"Job stats", run.stdout) is None  # refused before any job was planned
