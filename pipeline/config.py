"""Validation of the workflow config against workflow/schemas/config.schema.yaml, defaults filled in.

The valid method and benchmark names come from the registries, so a typo in
the config fails at start with the list of valid names, never hours later.
The judge block (and every benchmark's ``judge:`` override over it) is
checked against the judge backends' own config parsers and the cost guard's
budget keys. A value that looks like a credential anywhere in the config is
refused first, before any check that could repeat it, and never repeated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from evals import benchmark_names
from evals.budget import BUDGET_KEYS, backend_config, budget_settings, check_budget_settings
from evals.judges import check_judge_config
from suite.experiments import MAIN, check_experiments, experiment_benchmarks, experiment_names
from suite.methods import MethodParamsError, get_method, method_names

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
# Values shaped like credentials (OpenAI/Anthropic sk-..., Hugging Face hf_..., GitHub, AWS, Google, Slack).
SECRET_VALUE = re.compile(
    r"(?<![A-Za-z0-9_])(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{30,}|xox[abprs]-[A-Za-z0-9-]{10,})"
)
# Keys whose value would be a credential itself (api_key_env names a variable and is fine).
SECRET_KEY = re.compile(r"(?i)^(.*_)?(api_?key|secret|secret_key|password|passwd|access_token|auth_token|token)$")
LOCAL_PREFIXES = ("/", "./", "../", "~")  # a model name that starts so is a directory, not a hub id


class ConfigError(ValueError):
    """The config does not match the schema; the message names the key and the valid values."""


def _fill_defaults(validator_class: type) -> type:
    """A validator that sets each missing property's ``default`` as it validates (jsonschema FAQ pattern)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Mapping, instance: Any, schema: Mapping) -> Iterator:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema(path: Path = SCHEMA) -> dict[str, Any]:
    """The schema, with the registries' names as the only valid method and benchmark keys."""
    schema = yaml.safe_load(path.read_text())
    schema["properties"]["methods"]["propertyNames"] = {"enum": method_names()}
    schema["properties"]["benchmarks"]["propertyNames"] = {"enum": benchmark_names()}
    experiment = schema["properties"]["experiments"]["additionalProperties"]["properties"]
    experiment["benchmarks"]["propertyNames"] = {"enum": benchmark_names()}
    experiment["methods"]["items"] = {"enum": method_names()}
    return schema


def _message(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "enum" and error.parent is not None and error.parent.validator == "propertyNames":
        key = "/".join(str(p) for p in error.parent.absolute_path) or "(top level)"
        valid = ", ".join(str(v) for v in error.validator_value)
        return f"config: {key}: unknown name {error.instance!r}; valid names: {valid}"
    return f"config: {where}: {error.message}"


def load_config(path: Path) -> dict[str, Any]:
    """A config file, validated (the command-line tools' view of ``--configfile``)."""
    return validate_config(yaml.safe_load(path.read_text()))


def validate_config(config: dict[str, Any], schema_path: Path = SCHEMA) -> dict[str, Any]:
    """Validate ``config`` in place (filling defaults) and check cross-references; returns it."""
    refuse_secrets(config)
    schema = load_schema(schema_path)
    validator = _fill_defaults(jsonschema.Draft202012Validator)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config), key=_deepest_first)
    if error is not None:
        raise ConfigError(_message(error))
    _check_variant_names(config["variants"], schema["$defs"]["paper_variants"]["enum"])
    _check_local_checkpoints(config)
    training_schema = {**schema["$defs"]["training"], "$defs": schema["$defs"]}
    for name, variant in config["variants"].items():
        _check_plain(variant["training"], training_schema, f"variants/{name}/training")
        for method in variant["method_params"]:
            if method not in config["methods"]:
                raise ConfigError(
                    f"config: variants/{name}/method_params: {method!r} is not among the configured methods "
                    f"({', '.join(config['methods'])})"
                )
    _check_method_params(config, training_schema)
    _check_dataset_references(config)
    _check_judges(config)
    errors = check_experiments(config)
    if errors:
        raise ConfigError(errors[0])
    return config


def _check_variant_names(variants: Mapping[str, Any], paper: list[str]) -> None:
    """The paper's four names, or a further variant declared as one (so a typo in the four is still caught)."""
    for name, spec in variants.items():
        if name not in paper and not spec["extra"]:
            raise ConfigError(
                f"config: variants: unknown name {name!r}; valid names: {', '.join(paper)} "
                "(declare a further variant with 'extra: true')"
            )


def _check_local_checkpoints(config: Mapping[str, Any]) -> None:
    """A model named by a path (``/...``, ``./...``, ``~/...``) must be a directory, or it would be sent to the hub."""
    named = [(f"variants/{n}/model/hub", v["model"].get("hub")) for n, v in config["variants"].items()]
    named += [(f"reward_models/{n}/hub", r.get("hub")) for n, r in config.get("reward_models", {}).items()]
    for experiment, entry in config.get("experiments", {}).items():
        named += [(f"experiments/{experiment}/models/{v}/hub", m["hub"]) for v, m in entry.get("models", {}).items()]
    for where, name in named:
        if name and name.startswith(LOCAL_PREFIXES) and not Path(name).expanduser().is_dir():
            raise ConfigError(f"config: {where}: {name!r} looks like a local checkpoint, but no such directory")


def _deepest_first(error: jsonschema.ValidationError) -> tuple:
    return (-len(error.absolute_path), *jsonschema.exceptions.relevance(error))


def _check_plain(instance: Any, schema: Mapping[str, Any], where: str) -> None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    if error is not None:
        raise ConfigError(f"config: {where}: {error.message}")


def _check_method_params(config: Mapping[str, Any], training_schema: Mapping[str, Any]) -> None:
    """Every method's hyperparameters, and each variant's overrides of them, against the method's own schema.

    A string beta, a typo'd key or a negative beta fails here, at start (``snakemake -n`` included), naming the
    config key, instead of hours later in the loss or, worse, training silently in reverse.
    """
    for method, params in config["methods"].items():
        settings = {f"methods/{method}": params}
        for name, variant in config["variants"].items():
            if method in variant["method_params"]:
                settings[f"variants/{name}/method_params/{method}"] = {**params, **variant["method_params"][method]}
        for where, values in settings.items():
            resolved = _resolve(method, values, where)
            if "reward_model_training" in resolved:  # RTO's partial training block for its reward model
                _check_plain(resolved["reward_model_training"], training_schema, f"{where}/reward_model_training")


def _resolve(method: str, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    try:
        return get_method(method).resolve_params(params)
    except MethodParamsError as exc:
        raise ConfigError(f"config: {where}{'/' + exc.name if exc.name else ''}: {exc.problem}") from None


def _check_dataset_references(config: Mapping[str, Any]) -> None:
    """Every dataset a variant, benchmark or the tokenizer names must be defined, with the right kind."""
    datasets = config["datasets"]

    def need(name: str, kind: str, where: str) -> None:
        if name not in datasets:
            raise ConfigError(f"config: {where}: unknown dataset {name!r}; defined: {', '.join(datasets)}")
        if datasets[name]["kind"] != kind:
            raise ConfigError(f"config: {where}: dataset {name!r} is {datasets[name]['kind']}, needs {kind}")

    for name, variant in config["variants"].items():
        need(variant["preference_data"], "preference", f"variants/{name}/preference_data")
        if "sft" in variant:
            need(variant["sft"]["data"], "sft", f"variants/{name}/sft/data")
        if "instruct_stand_in" in variant["model"]:
            need(variant["model"]["instruct_stand_in"], "sft", f"variants/{name}/model/instruct_stand_in")
    for name, bench in config["benchmarks"].items():
        if "prompts" in bench and bench["prompts"] not in datasets:
            raise ConfigError(f"config: benchmarks/{name}/prompts: unknown dataset {bench['prompts']!r}")
    for name in config.get("tokenizer", {}).get("corpus", []):
        if name not in datasets:
            raise ConfigError(f"config: tokenizer/corpus: unknown dataset {name!r}; defined: {', '.join(datasets)}")
        if "onpolicy" in datasets[name]:
            raise ConfigError(f"config: tokenizer/corpus: {name!r} is on-policy data, sampled by a model that needs it")
    _check_onpolicy_references(config, need)


def _check_onpolicy_references(config: Mapping[str, Any], need: Any) -> None:
    """On-policy datasets name a variant, a prompt set and a reward model; trained reward models a base and data."""
    onpolicy = {name: entry["onpolicy"] for name, entry in config["datasets"].items() if "onpolicy" in entry}
    reward_models = config.get("reward_models", {})
    for name, spec in onpolicy.items():
        where = f"config: datasets/{name}/onpolicy"
        if spec["policy"] not in config["variants"]:
            raise ConfigError(
                f"{where}/policy: unknown variant {spec['policy']!r}; configured: {', '.join(config['variants'])}"
            )
        if spec["prompts"] == name:
            raise ConfigError(f"{where}/prompts: a dataset cannot take its prompts from itself")
        need(spec["prompts"], "preference", f"datasets/{name}/onpolicy/prompts")
        if spec["reward_model"] not in reward_models:
            raise ConfigError(
                f"{where}/reward_model: unknown reward model {spec['reward_model']!r}; "
                f"defined: {', '.join(reward_models) or '(none)'}"
            )
    tiny_archs = {v["model"]["tiny"] for v in config["variants"].values() if "tiny" in v["model"]}
    for name, entry in reward_models.items():
        if "train" not in entry:
            continue
        where = f"config: reward_models/{name}/train"
        need(entry["train"]["data"], "preference", f"reward_models/{name}/train/data")
        if onpolicy.get(entry["train"]["data"], {}).get("reward_model") == name:
            raise ConfigError(f"{where}/data: {entry['train']['data']!r} is labelled by this reward model itself")
        base = entry["train"]["base"]
        if "tiny" in base and base["tiny"] not in tiny_archs:
            raise ConfigError(f"{where}/base: no variant builds a tiny {base['tiny']!r} model")
        if "stage" in base:
            variant, stage = base["stage"].split("/")
            if variant not in config["variants"] or (stage == "sft" and "sft" not in config["variants"][variant]):
                raise ConfigError(f"{where}/base: no model stage {base['stage']!r} (variant/init, or variant/sft)")


def refuse_secrets(value: Any, where: str = "") -> None:
    """Refuse a config that holds a credential, naming where it is and never repeating it."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            path = f"{where}/{key}" if where else str(key)
            if SECRET_KEY.match(str(key)) and item not in (None, ""):
                raise ConfigError(
                    f"config: {path}: a credential under a key named {key!r} is refused (the value is not repeated "
                    "here). Keys come from the environment: set judge.api_key_env to the NAME of the variable that "
                    "holds it"
                )
            refuse_secrets(item, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            refuse_secrets(item, f"{where}[{i}]")
    elif isinstance(value, str) and SECRET_VALUE.search(value):
        raise ConfigError(
            f"config: {where or '(top level)'}: this value looks like an API key or token and is refused (it is not "
            "repeated here). Keep secrets out of the config: put the key in an environment variable and name that "
            "variable in judge.api_key_env"
        )


def _check_judges(config: Mapping[str, Any]) -> None:
    """The judge block, and each benchmark's judge as its override makes it, against the backends and budget keys."""
    blocks = [("judge", config["judge"])]
    for experiment in experiment_names(config):
        prefix = "" if experiment == MAIN else f"experiments/{experiment}/"
        for name, bench in experiment_benchmarks(config, experiment).items():
            if "judge" in bench:
                blocks.append((f"{prefix}benchmarks/{name}/judge", {**config["judge"], **bench["judge"]}))
    for where, judge in blocks:
        try:
            check_budget_settings(budget_settings(judge))
            check_judge_config(backend_config(judge))
        except ValueError as exc:
            raise ConfigError(f"config: {where}: {exc} (the cost guard's keys: {', '.join(BUDGET_KEYS)})") from None
