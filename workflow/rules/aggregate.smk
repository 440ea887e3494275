# Stage 4: the paper's tables, one row per (variant, method).


localrules:
    aggregate,


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
