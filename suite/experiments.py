"""Experiment branches: which models are trained, on what, and evaluated how.

The main experiment is the config's top level: every variant under every
method, on the variant's preference data, scored on every benchmark. Each
entry of ``experiments`` (e.g. the paper's Anthropic-HH experiment) is one more
branch: its variants' start models (SFT for Base variants, or a model the
entry names) trained under its methods on its preference data, scored on its
own benchmarks, in its own table.

Every trained model belongs to a *run*: the ``{variant}`` wildcard of the
per-model rules (reference, train, generate, evaluate). A main run is named
after its variant; an experiment's run is ``<experiment>-<variant>``, so its
checkpoints, generations and results sit beside the main ones and every
per-model rule serves both branches unchanged.

Seeds: each (variant, method) is trained once per seed of ``seeds`` (an
experiment may set its own). The first seed's run keeps the names above, so a
single-seed config has the same paths as before; every further seed is a run
of its own, ``<run>-seed<seed>``, trained with that seed from the same start
model, on the same data and against the same reference log-probs (``base``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

MAIN = "main"


@dataclass(frozen=True)
class Run:
    """One (experiment, variant): the variant spec its rules read, its methods and its benchmarks."""

    name: str
    experiment: str
    variant: str
    spec: Mapping[str, Any]
    methods: tuple[str, ...]
    benchmarks: Mapping[str, Mapping[str, Any]]
    seed: int = 42
    replicate: int = 0  # the seed's place in the experiment's seeds: 0 keeps the plain run name
    base: str = ""  # the first seed's run (start model and reference log-probs are shared); itself for replicate 0


def experiment_names(config: Mapping[str, Any]) -> list[str]:
    return [MAIN, *config.get("experiments", {})]


def run_name(experiment: str, variant: str) -> str:
    return variant if experiment == MAIN else f"{experiment}-{variant}"


def experiment_variants(config: Mapping[str, Any], experiment: str) -> list[str]:
    """The experiment's variants; by default the Base variants (those with an SFT stage), else all."""
    if experiment == MAIN:
        return list(config["variants"])
    named = config["experiments"][experiment].get("variants")
    if named:
        return list(named)
    base = [name for name, spec in config["variants"].items() if "sft" in spec]
    return base or list(config["variants"])


def experiment_methods(config: Mapping[str, Any], experiment: str) -> list[str]:
    if experiment == MAIN:
        return list(config["methods"])
    return list(config["experiments"][experiment].get("methods") or config["methods"])


def experiment_benchmarks(config: Mapping[str, Any], experiment: str) -> Mapping[str, Mapping[str, Any]]:
    return config["benchmarks"] if experiment == MAIN else config["experiments"][experiment]["benchmarks"]


def experiment_title(config: Mapping[str, Any], experiment: str) -> str:
    if experiment == MAIN:
        return "Main results"
    return config["experiments"][experiment].get("title") or f"Experiment {experiment}"


def run_spec(config: Mapping[str, Any], experiment: str, variant: str) -> dict[str, Any]:
    """The variant's spec as the experiment trains it.

    An experiment run keeps the variant's generation settings and per-method
    overrides, trains on the experiment's preference data with its training
    overrides on top of the variant's, and starts from the model the entry
    names for the variant (a hub model, set up like a variant's) or else where
    the variant's own preference training starts (``start_of``).
    """
    spec = dict(config["variants"][variant])
    if experiment == MAIN:
        return spec
    entry = config["experiments"][experiment]
    spec["preference_data"] = entry["preference_data"]
    spec["training"] = {**spec.get("training", {}), **entry.get("training", {})}
    named = entry.get("models", {}).get(variant)
    if named:
        spec["model"] = dict(named)
        spec.pop("sft", None)
    else:
        spec["start_of"] = variant
    return spec


def experiment_seeds(config: Mapping[str, Any], experiment: str) -> list[int] | None:
    """The seeds each (variant, method) is trained under; None: once, with the training block's seed."""
    own = None if experiment == MAIN else config["experiments"][experiment].get("seeds")
    return own or config.get("seeds") or None


def seed_runs(config: Mapping[str, Any], experiment: str, base: Run) -> list[Run]:
    """The run of every seed: the first seed's is ``base`` (trained with that seed), the others named after it."""
    seeds = experiment_seeds(config, experiment)
    if not seeds:
        training = {**config.get("training", {}), **base.spec.get("training", {})}
        return [replace(base, seed=int(training.get("seed", 42)), base=base.name)]
    out = []
    for replicate, seed in enumerate(seeds):
        spec = {**base.spec, "training": {**base.spec.get("training", {}), "seed": seed}}
        if replicate:
            spec["start_of"] = base.spec.get("start_of", base.name)
        name = f"{base.name}-seed{seed}" if replicate else base.name
        out.append(replace(base, name=name, spec=spec, seed=seed, replicate=replicate, base=base.name))
    return out


def runs(config: Mapping[str, Any]) -> dict[str, Run]:
    """Every run of every experiment and seed, by name (the ``{variant}`` wildcard)."""
    out: dict[str, Run] = {}
    for experiment in experiment_names(config):
        for variant in experiment_variants(config, experiment):
            base = Run(
                name=run_name(experiment, variant),
                experiment=experiment,
                variant=variant,
                spec=run_spec(config, experiment, variant),
                methods=tuple(experiment_methods(config, experiment)),
                benchmarks=experiment_benchmarks(config, experiment),
            )
            out.update((run.name, run) for run in seed_runs(config, experiment, base))
    return out


def check_experiments(config: Mapping[str, Any]) -> list[str]:
    """Cross-reference errors of the ``experiments`` entries (names that must exist elsewhere in the config)."""
    errors = []
    datasets, variants, methods = config["datasets"], config["variants"], config["methods"]
    for name, entry in config.get("experiments", {}).items():
        where = f"config: experiments/{name}"
        data = entry["preference_data"]
        if datasets.get(data, {}).get("kind") != "preference":
            errors.append(f"{where}/preference_data: {data!r} is not a preference dataset of datasets")
        for variant in entry.get("variants") or []:
            if variant not in variants:
                errors.append(f"{where}/variants: {variant!r} is not configured; configured: {', '.join(variants)}")
        chosen = experiment_variants(config, name)
        for variant in entry.get("models", {}):
            if variant not in chosen:
                errors.append(f"{where}/models: {variant!r} is not one of its variants: {', '.join(chosen)}")
        for method in entry.get("methods") or []:
            if method not in methods:
                errors.append(f"{where}/methods: {method!r} is not configured under methods ({', '.join(methods)})")
        for benchmark, block in entry["benchmarks"].items():
            if block["prompts"] not in datasets:
                errors.append(f"{where}/benchmarks/{benchmark}/prompts: unknown dataset {block['prompts']!r}")
    return errors
