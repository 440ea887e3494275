# The proof-of-concept experiment, opt-in: `snakemake poc --cores 2` (rule all does not depend on it).
# A synthetic preference task whose pairs share most tokens and differ in a few
# key tokens: data per ambiguous share -> one tokenizer -> a tiny start model
# per seed -> one train+eval job per (share, method, seed) -> table, curves, summary.
# Settings: workflow/config/poc.yaml, overridable by a `poc:` block in the config.
from pipeline.poc.config import load_poc_config, share_label

POC = load_poc_config(config.get("poc"))
POC_SHARES = {share_label(s): s for s in POC["shares"]}
POC_RUNS = list(POC["methods"])
POC_SEEDS = [str(s) for s in POC["seeds"]]
POC_REPORT = {
    "csv": "results/poc/table.csv",
    "md": "results/poc/table.md",
    "paired": "results/poc/paired.csv",
    "png": "results/poc/curves.png",
    "summary": "results/poc/summary.md",
}


localrules:
    poc,


rule poc:
    input:
        **POC_REPORT,


rule poc_data:
    output:
        train="results/poc/data/share{poc_share}/train.jsonl",
        heldout="results/poc/data/share{poc_share}/heldout.jsonl",
    wildcard_constraints:
        poc_share=alternatives(POC_SHARES),
    params:
        config=as_json(POC),
        share=lambda w: POC_SHARES[w.poc_share],
    log:
        "results/logs/poc/data/share{poc_share}.log",
    benchmark:
        "results/benchmarks/poc/data/share{poc_share}.tsv"
    shell:
        "{PYTHON} -m pipeline.poc.data --config {params.config:q} --share {params.share} "
        "--train-out {output.train} --heldout-out {output.heldout} > {log} 2>&1"


rule poc_tokenizer:
    input:
        expand("results/poc/data/share{poc_share}/{split}.jsonl", poc_share=POC_SHARES, split=["train", "heldout"]),
    output:
        directory("results/poc/models/tokenizer"),
    params:
        vocab=POC["vocab_size"],
    log:
        "results/logs/poc/tokenizer.log",
    benchmark:
        "results/benchmarks/poc/tokenizer.tsv"
    shell:
        "{PYTHON} -m pipeline.poc.models tokenizer --data {input} --vocab-size {params.vocab} --out {output} > {log} 2>&1"


rule poc_model:
    input:
        "results/poc/models/tokenizer",
    output:
        directory("results/poc/models/seed{poc_seed}"),
    wildcard_constraints:
        poc_seed=alternatives(POC_SEEDS),
    params:
        size=as_json(POC["model"]),
    log:
        "results/logs/poc/model/seed{poc_seed}.log",
    benchmark:
        "results/benchmarks/poc/model/seed{poc_seed}.tsv"
    shell:
        "{PYTHON} -m pipeline.poc.models model --tokenizer {input} --size {params.size:q} --seed {wildcards.poc_seed} "
        "--out {output} > {log} 2>&1"


rule poc_train:
    input:
        model="results/poc/models/seed{poc_seed}",
        train="results/poc/data/share{poc_share}/train.jsonl",
        heldout="results/poc/data/share{poc_share}/heldout.jsonl",
    output:
        "results/poc/runs/share{poc_share}/{poc_run}/seed{poc_seed}.json",
    wildcard_constraints:
        poc_share=alternatives(POC_SHARES),
        poc_run=alternatives(POC_RUNS),
        poc_seed=alternatives(POC_SEEDS),
    threads: 1
    params:
        method=lambda w: POC["methods"][w.poc_run]["method"],
        params=lambda w: as_json(POC["methods"][w.poc_run].get("params", {})),
        training=as_json(POC["training"]),
    log:
        "results/logs/poc/train/share{poc_share}/{poc_run}/seed{poc_seed}.log",
    benchmark:
        "results/benchmarks/poc/train/share{poc_share}/{poc_run}/seed{poc_seed}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} TOKENIZERS_PARALLELISM=false "
        "{PYTHON} -m pipeline.poc.train --model {input.model} --train {input.train} --heldout {input.heldout} "
        "--run-name {wildcards.poc_run} --method {params.method} --params {params.params:q} "
        "--training {params.training:q} --seed {wildcards.poc_seed} --threads {threads} --out {output} > {log} 2>&1"


rule poc_report:
    input:
        expand(
            "results/poc/runs/share{poc_share}/{poc_run}/seed{poc_seed}.json",
            poc_share=POC_SHARES,
            poc_run=POC_RUNS,
            poc_seed=POC_SEEDS,
        ),
    output:
        **POC_REPORT,
    params:
        order=" ".join(POC_RUNS),
    log:
        "results/logs/poc/report.log",
    benchmark:
        "results/benchmarks/poc/report.tsv"
    shell:
        "{PYTHON} -m pipeline.poc.report --runs {input} --baseline dpo --order {params.order} --csv {output.csv} "
        "--md {output.md} --paired-csv {output.paired} --png {output.png} --summary {output.summary} > {log} 2>&1"
