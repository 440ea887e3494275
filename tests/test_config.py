"""The config schema: defaults filled in, unknown names rejected with the valid ones listed."""

from __future__ import annotations

import copy

import pytest
import yaml

from baselines import method_names
from evals import benchmark_names
from suite.config import ConfigError, validate_config
from tests.workflow_helpers import REPO


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
