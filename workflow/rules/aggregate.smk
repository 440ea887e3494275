# Stage 4: the tables, one per experiment (results/tables/main.md, results/tables/hh.md, ...),
# one row per (variant, method), with their plots.


localrules:
    aggregate,
    plots,


def experiment_results(wildcards):
    """Every result file of the experiment: each run under each method on each benchmark."""
    return [
        f"results/eval/{name}/{method}/{benchmark}.json"
        for name in experiment_runs(wildcards.experiment)
        for method in RUNS[name].methods
        for benchmark in RUNS[name].benchmarks
    ]


def experiment_histories(wildcards):
    return [
        f"results/train/{name}/{method}/log_history.json"
        for name in experiment_runs(wildcards.experiment)
        for method in RUNS[name].methods
    ]


def run_prefix_flag(experiment):
    """What an experiment's run names add to the variant's (suite/experiments.py), dropped in its table."""
    return "" if experiment == MAIN else f"--run-prefix {experiment}-"


rule aggregate:
    input:
        experiment_results,
    output:
        csv="results/tables/{experiment}.csv",
        md="results/tables/{experiment}.md",
    params:
        scale=config["scale"],
        title=lambda w: experiment_title(config, w.experiment),
        prefix=lambda w: run_prefix_flag(w.experiment),
    log:
        "results/logs/aggregate/{experiment}.log",
    benchmark:
        "results/benchmarks/aggregate/{experiment}.tsv"
    shell:
        "python -m suite.aggregate --scale {params.scale} --title {params.title:q} {params.prefix} "
        "--results {input} --csv {output.csv} --md {output.md} > {log} 2>&1"


rule plots:
    input:
        table="results/tables/{experiment}.csv",
        histories=experiment_histories,
    output:
        scores="results/tables/{experiment}.png",
        training="results/tables/{experiment}_training_curves.png",
    log:
        "results/logs/plots/{experiment}.log",
    benchmark:
        "results/benchmarks/plots/{experiment}.tsv"
    shell:
        "python -m suite.plots --table {input.table} --histories {input.histories} "
        "--scores-png {output.scores} --training-png {output.training} > {log} 2>&1"
