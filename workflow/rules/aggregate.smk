# Stage 4: the tables, one set per experiment (results/tables/<experiment>*), the claims, and the report.
#   aggregate: the flat per-run table (<experiment>.csv/.md, the machine-readable source), Table 1 in the
#              paper's layout, every method against DPO with paired intervals, AAO - DPO (pipeline/aggregate.py)
#   plots:     grouped bars, forest plot, score against length, training curves, squeezing (pipeline/plots.py)
#   claims:    the paper's claims with our figure, interval and verdict (pipeline/claims.py)
# Every table (as HTML) and plot is a report() output: `snakemake --report results/report.html`.
import os

from pipeline.published import load_published
from suite.io import read_json

# Checked at start: a published number without a source (or with an unknown one) stops the run here.
PUBLISHED = load_published(config["tables"]["published"])
TABLE_KINDS = ("table1", "vs_dpo", "aao_vs_dpo")
BOOTSTRAP_KEYS = {"rounds": "bootstrap_rounds", "seed": "bootstrap_seed", "confidence": "confidence"}  # pipeline.tables.Bootstrap
PLOT_KINDS = ("scores", "forest", "length", "training_curves", "squeezing")


localrules:
    aggregate,
    plots,
    claims,


def experiment_files(experiment, stage, name):
    """results/<stage>/<run>/<method>/<name> of every run (every seed) and method of the experiment."""
    return [
        f"results/{stage}/{run}/{method}/{name}"
        for run in experiment_runs(experiment)
        for method in RUNS[run].methods
    ]


def experiment_results(wildcards):
    """Every result file of the experiment, with its per-item annotations beside it."""
    return [
        f"results/eval/{run}/{method}/{benchmark}{suffix}"
        for run in experiment_runs(wildcards.experiment)
        for method in RUNS[run].methods
        for benchmark in RUNS[run].benchmarks
        for suffix in (".json", ".annotations.json")
    ]


def experiment_generations(wildcards):
    """The answers behind the results (response lengths), and each model's tokenizer (lengths in tokens)."""
    experiment = wildcards.experiment
    answers = [f for b in generated_benchmarks(experiment) for f in experiment_files(experiment, "generations", f"{b}.json")]
    return answers + experiment_files(experiment, "train", "model")


def experiment_manifests(wildcards):
    """Manifests of the datasets feeding the experiment (preference data, prompt sets), where data rules write them."""
    runs = [RUNS[name] for name in experiment_runs(wildcards.experiment)]
    datasets = {run.spec["preference_data"] for run in runs}
    datasets |= {spec["prompts"] for spec in experiment_benchmarks(config, wildcards.experiment).values() if "prompts" in spec}
    paths = [f"results/data/{name}.manifest.json" for name in sorted(datasets)]
    return [p for p in paths if os.path.exists(p) or any(rule.is_producer(p) for rule in workflow.rules)]


def run_prefix_flag(experiment):
    """What an experiment's run names add to the variant's (suite/experiments.py), dropped in its table."""
    return "" if experiment == MAIN else f"--run-prefix {experiment}-"


def runs_json(experiment):
    """Each run's variant and seed, for the tables (run names are not parsed)."""
    return as_json({run: {"variant": RUNS[run].variant, "seed": RUNS[run].seed} for run in experiment_runs(experiment)})


def hub_models_json(experiment):
    """The hub model each variant of the experiment trains from (published numbers name theirs)."""
    variants = {RUNS[run].variant for run in experiment_runs(experiment)}
    models = {v: config["variants"][v]["model"].get("hub") for v in variants}
    return as_json({v: hub for v, hub in models.items() if hub})


def judges_text(experiment):
    """Who judged each benchmark (captions)."""
    parts = []
    for name, spec in experiment_benchmarks(config, experiment).items():
        judge = benchmark_judge(spec)
        who = judge.get("model") or judge["backend"]
        parts.append(f"{name}: {who}" + (" (offline stand-in heuristic)" if judge["backend"] == "offline" else ""))
    return "; ".join(parts)


def seeds_text(experiment):
    seeds = sorted({RUNS[run].seed for run in experiment_runs(experiment)})
    return ", ".join(map(str, seeds))


def items_scored(results):
    """Items scored per benchmark (of those its prompt set holds), from the result files."""
    counts = {}
    for path in results:
        if path.endswith(".annotations.json"):
            continue
        result = read_json(path)
        name, n = os.path.basename(path)[: -len(".json")], result.get("n")
        expected = result.get("n_expected", n)
        counts.setdefault(name, set()).add(f"{n}/{expected}")
    return "; ".join(f"{b} {', '.join(sorted(v))}" for b, v in counts.items())


def table_report(experiment_file, caption, what):
    """A table marked for the report; its labels are read when the report is built (the results exist then)."""

    def labels(wildcards, input):
        return {"table": what, "items scored": items_scored(input.results)}

    return report(experiment_file, caption=f"../report/{caption}.rst", category="{experiment}", subcategory="Tables",
                  labels=labels)  # fmt: skip


def plot_report(experiment_file, caption, what):
    return report(experiment_file, caption=f"../report/{caption}.rst", category="{experiment}", subcategory="Plots",
                  labels={"figure": what})  # fmt: skip


TABLE_PARAMS = dict(
    scale=config["scale"],
    judges=lambda w: judges_text(w.experiment),
    seeds=lambda w: seeds_text(w.experiment),
    title=lambda w: experiment_title(config, w.experiment),
)


rule aggregate:
    input:
        results=experiment_results,
        generations=experiment_generations,
        histories=lambda w: experiment_files(w.experiment, "train", "log_history.json"),
        manifests=experiment_manifests,
        published=config["tables"]["published"],
    output:
        csv="results/tables/{experiment}.csv",
        md="results/tables/{experiment}.md",
        html=table_report("results/tables/{experiment}.html", "flat", "every run"),
        table1=multiext("results/tables/{experiment}_table1", ".md", ".tex", ".csv"),
        table1_html=table_report("results/tables/{experiment}_table1.html", "table1", "Table 1"),
        vs_dpo=multiext("results/tables/{experiment}_vs_dpo", ".md", ".tex"),
        vs_dpo_html=table_report("results/tables/{experiment}_vs_dpo.html", "vs_dpo", "every method - DPO"),
        aao=multiext("results/tables/{experiment}_aao_vs_dpo", ".md", ".tex"),
        aao_html=table_report("results/tables/{experiment}_aao_vs_dpo.html", "aao_vs_dpo", "AAO - DPO"),
        comparisons="results/tables/{experiment}_comparisons.csv",
    params:
        **TABLE_PARAMS,
        prefix=lambda w: run_prefix_flag(w.experiment),
        runs=lambda w: runs_json(w.experiment),
        models=lambda w: hub_models_json(w.experiment),
        bootstrap=as_json({k: config["tables"][key] for k, key in BOOTSTRAP_KEYS.items()}),
        control=config["tables"]["control"],
        treatment=config["tables"]["treatment"],
        results=lambda w, input: [p for p in input.results if not p.endswith(".annotations.json")],
    log:
        "results/logs/aggregate/{experiment}.log",
    benchmark:
        "results/benchmarks/aggregate/{experiment}.tsv"
    shell:
        "{PYTHON} -m pipeline.aggregate --scale {params.scale} --title {params.title:q} {params.prefix} "
        "--runs {params.runs:q} --results {params.results} --csv {output.csv} --md {output.md} "
        "--html {output.html} --paper-prefix results/tables/{wildcards.experiment} --published {input.published} "
        "--manifests {input.manifests} --models {params.models:q} --bootstrap {params.bootstrap:q} "
        "--control {params.control} --treatment {params.treatment} > {log} 2>&1"


rule plots:
    input:
        table1="results/tables/{experiment}_table1.csv",
        flat="results/tables/{experiment}.csv",
        comparisons="results/tables/{experiment}_comparisons.csv",
        histories=lambda w: experiment_files(w.experiment, "train", "log_history.json"),
    output:
        scores=plot_report("results/tables/{experiment}.png", "scores", "scores with 95% intervals"),
        forest=plot_report("results/tables/{experiment}_forest.png", "forest", "every method - DPO"),
        length=plot_report("results/tables/{experiment}_length.png", "length", "score against length"),
        training=plot_report("results/tables/{experiment}_training_curves.png", "training", "training curves"),
        squeezing=plot_report("results/tables/{experiment}_squeezing.png", "squeezing", "squeezing diagnostic"),
    params:
        **TABLE_PARAMS,
        runs=lambda w: runs_json(w.experiment),
        control=config["tables"]["control"],
        treatment=config["tables"]["treatment"],
    log:
        "results/logs/plots/{experiment}.log",
    benchmark:
        "results/benchmarks/plots/{experiment}.tsv"
    shell:
        "{PYTHON} -m pipeline.plots --table1 {input.table1} --flat {input.flat} --comparisons {input.comparisons} "
        "--histories {input.histories} --runs {params.runs:q} --control {params.control} "
        "--treatment {params.treatment} --scores-png {output.scores} --forest-png {output.forest} "
        "--length-png {output.length} --training-png {output.training} --squeezing-png {output.squeezing} > {log} 2>&1"


rule claims:
    input:
        comparisons=expand("results/tables/{experiment}_comparisons.csv", experiment=EXPERIMENTS),
        published=config["tables"]["published"],
    output:
        multiext("results/tables/claims", ".md", ".tex", ".csv"),
        html=report("results/tables/claims.html", caption="../report/claims.rst", category="Claims",
                    labels={"table": "the paper's claims"}),  # fmt: skip
    params:
        scale=config["scale"],
        seeds=", ".join(f"{e}: {seeds_text(e)}" for e in EXPERIMENTS),
        comparisons=" ".join(f"{e}=results/tables/{e}_comparisons.csv" for e in EXPERIMENTS),
        control=config["tables"]["control"],
        treatment=config["tables"]["treatment"],
    log:
        "results/logs/claims.log",
    benchmark:
        "results/benchmarks/claims.tsv"
    shell:
        "{PYTHON} -m pipeline.claims --comparisons {params.comparisons} --published {input.published} "
        "--scale {params.scale} --control {params.control} --treatment {params.treatment} "
        "--prefix results/tables/claims > {log} 2>&1"


# What `rule all` builds of this stage: every table, plot and the claims.
TABLE_OUTPUTS = [
    *expand("results/tables/{experiment}{suffix}", experiment=EXPERIMENTS, suffix=[".csv", ".md", ".html"]),
    *expand("results/tables/{experiment}_{kind}.html", experiment=EXPERIMENTS, kind=TABLE_KINDS),
    *expand("results/tables/{experiment}.png", experiment=EXPERIMENTS),
    *expand("results/tables/{experiment}_{kind}.png", experiment=EXPERIMENTS, kind=PLOT_KINDS[1:]),
    "results/tables/claims.html",
]
