"""Capability retention: standard lm-eval tasks on a trained model, to see what preference training cost.

An optional benchmark with neither a generation step nor a judge: it runs
``lm_eval.simple_evaluate(model="hf", ...)`` on the model directory itself.
On the cluster the tasks are the Open LLM Leaderboard (v1) set: ``mmlu``,
``arc_challenge``, ``hellaswag``, ``truthfulqa_mc2``, ``winogrande``,
``gsm8k``, each with its shot count (:data:`PAPER_FEWSHOT`) and the metric in
:data:`PRIMARY_METRICS`. At CPU scale the task is ``aao_smoke_mc``, defined in
``workflow/resources/smoke/lm_eval/`` from a small JSONL file and found
through ``TaskManager(include_path=...)``.

Reported: per task its metric, value in [0, 1] (as lm-eval reports it),
standard error and number of documents; ``capability`` is the unweighted mean
over the tasks, in percent like the table's other columns, with the standard
error of that mean (tasks independent).

Options (the benchmark's ``options`` block in the config, ``--options`` here):
``tasks``, ``num_fewshot`` (one int for every task, a ``{task: shots}``
mapping, or null for each task's default), ``limit`` (documents per task, for
smoke runs only), ``apply_chat_template`` (render prompts with the model's
chat template; default true, as the trained models are chat models),
``batch_size``, ``dtype``, ``device``, ``include_path`` (a directory of local
task YAMLs; relative ``data_files`` in them are relative to the working
directory, which is the repository root in the workflow), ``metrics``
(``{task: metric}`` overrides) and ``bootstrap_iters``.

Hub datasets are downloaded by ``--fetch`` (the workflow's login-node step);
compute nodes then read the HF cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from suite.io import atomic_path, write_json

log = logging.getLogger(__name__)

NAME = "capability"
COLUMNS = {"capability": "Capability avg %"}
ERRORS = {"capability": "capability_se"}  # result key of each column's standard error
NEEDS_GENERATION = False  # the workflow runs it on the model directory (workflow/rules/capability.smk)

PAPER_TASKS = ("mmlu", "arc_challenge", "hellaswag", "truthfulqa_mc2", "winogrande", "gsm8k")
PAPER_FEWSHOT = {"mmlu": 5, "arc_challenge": 25, "hellaswag": 10, "truthfulqa_mc2": 0, "winogrande": 5, "gsm8k": 5}
PRIMARY_METRICS = {
    "mmlu": "acc",
    "arc_challenge": "acc_norm",
    "hellaswag": "acc_norm",
    "truthfulqa_mc2": "acc",
    "winogrande": "acc",
    "gsm8k": "exact_match,strict-match",
}
FALLBACK_METRICS = ("acc", "acc_norm", "exact_match")
OPTIONS: dict[str, Any] = {
    "tasks": list(PAPER_TASKS),
    "num_fewshot": dict(PAPER_FEWSHOT),
    "limit": None,
    "apply_chat_template": True,
    "batch_size": 8,
    "dtype": "auto",
    "device": "auto",
    "include_path": None,
    "metrics": {},
    "bootstrap_iters": 1000,
    "seed": 1234,
}


def read_prompts(path: str | Path) -> list[list[dict[str, str]]]:
    raise NotImplementedError(f"{NAME} has no generation step: lm-eval builds its own prompts (see the docstring)")


def write_outputs(prompts_path: str | Path, responses: Sequence[str], generator: str, out: str | Path) -> None:
    raise NotImplementedError(f"{NAME} has no generation step: lm-eval builds its own prompts (see the docstring)")


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Options over their defaults; unknown keys are an error listing the valid ones."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"{NAME}: unknown option(s) {unknown}; valid: {sorted(OPTIONS)}")
    merged = {**OPTIONS, **options}
    if not merged["tasks"] or not all(isinstance(t, str) for t in merged["tasks"]):
        raise ValueError(f"{NAME}: 'tasks' must be a non-empty list of task names")
    shots = merged["num_fewshot"]
    if shots is not None and not isinstance(shots, int | Mapping):
        raise ValueError(f"{NAME}: 'num_fewshot' must be an int, a {{task: shots}} mapping or null")
    return merged


def fewshot_groups(tasks: Sequence[str], num_fewshot: int | Mapping[str, int] | None) -> dict[int | None, list[str]]:
    """Tasks grouped by shot count, since simple_evaluate takes one ``num_fewshot`` per call."""
    groups: dict[int | None, list[str]] = defaultdict(list)
    for task in tasks:
        shots = num_fewshot.get(task) if isinstance(num_fewshot, Mapping) else num_fewshot
        groups[shots].append(task)
    return dict(groups)


def task_manager(include_path: str | None, tasks: Sequence[str]) -> Any:
    """lm-eval's TaskManager; the built-in index (about 10 s to build) only when a task is not local."""
    from lm_eval.tasks import TaskManager

    if include_path:
        local = TaskManager(include_path=include_path, include_defaults=False)
        if set(tasks) <= set(local.all_tasks):
            return local
    return TaskManager(include_path=include_path)


def primary_metric(task: str, values: Mapping[str, Any], overrides: Mapping[str, str]) -> str:
    """The ``metric,filter`` key of a task's reported number."""
    wanted = overrides.get(task) or PRIMARY_METRICS.get(task)
    candidates = [wanted] if wanted else list(FALLBACK_METRICS)
    for metric in candidates:
        key = metric if "," in metric else f"{metric},none"
        if isinstance(values.get(key), int | float):
            return key
    raise ValueError(f"{NAME}: task {task} reports none of {candidates} (it has {sorted(values)})")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not math.isnan(value) else None


def task_scores(output: Mapping[str, Any], tasks: Sequence[str], overrides: Mapping[str, str]) -> dict[str, Any]:
    """Each requested task's (or group's) primary metric, standard error and document count."""
    samples = output.get("n-samples", {})
    subtasks = output.get("group_subtasks", {})
    scores = {}
    for task in tasks:
        values = output["results"][task]
        key = primary_metric(task, values, overrides)
        metric, _, filter_name = key.partition(",")
        members = subtasks.get(task) or [task]
        scores[task] = {
            "metric": key,
            "value": float(values[key]),
            "stderr": _number(values.get(f"{metric}_stderr,{filter_name}")),
            "n": sum(samples.get(m, {}).get("effective", 0) for m in members),
            "num_fewshot": output.get("n-shot", {}).get(task),
            "version": output.get("versions", {}).get(task),
        }
    return scores


def summarise(scores: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The unweighted mean over tasks in percent, with the standard error of that mean."""
    values = [s["value"] for s in scores.values()]
    errors = [s["stderr"] for s in scores.values()]
    mean = 100 * sum(values) / len(values)
    se = None if any(e is None for e in errors) else 100 * math.sqrt(sum(e * e for e in errors)) / len(errors)
    return {"capability": mean, "capability_se": se, "n": sum(s["n"] for s in scores.values())}


def _model_args(model_dir: str | Path, opts: Mapping[str, Any]) -> dict[str, Any]:
    from suite.models import resolve

    spec = resolve(model_dir)
    if spec.get("chat_template"):
        log.warning("%s overrides its chat template (%s); lm-eval uses the tokenizer's own", model_dir, spec)
    args: dict[str, Any] = {"pretrained": spec["name_or_path"], "dtype": opts["dtype"]}
    if spec.get("revision"):
        args["revision"] = spec["revision"]
    return args


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(model_dir: str | Path, options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[dict]]:
    """Evaluate the model on the configured tasks; returns the result record and per-document samples."""
    import lm_eval

    opts = check_options(options)
    manager = task_manager(opts["include_path"], opts["tasks"])
    model_args = _model_args(model_dir, opts)
    scores: dict[str, Any] = {}
    samples: list[dict] = []
    configs: dict[str, Any] = {}
    for shots, tasks in fewshot_groups(opts["tasks"], opts["num_fewshot"]).items():
        output = lm_eval.simple_evaluate(
            model="hf",
            model_args=model_args,
            tasks=list(tasks),
            num_fewshot=shots,
            limit=opts["limit"],
            apply_chat_template=opts["apply_chat_template"],
            batch_size=opts["batch_size"],
            device=_device(opts["device"]),
            task_manager=manager,
            bootstrap_iters=opts["bootstrap_iters"],
            random_seed=opts["seed"],
            numpy_random_seed=opts["seed"],
            torch_random_seed=opts["seed"],
            fewshot_random_seed=opts["seed"],
            log_samples=True,
        )
        if output is None:  # simple_evaluate returns None on non-zero ranks of a distributed run
            raise RuntimeError("lm-eval returned no results (run capability as a single process)")
        scores.update(task_scores(output, tasks, opts["metrics"]))
        configs.update({task: output["config"] for task in tasks})
        for task, docs in output.get("samples", {}).items():
            samples += [_sample(task, doc) for doc in docs]
    result = {
        "benchmark": NAME,
        **summarise(scores),
        "tasks": scores,
        "model": {"dir": str(model_dir), **model_args},
        "lm_eval_version": lm_eval.__version__,
        "apply_chat_template": opts["apply_chat_template"],
        "limit": opts["limit"],
        "options": opts,
        "judge": f"none (lm-eval {lm_eval.__version__} log-likelihood / exact-match scoring)",
        "judge_is_offline": False,
        "run_config": {task: _jsonable(config) for task, config in configs.items()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return result, samples


def _sample(task: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """A compact per-document record: the document, its target and the metrics' values."""
    metrics = {m: doc[m] for m in doc.get("metrics", []) if m in doc}
    return _jsonable(
        {"task": task, "doc_id": doc.get("doc_id"), "doc": doc.get("doc"), "target": doc.get("target"), **metrics}
    )


def _jsonable(value: Any) -> Any:
    """Plain JSON types (lm-eval's records hold dtypes, tuples and numpy scalars)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def fetch(options: Mapping[str, Any] | None = None) -> list[str]:
    """Load every task once, which downloads its hub dataset into the HF cache (a login-node step)."""
    from lm_eval.tasks import get_task_dict

    opts = check_options(options)
    tasks = get_task_dict(list(opts["tasks"]), task_manager(opts["include_path"], opts["tasks"]))
    return sorted(tasks)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.capability", description=__doc__)
    parser.add_argument("--model", type=Path, help="model stage directory")
    parser.add_argument("--generator", help="name recorded with the result (variant-method)")
    parser.add_argument("--options", default="{}", help="the benchmark's options as JSON (module docstring)")
    parser.add_argument("--out", type=Path, help="result JSON")
    parser.add_argument("--samples-out", type=Path, help="per-document records JSON")
    parser.add_argument("--fetch", action="store_true", help="download the tasks' datasets and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = json.loads(args.options)
    if args.fetch:
        log.info("datasets of %s are in the HF cache", ", ".join(fetch(options)))
        return
    if args.model is None or args.out is None:
        parser.error("--model and --out are required (unless --fetch)")
    result, samples = run(args.model, options)
    result["generator"] = args.generator
    log.info("capability %.2f over %s", result["capability"], ", ".join(result["tasks"]))
    if args.samples_out is not None:
        with atomic_path(args.samples_out) as tmp:
            tmp.write_text(json.dumps(samples, indent=1, ensure_ascii=False))
    write_json(args.out, result)


if __name__ == "__main__":
    main()


# --------------------------------------------------------------------------- per-item outcomes (pipeline/tables.py)


def item_scores(annotations_path: str | Path) -> Any:
    """Not defined: the score averages tasks with their own metrics, so no per-item outcome has its mean."""
    raise NotImplementedError("capability has no per-item outcomes (the score averages tasks' own metrics)")
