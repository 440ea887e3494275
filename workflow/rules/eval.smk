# Stage 3: generate answers to each benchmark's prompts, then judge and score them.
# Judge calls are cached in results/cache/ (not a rule output): a re-run or a
# resumed failure never pays for the same call twice.
import os
import shlex

from evals.budget import backend_config


def bench_spec(wildcards):
    return config["benchmarks"][wildcards.benchmark]


# Benchmarks without a prompt set have no generation step (evals/capability.py: workflow/rules/capability.smk).
GENERATED_BENCHMARKS = [name for name, spec in config["benchmarks"].items() if "prompts" in spec]


def generation_decoding(wildcards, benchmark):
    """The variant's generation settings under the benchmark's own (e.g. Arena-Hard's greedy decoding)."""
    return {**variant_spec(wildcards)["generation"], **config["benchmarks"][benchmark].get("generation", {})}


def generation_tasks(wildcards):
    """`--task BENCHMARK PROMPTS DECODING OUT` for every generated benchmark."""
    return " ".join(
        f"--task {b} {dataset_file(config['benchmarks'][b]['prompts'])} "
        f"{shlex.quote(as_json(generation_decoding(wildcards, b)))} "
        f"results/generations/{wildcards.variant}/{wildcards.method}/{b}.json"
        for b in GENERATED_BENCHMARKS
    )


def asset_file(benchmark, name):
    """Where a benchmark asset (judge prompts, reference or baseline answers) is kept for evaluation."""
    source = config["benchmarks"][benchmark]["assets"][name]
    suffix = os.path.splitext(source.get("path") or source.get("url"))[1]
    return f"results/data/assets/{benchmark}/{name}{suffix}"


def benchmark_options(wildcards):
    options = bench_spec(wildcards).get("options")
    return f" --options {shlex.quote(as_json(options))}" if options else ""


rule generate:
    # One job per trained model answers every benchmark, so the model is loaded once.
    input:
        model="results/train/{variant}/{method}/model",
        prompts=lambda w: [dataset_file(config["benchmarks"][b]["prompts"]) for b in GENERATED_BENCHMARKS],
    output:
        [f"results/generations/{{variant}}/{{method}}/{b}.json" for b in GENERATED_BENCHMARKS],
    params:
        tasks=generation_tasks,
        batch_size=config["compute"]["generation_batch_size"],
        seed=config["seed"],
    log:
        "results/logs/generate/{variant}/{method}.log",
    benchmark:
        "results/benchmarks/generate/{variant}/{method}.tsv"
    shell:
        "python -m evals.generate --model {input.model} {params.tasks} --generator {wildcards.variant}-{wildcards.method} "
        "--batch-size {params.batch_size} --seed {params.seed} > {log} 2>&1"


localrules:
    alpaca_eval_lc_assets,


rule alpaca_eval_lc_assets:
    # LC needs alpaca_eval's df_gamed.csv and the official eval set in the HF
    # cache; fetched once, on the login node, when the config asks for LC.
    output:
        touch("results/data/alpaca_eval_lc_assets.done"),
    log:
        "results/logs/alpaca_eval_lc_assets.log",
    benchmark:
        "results/benchmarks/alpaca_eval_lc_assets.tsv"
    shell:
        "python -m evals.alpaca_eval --fetch-lc-assets > {log} 2>&1"


rule benchmark_asset:
    # Validated and copied from the repository, or downloaded from a pinned URL on
    # the login node, so that evaluation jobs only read local files.
    output:
        "results/data/assets/{benchmark}/{asset}",
    wildcard_constraints:
        asset=r"[A-Za-z0-9_]+\.[A-Za-z0-9]+",
    params:
        module=lambda w: BENCHMARK_MODULES[w.benchmark],
        name=lambda w: w.asset.split(".", 1)[0],
        source=lambda w: as_json(bench_spec(w)["assets"][w.asset.split(".", 1)[0]]),
        options=benchmark_options,
    log:
        "results/logs/benchmark_asset/{benchmark}/{asset}.log",
    benchmark:
        "results/benchmarks/benchmark_asset/{benchmark}/{asset}.tsv"
    shell:
        "python -m {params.module} --fetch-asset {params.name} --source {params.source:q}{params.options} "
        "--out {output} > {log} 2>&1"


localrules:
    benchmark_asset,


def evaluate_inputs(wildcards):
    bench = config["benchmarks"][wildcards.benchmark]
    inputs = {
        "outputs": f"results/generations/{wildcards.variant}/{wildcards.method}/{wildcards.benchmark}.json",
        "reference": dataset_file(bench["prompts"]),
    }
    if bench.get("fetch_lc_assets"):
        inputs["lc_assets"] = "results/data/alpaca_eval_lc_assets.done"
    for name in bench.get("assets", {}):
        inputs[name] = asset_file(wildcards.benchmark, name)
    return inputs


def evaluate_flags(wildcards):
    """The benchmark's asset files and options as evaluator flags (none for AlpacaEval)."""
    assets = bench_spec(wildcards).get("assets", {})
    flags = "".join(f" --{name.replace('_', '-')} {asset_file(wildcards.benchmark, name)}" for name in assets)
    return flags + benchmark_options(wildcards)


def benchmark_judge(wildcards):
    """The top-level judge with the benchmark's overrides (e.g. MT-Bench's GPT-4), cost-guard keys removed."""
    return as_json(backend_config({**config["judge"], **bench_spec(wildcards).get("judge", {})}))


def budget_check(wildcards):
    """With judge.max_budget_usd or judge.confirm set, the cost guard (evals/budget.py) runs before judging."""
    judge = {**config["judge"], **bench_spec(wildcards).get("judge", {})}
    if judge.get("max_budget_usd") is None and not judge.get("confirm"):
        return ""
    inputs = evaluate_inputs(wildcards)
    return (
        f"python -m evals.budget --step --benchmark {wildcards.benchmark} --outputs {inputs['outputs']} "
        f"--reference {inputs['reference']} --judge {shlex.quote(as_json(judge))} "
        f"--cache results/cache/judge.sqlite{benchmark_options(wildcards)} && "
    )


rule evaluate:
    wildcard_constraints:
        benchmark=alternatives(GENERATED_BENCHMARKS),
    input:
        unpack(evaluate_inputs),
    output:
        result="results/eval/{variant}/{method}/{benchmark}.json",
        annotations="results/eval/{variant}/{method}/{benchmark}.annotations.json",
    params:
        module=lambda w: BENCHMARK_MODULES[w.benchmark],
        judge=benchmark_judge,
        flags=evaluate_flags,
        budget=budget_check,
    log:
        "results/logs/evaluate/{variant}/{method}/{benchmark}.log",
    benchmark:
        "results/benchmarks/evaluate/{variant}/{method}/{benchmark}.tsv"
    shell:
        "{params.budget}python -m {params.module} --outputs {input.outputs} --reference {input.reference} "
        "--judge {params.judge:q} --cache results/cache/judge.sqlite --out {output.result} "
        "--annotations-out {output.annotations}{params.flags} > {log} 2>&1"
