# Stage 4: the paper's tables, one row per (variant, method).


localrules:
    aggregate,
    plots,


rule aggregate:
    input:
        expand("results/eval/{variant}/{method}/{benchmark}.json", variant=VARIANTS, method=METHODS, benchmark=BENCHMARKS),
    output:
        csv="results/tables/main.csv",
        md="results/tables/main.md",
    params:
        scale=config["scale"],
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    shell:
        "python -m suite.aggregate --scale {params.scale} --results {input} --csv {output.csv} --md {output.md} "
        "> {log} 2>&1"


rule plots:
    input:
        table="results/tables/main.csv",
        histories=expand("results/train/{variant}/{method}/log_history.json", variant=VARIANTS, method=METHODS),
    output:
        scores="results/tables/main.png",
        training="results/tables/training_curves.png",
    log:
        "results/logs/plots.log",
    benchmark:
        "results/benchmarks/plots.tsv"
    shell:
        "python -m suite.plots --table {input.table} --histories {input.histories} "
        "--scores-png {output.scores} --training-png {output.training} > {log} 2>&1"
