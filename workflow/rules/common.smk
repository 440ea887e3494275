# Config validation and the small functions every stage shares.
import json
import re

from baselines import get_method
from evals import BENCHMARKS as BENCHMARK_MODULES
from suite.config import validate_config

validate_config(config)

VARIANTS = list(config["variants"])
METHODS = list(config["methods"])
BENCHMARKS = list(config["benchmarks"])
DATASETS = list(config["datasets"])
# On-policy datasets are built by workflow/rules/onpolicy.smk; prepare_data builds the others.
ONPOLICY_DATASETS = [name for name, entry in config["datasets"].items() if "onpolicy" in entry]
PREPARED_DATASETS = [name for name in DATASETS if name not in ONPOLICY_DATASETS]
TINY_ARCHS = sorted({v["model"]["tiny"] for v in config["variants"].values() if "tiny" in v["model"]})


def alternatives(names):
    """A wildcard regex matching exactly these names (and nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def variants_where(predicate):
    return [name for name, spec in config["variants"].items() if predicate(spec["model"])]


HUB_VARIANTS = variants_where(lambda m: "hub" in m)
TINY_BASE_VARIANTS = variants_where(lambda m: "tiny" in m and "instruct_stand_in" not in m)
TINY_INSTRUCT_VARIANTS = variants_where(lambda m: "instruct_stand_in" in m)


wildcard_constraints:
    variant=alternatives(VARIANTS),
    method=alternatives(METHODS),
    benchmark=alternatives(BENCHMARKS),
    dataset=alternatives(DATASETS),
    arch=alternatives(TINY_ARCHS),


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def dataset_file(name):
    suffix = "json" if config["datasets"][name]["kind"] == "alpaca_eval" else "jsonl"
    return f"results/data/{name}.{suffix}"


def data_source(name):
    """The loader's view of a dataset entry: where and how to read it, named for stable record ids."""
    entry = config["datasets"][name]
    return {"name": name, **{k: v for k, v in entry.items() if k not in ("kind", "limit")}}


def limit_flag(source):
    return f"--limit {source['limit']}" if source.get("limit") else ""


def variant_spec(wildcards):
    return config["variants"][wildcards.variant]


def start_model(wildcards):
    """Where preference training starts: the SFT model for Base variants, else the variant's own model."""
    stage = "sft" if "sft" in variant_spec(wildcards) else "init"
    return f"results/models/{wildcards.variant}/{stage}"


def preference_file(wildcards):
    return dataset_file(variant_spec(wildcards)["preference_data"])


def training_block(wildcards):
    """The protocol's training settings with this variant's overrides."""
    return {**config["training"], **variant_spec(wildcards)["training"]}


def method_params(wildcards):
    """The method's config hyperparameters with this variant's overrides (the method's defaults sit below)."""
    overrides = variant_spec(wildcards)["method_params"].get(wildcards.method, {})
    return {**config["methods"][wildcards.method], **overrides}


def train_inputs(wildcards):
    inputs = {"model": start_model(wildcards), "data": preference_file(wildcards)}
    if get_method(wildcards.method).reference == "precomputed":
        inputs["reference"] = (
            f"results/reference/{wildcards.variant}/{variant_spec(wildcards)['preference_data']}.pt"
        )
    return inputs


def launch(resources):
    """`accelerate launch` with the workflow's accelerate config and one process per GPU the job holds."""
    processes = max(1, int(resources.get("gpu", 0) or 0))
    return f"accelerate launch --config_file {config['compute']['accelerate_config']} --num_processes {processes}"
