"""The config schema: defaults filled in, unknown names rejected with the valid ones listed."""

from __future__ import annotations

import copy

import pytest
import yaml

from evals import benchmark_names
from pipeline.config import ConfigError, validate_config
from suite.methods import get_method, method_names
from tests.workflow_helpers import REPO, clean_checkout, snakemake


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "workflow/config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_validate_and_get_defaults(name: str) -> None:
    config = validate_config(load(name))
    assert config["training"]["lr_scheduler_type"] == "cosine"
    assert config["training"]["warmup_ratio"] == 0.1
    assert config["training"]["seed"] == 42
    for variant in config["variants"].values():
        assert variant["method_params"] == {} or isinstance(variant["method_params"], dict)
        assert variant["generation"]["top_p"] == 1.0


def test_unknown_method_lists_the_registry() -> None:
    config = load("config.yaml")
    config["methods"]["dpoo"] = {}
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert "'dpoo'" in message and "methods" in message
    for name in method_names():
        assert name in message


def test_unknown_variant_lists_the_valid_ones() -> None:
    config = load("config.yaml")
    config["variants"]["llama-chat"] = copy.deepcopy(config["variants"]["llama-base"])
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert "'llama-chat'" in message
    for name in ("llama-base", "llama-instruct", "mistral-base", "mistral-instruct"):
        assert name in message


def test_unknown_benchmark_lists_the_registry() -> None:
    config = load("config.yaml")
    config["benchmarks"]["alpacaeval"] = {"prompts": "alpaca_eval"}
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert "'alpacaeval'" in message
    for name in benchmark_names():
        assert name in message


def test_variant_training_override_is_checked() -> None:
    config = load("config.yaml")
    config["variants"]["llama-base"]["training"] = {"learning_rte": 1e-6}
    with pytest.raises(ConfigError, match="variants/llama-base/training"):
        validate_config(config)


def test_dangling_dataset_reference_is_named() -> None:
    config = load("config.yaml")
    config["variants"]["llama-base"]["preference_data"] = "ultrafeedbak"
    with pytest.raises(ConfigError, match="unknown dataset 'ultrafeedbak'"):
        validate_config(config)


# ---------------------------------------------------------------- method hyperparameters, checked at start


@pytest.mark.parametrize(
    ("where", "params", "message"),
    [
        ("methods", {"dpo": {"beta": "0.1"}}, "config: methods/dpo/beta: '0.1' is not of type 'number'"),
        ("methods", {"dpo": {"betta": 0.1}}, "config: methods/dpo: unknown parameter(s) betta; valid: beta"),
        ("methods", {"dpo": {"beta": -0.1}}, "config: methods/dpo/beta: -0.1 is less than or equal to the minimum"),
        ("methods", {"tdpo": {"variant": 3}}, "config: methods/tdpo/variant: 3 is not one of [1, 2]"),
        ("methods", {"dpo_random": {"low": 1.5}}, "config: methods/dpo_random: need low <= high, got low=1.5"),
        ("methods", {"aao": {"fixed_a": 0.2}}, "config: methods/aao: aao: need 0 <= fixed_b < fixed_a <= 1"),
        ("llama-base", {"simpo": {"beta": "2"}}, "config: variants/llama-base/method_params/simpo/beta: '2' is not"),
        ("methods", {"rto": {"reward_model_training": {"learning_rat": 1}}}, "methods/rto/reward_model_training"),
    ],
)
def test_method_parameters_are_checked_against_the_methods_schema(where: str, params: dict, message: str) -> None:
    config = load("config.yaml")
    target = config["methods"] if where == "methods" else config["variants"][where].setdefault("method_params", {})
    for method, values in params.items():
        target[method] = {**target.get(method, {}), **values}
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert message in str(error.value)


@pytest.mark.parametrize("name", method_names())
def test_every_method_declares_a_schema_its_defaults_fit(name: str) -> None:
    method = get_method(name)
    assert set(method.params_schema) == set(method.defaults), "a default without a schema, or a schema without one"
    assert method.resolve_params({}) == dict(method.defaults)


def test_snakemake_dry_run_stops_on_a_bad_method_parameter(tmp_path) -> None:
    work = clean_checkout(tmp_path)
    config = load("config.yaml")
    config["methods"]["dpo"] = {"beta": "0.1"}
    (work / "bad.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(work, "-n", "--configfile", "bad.yaml")
    assert run.returncode != 0
    assert "config: methods/dpo/beta: '0.1' is not of type 'number'" in run.stdout + run.stderr
