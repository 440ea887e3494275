# Stage 3: generate answers to each benchmark's prompts, then judge and score them.
# Judge calls are cached in results/cache/ (not a rule output): a re-run or a
# resumed failure never pays for the same call twice.


rule generate:
    input:
        model="results/train/{variant}/{method}/model",
        prompts=lambda w: dataset_file(config["benchmarks"][w.benchmark]["prompts"]),
    output:
        "results/generations/{variant}/{method}/{benchmark}.json",
    params:
        decoding=lambda w: as_json(variant_spec(w)["generation"]),
        batch_size=config["compute"]["generation_batch_size"],
        seed=config["seed"],
    log:
        "results/logs/generate/{variant}/{method}/{benchmark}.log",
    benchmark:
        "results/benchmarks/generate/{variant}/{method}/{benchmark}.tsv"
    shell:
        "python -m evals.generate --model {input.model} --benchmark {wildcards.benchmark} --prompts {input.prompts} "
        "--decoding {params.decoding:q} --generator {wildcards.variant}-{wildcards.method} "
        "--batch-size {params.batch_size} --seed {params.seed} --out {output} > {log} 2>&1"


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


def evaluate_inputs(wildcards):
    bench = config["benchmarks"][wildcards.benchmark]
    inputs = {
        "outputs": f"results/generations/{wildcards.variant}/{wildcards.method}/{wildcards.benchmark}.json",
        "reference": dataset_file(bench["prompts"]),
    }
    if bench.get("fetch_lc_assets"):
        inputs["lc_assets"] = "results/data/alpaca_eval_lc_assets.done"
    return inputs


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        result="results/eval/{variant}/{method}/{benchmark}.json",
        annotations="results/eval/{variant}/{method}/{benchmark}.annotations.json",
    params:
        module=lambda w: BENCHMARK_MODULES[w.benchmark],
        judge=as_json(config["judge"]),
    log:
        "results/logs/evaluate/{variant}/{method}/{benchmark}.log",
    benchmark:
        "results/benchmarks/evaluate/{variant}/{method}/{benchmark}.tsv"
    shell:
        "python -m {params.module} --outputs {input.outputs} --reference {input.reference} "
        "--judge {params.judge:q} --cache results/cache/judge.sqlite --out {output.result} "
        "--annotations-out {output.annotations} > {log} 2>&1"
