"""The paper run planned before it starts: jobs, GPUs, tokens, GPU-hours, wall time and judge cost, per rule.

``python -m pipeline.plan --config workflow/config/paper.yaml`` prints one row per
rule of the DAG (job counts from Snakemake's own dry run), then totals, then
every assumption the numbers rest on. The model:

* FLOPs: a forward pass costs ``2 N`` FLOPs per token (N = parameters), a
  training step ``6 N`` (forward and backward); a rule's tokens are its data's
  records times their mean length (counted from the file for local data,
  assumed for hub data, see :data:`HUB_DATASETS`) times the passes it makes.
* GPU-hours: FLOPs / (peak FLOP/s x utilisation), with one utilisation for
  training and scoring passes and a lower one for generation (decoding is
  memory-bound); ``--step-time RULE=SECONDS`` replaces a training rule's estimate
  by a measured optimizer-step time.
* Wall time on ``--nodes`` nodes: a rule's jobs run in waves of as many jobs as
  the GPUs hold at once; stages follow each other, so the total is the sum.
* Judge cost: :mod:`evals.budget` on the prepared files where they exist, else
  the per-model cost measured on the real benchmark files (:data:`JUDGE_USD_PER_MODEL`).

The Slurm profile's resources are checked against the plan: a training job
whose ``runtime`` is shorter than one checkpoint interval can never finish (it
is killed before its first checkpoint, every retry), and one longer than a
checkpoint interval but shorter than the job needs as many retries as it has
restarts.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import load_config
from suite.experiments import runs

PEAK_TFLOPS = {"h100": 989.0, "h200": 989.0, "a100": 312.0}  # dense bf16, per GPU (vendor figures)
TRAIN_UTILISATION = 0.30  # model FLOPs utilisation of FSDP bf16 training and forward passes of 7-8B models
GENERATION_UTILISATION = {"hf": 0.05, "vllm": 0.25}  # decoding is bound by memory bandwidth, not FLOPs
CHARS_PER_TOKEN = 4  # local files: tokens counted as characters / 4
# Parameters of the models the configs name (hub ids); a tiny model's come from its config.
MODEL_PARAMETERS = {
    "meta-llama/Llama-3.1-8B": 8.03e9,
    "meta-llama/Llama-3.1-8B-Instruct": 8.03e9,
    "mistralai/Mistral-7B-v0.1": 7.24e9,
    "mistralai/Mistral-7B-Instruct-v0.2": 7.24e9,
    "RLHFlow/ArmoRM-Llama3-8B-v0.1": 7.5e9,
}
# Hub data sets: records and mean tokens (prompt, one response) -- known only after download, so assumed here.
HUB_DATASETS = {
    "HuggingFaceH4/ultrafeedback_binarized": (61135, 180, 290),
    "HuggingFaceH4/ultrachat_200k": (207865, 150, 1050),  # a dialogue: prompt turns + replies, capped at 2048
    "Anthropic/hh-rlhf": (160800, 110, 75),
    "princeton-nlp/llama3-ultrafeedback-armorm": (59876, 180, 420),
    "princeton-nlp/mistral-instruct-ultrafeedback": (59720, 180, 420),
    "tatsu-lab/alpaca_eval": (805, 40, 0),
}
BENCHMARK_PROMPTS = {"mt_bench": (80, 2, 70), "arena_hard": (500, 1, 200)}  # prompts, turns, prompt tokens
ASSUMED_RESPONSE_TOKENS = 400  # a generated answer, when max_new_tokens allows it
CAPABILITY_GPU_HOURS = 1.5  # lm-eval's six leaderboard tasks on one 8B model, one GPU (assumed)
# USD per model and benchmark from `python -m pipeline.budget` on the real files (expected cost, 400-word answers);
# used when the benchmark's files are not prepared on this machine. hh_helpful: 500 AlpacaEval-style calls.
JUDGE_USD_PER_MODEL = {"alpaca_eval": 11.23, "mt_bench": 7.55, "arena_hard": 33.53, "harmless": 5.36,
                       "hh_helpful": 6.97}  # fmt: skip
TRAINING_RULES = ("train", "train_dpo_reverse", "train_tis_dpo", "sft", "rto_reward_model", "train_reward_model",
                  "train_rto", "init_tiny_instruct")  # fmt: skip


@dataclass
class Row:
    """One rule of the plan."""

    rule: str
    jobs: int
    gpus_per_job: int
    tokens: float = 0.0  # per job (the largest)
    gpu_hours: float = 0.0  # per job (the longest)
    total_gpu_hours: float = 0.0  # all jobs
    steps: int = 0  # optimizer steps per job (training rules; the most)
    step_minutes: float = 0.0  # wall minutes of one optimizer step (the slowest job's)
    judge_usd: float | None = 0.0  # all jobs
    notes: list[str] = field(default_factory=list)

    @property
    def job_hours(self) -> float:
        return self.gpu_hours / max(self.gpus_per_job, 1)

    def wall_hours(self, gpus: int) -> float:
        """Waves of jobs that fit the GPUs at once, each as long as one job (CPU-only jobs take no GPU time)."""
        if not self.jobs or not self.gpus_per_job:
            return 0.0
        slots = max(1, gpus // self.gpus_per_job)
        return math.ceil(self.jobs / slots) * self.job_hours


@dataclass(frozen=True)
class Hardware:
    nodes: int = 4
    gpus_per_node: int = 8
    peak_tflops: float = PEAK_TFLOPS["h100"]
    train_utilisation: float = TRAIN_UTILISATION

    def hours(self, flops: float, utilisation: float | None = None) -> float:
        return flops / (self.peak_tflops * 1e12 * (utilisation or self.train_utilisation)) / 3600


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Data:
    records: int
    prompt_tokens: float
    response_tokens: float
    counted: bool  # from the file (True) or assumed (False)


def dataset_size(config: Mapping[str, Any], name: str) -> Data:
    """Records and mean token lengths of a configured dataset: counted for local files, else assumed."""
    entry = config["datasets"][name]
    limit = entry.get("limit")
    if "onpolicy" in entry:
        spec = entry["onpolicy"]
        prompts = dataset_size(config, spec["prompts"])
        records = min(prompts.records, spec.get("limit") or prompts.records)
        return Data(records, prompts.prompt_tokens, ASSUMED_RESPONSE_TOKENS, prompts.counted)
    if "path" in entry and Path(entry["path"]).is_file():
        return _counted(Path(entry["path"]), limit)
    hub = (entry.get("hub") or {}).get("id") or entry.get("url", "")
    records, prompt, response = HUB_DATASETS.get(hub, (1000, 200, 300))
    return Data(min(records, limit or records), prompt, response, False)


def _counted(path: Path, limit: int | None) -> Data:
    from suite.data import load_records

    raw, _ = load_records({"format": "ultrafeedback", "path": str(path)}, limit=limit)
    prompts, responses = [], []
    for record in raw:
        text = json.dumps(record, ensure_ascii=False)
        prompt = json.dumps(record.get("prompt") or record.get("instruction") or record.get("turns") or "")
        prompts.append(len(prompt) / CHARS_PER_TOKEN)
        responses.append(max(len(text) - len(prompt), 0) / CHARS_PER_TOKEN / 2)
    return Data(len(raw), sum(prompts) / len(prompts), sum(responses) / len(responses), True)


def model_parameters(config: Mapping[str, Any], spec: Mapping[str, Any]) -> float:
    """N of a variant's model: the hub model's, or the tiny model's from its config."""
    model = spec["model"]
    if "hub" in model:
        return MODEL_PARAMETERS.get(model["hub"], 8e9)
    size, vocab = config["tiny_model"], config["tokenizer"]["vocab_size"]
    hidden, layers = size["hidden_size"], size["num_hidden_layers"]
    per_layer = 4 * hidden * hidden + 3 * hidden * size["intermediate_size"]
    return layers * per_layer + 2 * vocab * hidden


# --------------------------------------------------------------------------- the DAG


def job_counts(configfile: Path) -> dict[str, int]:
    """Jobs per rule, from Snakemake's own dry run of the config (the DAG itself, not a second model of it)."""
    run = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "--configfile", str(configfile), "--quiet", "rules"],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"snakemake -n failed on {configfile}:\n{run.stderr[-2000:]}")
    counts = {}
    for line in run.stdout.split("Job stats:", 1)[-1].splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def gpus_of(profile: Mapping[str, Any], rule: str) -> int:
    """GPUs a rule's jobs hold under the profile (0: a CPU job)."""
    resources = (profile.get("set-resources") or {}).get(rule) or {}
    return int(resources.get("gpu", (profile.get("default-resources") or {}).get("gpu", 0)) or 0)


# --------------------------------------------------------------------------- per rule


@dataclass(frozen=True)
class Job:
    tokens: float
    gpu_hours: float
    steps: int = 0

    def step_minutes(self, gpus: int) -> float:
        return self.gpu_hours / max(gpus, 1) / self.steps * 60 if self.steps else 0.0


def _steps(records: int, training: Mapping[str, Any], processes: int) -> int:
    batch = training["per_device_train_batch_size"] * training["gradient_accumulation_steps"] * max(processes, 1)
    epochs = float(training.get("num_train_epochs", 1))
    return training["max_steps"] if training.get("max_steps", -1) > 0 else math.ceil(records * epochs / batch)


def _passes(data: Data, training: Mapping[str, Any], paired: bool) -> float:
    """Tokens one pass over the data processes (chosen and rejected sequences for pairs)."""
    sequence = min(data.prompt_tokens + data.response_tokens, training["max_length"])
    return data.records * float(training.get("num_train_epochs", 1)) * sequence * (2 if paired else 1)


# FLOPs per token and parameter of a preference-training step: 6 (forward + backward), + 2 per extra forward
METHOD_FLOPS = {"tdpo": 6 + 2, "kto": 6 + 2 + 2 + 2}  # live reference; KTO: + mismatched policy and reference
OWN_RULES = ("tis_dpo", "rto")  # trained by rules of their own


def _training_job(n: float, data: Data, training: Mapping[str, Any], flops_per: float, paired: bool,
                  gpus: int, hardware: Hardware) -> Job:  # fmt: skip
    """A training (or, ``flops_per`` < 6, scoring) pass; gradient checkpointing recomputes the forward (+2N)."""
    tokens = _passes(data, training, paired)
    recompute = 2 if flops_per >= 6 and training.get("gradient_checkpointing") else 0
    return Job(tokens, hardware.hours((flops_per + recompute) * n * tokens), _steps(data.records, training, gpus))


def jobs_of(rule: str, config: Mapping[str, Any], gpus: int, hardware: Hardware) -> list[Job] | None:
    """Every job of a GPU rule, costed from its own run's model, data and training block (None: not costed)."""
    out: list[Job] = []
    for run in runs(config).values():
        n = model_parameters(config, run.spec)
        training = {**config["training"], **run.spec.get("training", {})}
        data = dataset_size(config, run.spec["preference_data"])
        methods = run.methods
        if rule == "train":
            out += [_training_job(n, data, training, METHOD_FLOPS.get(m, 6), True, gpus, hardware)
                    for m in methods if m not in OWN_RULES]  # fmt: skip
        elif rule in ("train_dpo_reverse", "train_tis_dpo") and "tis_dpo" in methods:
            out.append(_training_job(n, data, training, 6, True, gpus, hardware))
        elif rule == "tis_weights" and "tis_dpo" in methods:
            out.append(_training_job(n, data, training, 2 * 2, True, gpus, hardware))  # two models' forwards
        elif rule == "reference_logps":
            out.append(_training_job(n, data, training, 2, True, gpus, hardware))
        elif rule == "rto_reward_model" and "rto" in methods:
            out.append(_training_job(n, data, training, 6, True, gpus, hardware))
        elif rule == "train_rto" and "rto" in methods:
            out.append(_rto(config, n, data, training, gpus, hardware))
        elif rule == ("generate" if run.experiment == "main" else f"generate_{run.experiment}"):
            tokens = _benchmark_tokens(config, run.benchmarks)
            out += [Job(tokens, hardware.hours(2 * n * tokens, GENERATION_UTILISATION["hf"]))] * len(methods)
        elif rule == "capability" and run.experiment == "main" and "capability" in run.benchmarks:
            out += [Job(0.0, CAPABILITY_GPU_HOURS)] * len(methods)
    if rule in ("sft", "init_tiny_instruct"):
        block = {**config["training"], **config["sft_training" if rule == "sft" else "instruct_stand_in_training"]}
        for spec in config["variants"].values():
            name = spec.get("sft", {}).get("data") if rule == "sft" else spec["model"].get("instruct_stand_in")
            if name:
                out.append(_training_job(model_parameters(config, spec), dataset_size(config, name), block, 6, False,
                                         gpus, hardware))  # fmt: skip
    if rule in ("onpolicy_sample", "onpolicy_score"):
        for entry in (e["onpolicy"] for e in config["datasets"].values() if "onpolicy" in e):
            out.append(_onpolicy(config, entry, rule, hardware))
    if rule == "train_reward_model":
        for entry in (m["train"] for m in config.get("reward_models", {}).values() if "train" in m):
            block = {**config["training"], **entry.get("training", {})}
            n = model_parameters(config, {"model": entry["base"]}) if "tiny" in entry["base"] else 8e9
            out.append(_training_job(n, dataset_size(config, entry["data"]), block, 6, True, gpus, hardware))
    return out or None


def plan(
    config: Mapping[str, Any],
    profile: Mapping[str, Any],
    counts: Mapping[str, int],
    hardware: Hardware,
    step_times: Mapping[str, float] | None = None,
    results: Path = Path("results"),
) -> list[Row]:
    """One :class:`Row` per rule of ``counts`` (the DAG's job counts), its jobs costed one by one."""
    step_times = step_times or {}
    rows = []
    for rule, count in sorted(counts.items()):
        if rule == "all":
            continue
        row = Row(rule, count, gpus_of(profile, rule))
        jobs = jobs_of(rule, config, row.gpus_per_job, hardware) if row.gpus_per_job else None
        if jobs:
            if len(jobs) != count:
                row.notes.append(f"{len(jobs)} jobs costed, the DAG has {count}")
            row.tokens = max(j.tokens for j in jobs)
            row.gpu_hours = max(j.gpu_hours for j in jobs)  # the longest job sets the rule's wall time
            row.total_gpu_hours = sum(j.gpu_hours for j in jobs) * count / len(jobs)
            row.steps = max(j.steps for j in jobs)
            row.step_minutes = max(j.step_minutes(row.gpus_per_job) for j in jobs)
        if rule in step_times and row.steps:
            row.gpu_hours = row.steps * step_times[rule] * max(row.gpus_per_job, 1) / 3600
            row.total_gpu_hours = row.gpu_hours * count
            row.step_minutes = step_times[rule] / 60
            row.notes.append(f"measured step time {step_times[rule]} s")
        if rule.startswith("evaluate"):
            row.judge_usd = _judge_cost(config, rule, count, results)
        rows.append(row)
    return rows


def _benchmark_tokens(config: Mapping[str, Any], benchmarks: Mapping[str, Mapping[str, Any]]) -> float:
    """Tokens one model's generation job processes: every benchmark's prompts x turns x (prompt + answer)."""
    tokens = 0.0
    for name, block in benchmarks.items():
        if "prompts" not in block:
            continue
        prompts, turns, prompt_tokens = BENCHMARK_PROMPTS.get(name, (0, 1, 0))
        if not prompts:
            data = dataset_size(config, block["prompts"])
            prompts, prompt_tokens = data.records, data.prompt_tokens
        tokens += prompts * turns * (prompt_tokens + ASSUMED_RESPONSE_TOKENS)
    return tokens


def _onpolicy(config: Mapping[str, Any], entry: Mapping[str, Any], rule: str, hardware: Hardware) -> Job:
    """Sampling: prompts x n samples x (prompt + answer) tokens decoded; scoring: the same tokens, one forward."""
    prompts = dataset_size(config, entry["prompts"])
    answer = min(ASSUMED_RESPONSE_TOKENS, entry.get("decoding", {}).get("max_new_tokens", 2048))
    count = min(prompts.records, entry.get("limit") or prompts.records) * entry.get("n_samples", 5)
    tokens = count * (prompts.prompt_tokens + answer)
    policy = model_parameters(config, config["variants"][entry["policy"]])
    if rule == "onpolicy_sample":
        return Job(tokens, hardware.hours(2 * policy * tokens, GENERATION_UTILISATION[entry.get("backend", "hf")]))
    reward = config["reward_models"][entry["reward_model"]]
    n = MODEL_PARAMETERS.get(reward.get("hub", ""), policy)
    return Job(tokens, hardware.hours(2 * n * tokens))


def _rto(
    config: Mapping[str, Any], n: float, preference: Data, training: Mapping[str, Any], gpus: int, hardware: Hardware
) -> Job:
    """PPO: per sampled response, generation, five forwards (actor, reference, DPO, critic, reward) and
    ``ppo_epochs`` training passes of actor and critic."""
    from baselines.rto import METHOD

    params = METHOD.resolve_params(config["methods"].get("rto", {}))
    answer = min(ASSUMED_RESPONSE_TOKENS, params["max_new_tokens"])
    tokens = preference.records * (preference.prompt_tokens + answer)
    forwards = 2 * n * tokens * 5
    updates = 2 * 6 * n * tokens * params["ppo_epochs"]
    generation = hardware.hours(2 * n * preference.records * answer, GENERATION_UTILISATION["hf"])
    epochs = float(training.get("num_train_epochs", 1))
    iterations = math.ceil(preference.records * epochs / (params["rollout_batch_size"] * max(gpus, 1)))
    return Job(tokens, hardware.hours(forwards + updates) + generation, iterations)


def _judge_cost(config: Mapping[str, Any], rule: str, jobs: int, results: Path) -> float | None:
    """Judge USD of all evaluate jobs of the rule: evals.budget where its files exist, else measured per model."""
    from evals.budget import is_paid, plan_run

    experiment = "main" if rule == "evaluate" else rule.split("_", 1)[1]
    judge = config.get("judge") or {"backend": "offline"}
    total = 0.0
    for row in plan_run(config, results):
        label_experiment, _, benchmark = row.benchmark.rpartition("/")
        if (label_experiment or "main") != experiment:
            continue
        if row.estimate.cost_usd is not None and row.prompts_ready:
            total += row.estimate.cost_usd
        elif is_paid(judge) and benchmark in JUDGE_USD_PER_MODEL:
            total += JUDGE_USD_PER_MODEL[benchmark] * jobs
    return total


# --------------------------------------------------------------------------- the profile


@dataclass(frozen=True)
class Fit:
    rule: str
    runtime_min: float
    job_min: float
    checkpoint_min: float | None
    restarts: int
    fatal: bool


def profile_fit(rows: Sequence[Row], profile: Mapping[str, Any], config: Mapping[str, Any]) -> list[Fit]:
    """Each GPU rule's Slurm runtime against its planned job time and (training) checkpoint interval."""
    fits = []
    for row in rows:
        if not row.gpus_per_job:
            continue
        resources = {
            **(profile.get("default-resources") or {}),
            **((profile.get("set-resources") or {}).get(row.rule) or {}),
        }
        runtime = float(resources.get("runtime", 0))
        job = row.job_hours * 60
        interval = None
        if row.rule in TRAINING_RULES and row.steps:
            block = config["sft_training"] if row.rule == "sft" else config["training"]
            save_steps = {**config["training"], **block}.get("save_steps", 200)
            interval = row.step_minutes * min(save_steps, row.steps)
        restarts = max(0, math.ceil(job / runtime) - 1) if runtime else 0
        fits.append(Fit(row.rule, runtime, job, interval, restarts, interval is not None and runtime < interval))
    return fits


# --------------------------------------------------------------------------- output


def format_plan(rows: Sequence[Row], fits: Sequence[Fit], hardware: Hardware, retries: int) -> str:
    gpus = hardware.nodes * hardware.gpus_per_node
    head = (
        f"{'rule':<22}{'jobs':>6}{'GPU/job':>8}{'tokens/job':>13}{'GPU-h/job':>11}{'GPU-h':>10}{'wall h':>9}"
        f"{'judge $':>11}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        judge = "n/a" if row.judge_usd is None else f"{row.judge_usd:,.0f}"
        lines.append(
            f"{row.rule:<22}{row.jobs:>6}{row.gpus_per_job:>8}{row.tokens:>13.3g}{row.gpu_hours:>11.2f}"
            f"{row.total_gpu_hours:>10.1f}{row.wall_hours(gpus):>9.1f}{judge:>11}"
            + (f"  ({'; '.join(row.notes)})" if row.notes else "")
        )
    total_judge = sum(r.judge_usd or 0.0 for r in rows)
    lines += [
        "-" * len(head),
        f"{'TOTAL':<22}{sum(r.jobs for r in rows):>6}{'':>8}{'':>13}{'':>11}"
        f"{sum(r.total_gpu_hours for r in rows):>10.1f}{sum(r.wall_hours(gpus) for r in rows):>9.1f}"
        f"{total_judge:>11,.0f}",
        "",
        f"Slurm profile against the plan ({hardware.nodes} nodes x {hardware.gpus_per_node} GPUs, retries {retries}):",
    ]
    for fit in fits:
        interval = "" if fit.checkpoint_min is None else f", checkpoint every {fit.checkpoint_min:.0f} min"
        verdict = (
            "NEVER FINISHES: runtime < checkpoint interval"
            if fit.fatal
            else (f"resumes {fit.restarts}x" + (" (MORE THAN retries)" if fit.restarts > retries else ""))
            if fit.restarts
            else "fits"
        )
        lines.append(
            f"  {fit.rule:<22} runtime {fit.runtime_min:>6.0f} min, job {fit.job_min:>8.0f} min{interval}: {verdict}"
        )
    return "\n".join(lines)


def assumptions(hardware: Hardware) -> str:
    lines = [
        "Assumptions:",
        f"- peak {hardware.peak_tflops:.0f} TFLOP/s per GPU (dense bf16); utilisation {hardware.train_utilisation:.0%}"
        f" for training and scoring passes, {GENERATION_UTILISATION['hf']:.0%} (hf) / "
        f"{GENERATION_UTILISATION['vllm']:.0%} (vllm) for generation",
        "- FLOPs: 2N per token and forward, 6N per trained token; DPO-family: chosen and rejected sequences; "
        "TDPO +2N (live reference), KTO +6N (live reference and mismatched pairs); RTO: generation, 5 forwards and "
        "ppo_epochs x 2 trained models per sampled response",
        f"- hub data sizes (records, mean prompt / response tokens): {HUB_DATASETS}",
        f"- benchmark prompts (prompts, turns, prompt tokens): {BENCHMARK_PROMPTS}; generated answers "
        f"{ASSUMED_RESPONSE_TOKENS} tokens; local files counted as characters / {CHARS_PER_TOKEN}",
        f"- capability (lm-eval): {CAPABILITY_GPU_HOURS} GPU-h per model",
        f"- judge USD per model when the benchmark files are not prepared here: {JUDGE_USD_PER_MODEL} "
        "(evals.budget on the real files, expected cost)",
        "- wall time: a rule's jobs in waves that fit the GPUs, stages one after another (sum over rules)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--profile", type=Path, default=Path("slurm/config.yaml"))
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--gpu", choices=sorted(PEAK_TFLOPS), default="h100")
    parser.add_argument("--utilisation", type=float, default=TRAIN_UTILISATION)
    parser.add_argument("--step-time", action="append", default=[], metavar="RULE=SECONDS",
                        help="a measured optimizer-step time of a training rule")  # fmt: skip
    args = parser.parse_args(argv)
    config = load_config(args.config)
    profile = yaml.safe_load(args.profile.read_text())
    hardware = Hardware(args.nodes, args.gpus_per_node, PEAK_TFLOPS[args.gpu], args.utilisation)
    step_times = {}
    for item in args.step_time:
        match = re.fullmatch(r"(\w+)=([0-9.]+)", item)
        if not match:
            parser.error(f"--step-time {item!r}: expected RULE=SECONDS")
        step_times[match.group(1)] = float(match.group(2))
    rows = plan(config, profile, job_counts(args.config), hardware, step_times)
    fits = profile_fit(rows, profile, config)
    print(format_plan(rows, fits, hardware, int(profile.get("retries", 0))))
    print()
    print(assumptions(hardware))
    return 1 if any(f.fatal for f in fits) else 0


if __name__ == "__main__":
    sys.exit(main())
