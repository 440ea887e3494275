# Stage 3: generate answers to each benchmark's prompts, then judge and score them.
# Judge calls are cached in results/cache/ (not a rule output): a re-run or a
# resumed failure never pays for the same call twice. The functions these rules
# use live in common.smk.


def stage_rule(stage, experiment):
    """`generate` and `evaluate` for the main experiment, `generate_hh` etc. for the others."""
    return stage if experiment == MAIN else f"{stage}_{experiment}"


# Each experiment evaluates its own benchmarks, so its per-model generate and
# evaluate rules list their own outputs; the loop defines one pair per
# experiment, told apart by the runs their {variant} wildcard matches.
for _experiment in EXPERIMENTS:
    _benchmarks = generated_benchmarks(_experiment)

    rule:
        # One job per trained model answers every benchmark, so the model is loaded once.
        name:
            stage_rule("generate", _experiment)
        input:
            model="results/train/{variant}/{method}/model",
            prompts=generation_prompts,
        output:
            [f"results/generations/{{variant}}/{{method}}/{b}.json" for b in _benchmarks],
        wildcard_constraints:
            variant=alternatives(experiment_runs(_experiment)),
        params:
            tasks=generation_tasks,
            batch_size=config["compute"]["generation_batch_size"],
            launch=lambda w, resources: launch_processes(resources),
            seed=lambda w: config["seed"] + RUNS[w.variant].replicate,  # each seed's run samples its own answers
        log:
            "results/logs/generate/{variant}/{method}.log",
        benchmark:
            "results/benchmarks/generate/{variant}/{method}.tsv"
        shell:
            "{params.launch} -m pipeline.generate --model {input.model} {params.tasks} "
            "--generator {wildcards.variant}-{wildcards.method} --batch-size {params.batch_size} --seed {params.seed} > {log} 2>&1"

    rule:
        # One job per trained model judges and scores every generated benchmark in one process.
        name:
            stage_rule("evaluate", _experiment)
        input:
            unpack(evaluate_inputs),
        output:
            [f"results/eval/{{variant}}/{{method}}/{b}.json" for b in _benchmarks],
            [f"results/eval/{{variant}}/{{method}}/{b}.annotations.json" for b in _benchmarks],
        wildcard_constraints:
            variant=alternatives(experiment_runs(_experiment)),
        params:
            steps=evaluation_steps,
            budget=budget_checks,
        log:
            "results/logs/evaluate/{variant}/{method}.log",
        benchmark:
            "results/benchmarks/evaluate/{variant}/{method}.tsv"
        shell:
            "{params.budget}{PYTHON} -m pipeline.evaluate {params.steps} > {log} 2>&1"


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
        "{PYTHON} -m pipeline.evaluate --step evals.alpaca_eval --fetch-lc-assets > {log} 2>&1"


def asset_source(wildcards):
    return config["benchmarks"][wildcards.benchmark]["assets"][wildcards.asset.split(".", 1)[0]]


rule benchmark_asset:
    # Validated and copied from the repository (the file is an input: editing it reruns what
    # depends on it), or downloaded from a pinned URL (with its sha256, verified) on the login
    # node, so that evaluation jobs only read local files.
    input:
        lambda w: [asset_source(w)["path"]] if "path" in asset_source(w) else [],
    output:
        "results/data/assets/{benchmark}/{asset}",
    wildcard_constraints:
        asset=r"[A-Za-z0-9_]+\.[A-Za-z0-9]+",
    params:
        module=lambda w: BENCHMARK_MODULES[w.benchmark],
        # the benchmark module's own command line, run by the evaluation entry point
        args=lambda w, output: (
            f"--fetch-asset {w.asset.split('.', 1)[0]} --source {shlex.quote(as_json(asset_source(w)))}"
            f"{benchmark_options(config['benchmarks'][w.benchmark])} --out {output[0]}"
        ),
    log:
        "results/logs/benchmark_asset/{benchmark}/{asset}.log",
    benchmark:
        "results/benchmarks/benchmark_asset/{benchmark}/{asset}.tsv"
    shell:
        "{PYTHON} -m pipeline.evaluate --step {params.module} {params.args:q} > {log} 2>&1"


localrules:
    benchmark_asset,
