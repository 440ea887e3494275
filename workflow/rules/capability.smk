# Stage 3b (optional): capability retention with lm-eval (benchmark `capability`,
# evals/capability.py). It has neither a generation step nor a judge: the trained
# model directory is evaluated directly, and its result sits beside the judged
# benchmarks' in results/eval/, so the aggregate table picks it up.
import re
from pathlib import Path

from evals import get_benchmark

for _name, _spec in config["benchmarks"].items():
    if "prompts" not in _spec and getattr(get_benchmark(_name), "NEEDS_GENERATION", True):
        raise ValueError(f"config: benchmarks/{_name}: needs 'prompts' (the dataset it generates answers for)")


def capability_options():
    return config["benchmarks"].get("capability", {}).get("options", {})


def local_lm_eval_tasks():
    """Task files and task names defined in the include_path (local YAML tasks and their data)."""
    directory = capability_options().get("include_path")
    if not directory:
        return [], set()
    files = sorted(str(p) for p in Path(directory).rglob("*") if p.is_file())
    names = set()
    for path in files:
        if path.endswith((".yaml", ".yml")):
            names.update(re.findall(r"^task:\s*(\S+)", Path(path).read_text(), flags=re.M))
    return files, names


def capability_inputs(wildcards):
    files, local = local_lm_eval_tasks()
    inputs = {"model": f"results/train/{wildcards.variant}/{wildcards.method}/model", "tasks": files}
    tasks = capability_options().get("tasks") or get_benchmark("capability").PAPER_TASKS
    if not set(tasks) <= local:
        inputs["datasets"] = "results/data/capability_datasets.done"
    return inputs


localrules:
    capability_datasets,


rule capability_datasets:
    # lm-eval tasks read hub datasets; fetched once, on the login node, into the HF cache.
    output:
        touch("results/data/capability_datasets.done"),
    params:
        args=lambda w: f"--fetch --options {shlex.quote(as_json(capability_options()))}",
    log:
        "results/logs/capability_datasets.log",
    benchmark:
        "results/benchmarks/capability_datasets.tsv"
    shell:
        "{PYTHON} -m pipeline.evaluate --step evals.capability {params.args:q} > {log} 2>&1"


rule capability:
    input:
        unpack(capability_inputs),
    output:
        result="results/eval/{variant}/{method}/capability.json",
        annotations="results/eval/{variant}/{method}/capability.annotations.json",
    params:
        args=lambda w, input, output: (
            f"--model {input.model} --generator {w.variant}-{w.method} "
            f"--options {shlex.quote(as_json(capability_options()))} --out {output.result} "
            f"--samples-out {output.annotations}"
        ),
    log:
        "results/logs/capability/{variant}/{method}.log",
    benchmark:
        "results/benchmarks/capability/{variant}/{method}.tsv"
    shell:
        "{PYTHON} -m pipeline.evaluate --step evals.capability {params.args:q} > {log} 2>&1"
