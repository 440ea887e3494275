# Config validation and the small functions every stage shares.
import json
import os
import re
import shlex
import urllib.parse

from suite.methods import get_method
from evals import BENCHMARKS as BENCHMARK_MODULES
from evals.budget import backend_config
from pipeline.config import validate_config
from suite.experiments import MAIN, experiment_benchmarks, experiment_names, experiment_title, runs
from suite.io import plain_suffix

validate_config(config)

# The main experiment's variants, methods and benchmarks; the runs of every
# experiment (suite/experiments.py) are what the {variant} wildcard ranges over.
VARIANTS = list(config["variants"])
METHODS = list(config["methods"])
BENCHMARKS = list(config["benchmarks"])
EXPERIMENTS = experiment_names(config)
RUNS = runs(config)
ALL_BENCHMARKS = sorted({b for run in RUNS.values() for b in run.benchmarks})
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


# Runs that set up their own start model from the hub (an experiment run may name one).
HUB_VARIANTS = [name for name, run in RUNS.items() if "start_of" not in run.spec and "hub" in run.spec["model"]]
TINY_BASE_VARIANTS = variants_where(lambda m: "tiny" in m and "instruct_stand_in" not in m)
TINY_INSTRUCT_VARIANTS = variants_where(lambda m: "instruct_stand_in" in m)


wildcard_constraints:
    variant=alternatives(RUNS),
    method=alternatives(METHODS),
    benchmark=alternatives(ALL_BENCHMARKS),
    experiment=alternatives(EXPERIMENTS),
    dataset=alternatives(DATASETS),
    arch=alternatives(TINY_ARCHS),


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def dataset_file(name):
    suffix = "json" if config["datasets"][name]["kind"] == "alpaca_eval" else "jsonl"
    return f"results/data/{name}.{suffix}"


def limit_flag(source):
    return f"--limit {source['limit']}" if source.get("limit") else ""


def variant_spec(wildcards):
    """The spec of the run the wildcards name (a variant of the main experiment, or an experiment's run)."""
    return RUNS[wildcards.variant].spec


def start_model(wildcards):
    """Where preference training starts: the SFT model for Base variants, else the variant's own model.

    An experiment run starts where its variant does, unless the experiment names a model of its own.
    """
    owner = variant_spec(wildcards).get("start_of", wildcards.variant)
    stage = "sft" if "sft" in RUNS[owner].spec else "init"
    return f"results/models/{owner}/{stage}"


def preference_file(wildcards):
    return dataset_file(variant_spec(wildcards)["preference_data"])


def training_block(wildcards):
    """The protocol's training settings with this variant's overrides."""
    return {**config["training"], **variant_spec(wildcards)["training"]}


def method_params(wildcards):
    """The method's config hyperparameters with this variant's overrides (the method's defaults sit below)."""
    overrides = variant_spec(wildcards)["method_params"].get(wildcards.method, {})
    return {**config["methods"][wildcards.method], **overrides}


def reference_file(wildcards):
    """The run's reference log-probs: computed once per (variant, dataset), shared by every seed's run."""
    return f"results/reference/{RUNS[wildcards.variant].base}/{variant_spec(wildcards)['preference_data']}.pt"


def train_inputs(wildcards):
    inputs = {"model": start_model(wildcards), "data": preference_file(wildcards)}
    if get_method(wildcards.method).reference == "precomputed":
        inputs["reference"] = reference_file(wildcards)
    return inputs


# How a one-process job starts Python: forked from the preload server (pipeline/preload.py) at CPU scale, where
# a job's imports cost more than its work, or a plain interpreter.
PYTHON = "python -m pipeline.preload" if config["compute"]["preload"] else "python"


def accelerate_launch(resources, config_file, mixed_precision):
    """`accelerate launch` with one process per GPU the job holds; a one-process job runs under plain `python`
    (PYTHON): the launcher would only add a second interpreter start (about 3 s a job, 40+ jobs in the CPU run)."""
    processes = max(1, int(resources.get("gpu", 0) or 0))
    if processes == 1:
        return PYTHON
    return (
        f"accelerate launch --config_file {config_file} --num_processes {processes} "
        f"--mixed_precision {mixed_precision}"
    )


def launch_processes(resources):
    """One generation process per GPU the job holds (`accelerate launch` with the plain DDP config: no FSDP, whose
    RAM-efficient loading would leave the weights on rank 0 only)."""
    return accelerate_launch(resources, "workflow/accelerate/ddp.yaml", "no")


def launch(resources, training):
    """A training job: the workflow's accelerate config. Mixed precision comes from the training block, never
    from the accelerate config (whose value would otherwise autocast a run whose reference log-probs were
    computed without it)."""
    return accelerate_launch(
        resources, config["compute"]["accelerate_config"], "bf16" if training.get("bf16") else "no"
    )


# ------------------------------------------------------------------ evaluation (eval.smk)

def experiment_runs(experiment):
    return [name for name, run in RUNS.items() if run.experiment == experiment]


def generated_benchmarks(experiment):
    """The experiment's benchmarks with a generation step (capability has none: workflow/rules/capability.smk)."""
    return [b for b, spec in experiment_benchmarks(config, experiment).items() if "prompts" in spec]


def run_benchmarks(wildcards):
    """The generated benchmarks of the run the wildcards name."""
    return generated_benchmarks(RUNS[wildcards.variant].experiment)


def benchmark_spec(wildcards, benchmark):
    return RUNS[wildcards.variant].benchmarks[benchmark]


def generation_prompts(wildcards):
    return [dataset_file(benchmark_spec(wildcards, b)["prompts"]) for b in run_benchmarks(wildcards)]


def generation_decoding(wildcards, benchmark):
    """The variant's generation settings under the benchmark's own (e.g. Arena-Hard's greedy decoding)."""
    return {**variant_spec(wildcards)["generation"], **benchmark_spec(wildcards, benchmark).get("generation", {})}


def generation_tasks(wildcards):
    """`--task BENCHMARK PROMPTS DECODING OUT` for every generated benchmark of the run."""
    return " ".join(
        f"--task {b} {dataset_file(benchmark_spec(wildcards, b)['prompts'])} "
        f"{shlex.quote(as_json(generation_decoding(wildcards, b)))} "
        f"{model_outputs(wildcards, b)}"
        for b in run_benchmarks(wildcards)
    )


def model_outputs(wildcards, benchmark):
    return f"results/generations/{wildcards.variant}/{wildcards.method}/{benchmark}.json"


def asset_file(benchmark, name):
    """Where a benchmark asset (judge prompts, reference or baseline answers) is kept for evaluation."""
    source = config["benchmarks"][benchmark]["assets"][name]
    suffix = plain_suffix(source.get("path") or urllib.parse.urlparse(source["url"]).path)  # a .gz is decompressed
    return f"results/data/assets/{benchmark}/{name}{suffix}"


def benchmark_options(bench):
    """`--options JSON` of a benchmark's settings block, when it sets any."""
    options = bench.get("options")
    return f" --options {shlex.quote(as_json(options))}" if options else ""


def benchmark_inputs(wildcards, benchmark):
    """What evaluating one benchmark reads: the model's answers, the prompt set, its assets."""
    bench = benchmark_spec(wildcards, benchmark)
    inputs = {"outputs": model_outputs(wildcards, benchmark), "reference": dataset_file(bench["prompts"])}
    if bench.get("fetch_lc_assets"):
        inputs["lc_assets"] = "results/data/alpaca_eval_lc_assets.done"
    for name in bench.get("assets", {}):
        inputs[name] = asset_file(benchmark, name)
    return inputs


def evaluate_inputs(wildcards):
    return {f"{b}_{k}": v for b in run_benchmarks(wildcards) for k, v in benchmark_inputs(wildcards, b).items()}


def benchmark_judge(bench):
    """The top-level judge with a benchmark's overrides (e.g. MT-Bench's GPT-4)."""
    return {**config["judge"], **bench.get("judge", {})}


def evaluation_steps(wildcards):
    """`--step MODULE ARGS` per generated benchmark of the run: its evaluator's command line (pipeline/evaluate.py)."""
    steps = []
    for b in run_benchmarks(wildcards):
        bench = benchmark_spec(wildcards, b)
        inputs = benchmark_inputs(wildcards, b)
        out = f"results/eval/{wildcards.variant}/{wildcards.method}/{b}"
        args = (
            f"--outputs {inputs['outputs']} --reference {inputs['reference']} "
            f"--judge {shlex.quote(as_json(backend_config(benchmark_judge(bench))))} "
            f"--cache results/cache/judge.sqlite --out {out}.json --annotations-out {out}.annotations.json"
            + "".join(f" --{name.replace('_', '-')} {asset_file(b, name)}" for name in bench.get("assets", {}))
            + benchmark_options(bench)
        )
        steps.append(f"--step {BENCHMARK_MODULES[b]} {shlex.quote(args)}")
    return " ".join(steps)


def budget_checks(wildcards):
    """With judge.max_budget_usd or judge.confirm set, the cost guard (evals/budget.py) runs before judging."""
    checks = ""
    for b in run_benchmarks(wildcards):
        bench = benchmark_spec(wildcards, b)
        judge = benchmark_judge(bench)
        if judge.get("max_budget_usd") is None and not judge.get("confirm"):
            continue
        inputs = benchmark_inputs(wildcards, b)
        checks += (
            f"{PYTHON} -m pipeline.budget --step --benchmark {b} --outputs {inputs['outputs']} "
            f"--reference {inputs['reference']} --judge {shlex.quote(as_json(judge))} "
            f"--cache results/cache/judge.sqlite{benchmark_options(bench)} && "
        )
    return checks
