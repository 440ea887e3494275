"""Step time and peak memory of AAO (default knobs) against DPO on the suite's engine, plus where AAO's extra time goes.

    python workflow/scripts/bench_aao.py                         # CPU: tiny and ~100M Llama
    python workflow/scripts/bench_aao.py --device cuda           # on a GPU
    python workflow/scripts/bench_aao.py --models tiny --steps 30

A step is what the Trainer does per batch: ``PreferenceTrainer.training_step``
(the engine's concatenated forward, the registered loss, backward) and the
optimizer step from ``create_optimizer`` (AdamW, AW module in its own group).
Models are random-init Llamas built here and inputs random token ids with
random reference log-probs: the timing does not depend on what is learnt.
Every (model, method) runs in a fresh subprocess, so that peak memory is its
own: CPU peak is the process's max RSS (``resource.getrusage``), reported
absolute and as the rise over the state after the model, optimizer and batch
were built; on CUDA it is ``torch.cuda.max_memory_allocated``. Step time is the
median (and interquartile range) over ``--steps`` steps after ``--warmup``.

``--profile`` (default on) runs one more subprocess per model that times the
parts of AAO's loss (similarity, AW thresholds with their features, weights,
loss terms, logged metrics) and a torch.profiler comparison of AAO and DPO
steps: the operators with the largest extra self time under AAO.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench_common import PAD, REPO, build_llama, random_items, sync, with_random_reference

# model -> per-device defaults {device: (pairs per batch, prompt length, response length)}; sizes in bench_common
SHAPES = {"tiny": {"cpu": (8, 32, 96), "cuda": (8, 64, 448)}, "100m": {"cpu": (2, 32, 96), "cuda": (8, 64, 448)}}
DEFAULT_STEPS = {"cpu": {"tiny": (20, 3), "100m": (5, 1)}, "cuda": {"tiny": (30, 5), "100m": (20, 3)}}

# Rows of the table: the registered method, and what changes. The last row is
# the knob that trims AAO's extra time (see print_profile): aw_features=logp
# (AW inputs without the entropies of the forward's logits).
VARIANTS = {
    "dpo": ("dpo", {}),
    "aao": ("aao", {}),
    "aao aw_features=logp": ("aao", {"aw_features": "logp"}),
}

# The parts of aao.method.aao_loss that are timed with --profile (names in aao.method's namespace).
AAO_PARTS = {
    "response_representations": "representations (detach)",
    "token_similarity": "similarity: cosine matrix, max, min-max (Eq. 7)",
    "policy_features": "AW features: log-prob stats + entropies of the forward's logits",
    "find_thresholds_module": "AW lookup",
    "token_weights": "weights (Eqs. 14-17) + renormalise",
    "preference_term": "weighted DPO term",
    "contrastive_terms": "contrastive S_pref, S_dis",
    "reward_loss": "reward term",
    "chosen_reward": "metrics: R_chosen",
    "weighted_logratios": "metrics: unweighted margins",
    "token_classes": "metrics: token classes",
    "class_statistics": "metrics: class shares / weights",
}


# ---------------------------------------------------------------- worker (one fresh process per config)


def build(model_name: str, method_name: str, device: str, batch: int, prompt: int, response: int, seed: int = 0):
    from transformers import TrainingArguments

    from suite.engine import PreferenceCollator, PreferenceTrainer
    from suite.methods import get_method

    model = build_llama(model_name, max_positions=max(512, prompt + response + 8), seed=seed, tie=model_name == "100m")
    registered, overrides = VARIANTS[method_name]
    method = get_method(registered)
    params = {**method.defaults, **overrides}
    scratch = tempfile.mkdtemp(prefix="bench-aao-")
    args = TrainingArguments(
        output_dir=scratch, report_to=[], use_cpu=device == "cpu", learning_rate=1e-5, per_device_train_batch_size=batch
    )
    trainer = PreferenceTrainer(model=model, args=args, method=method, method_params=params)
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train's loop, which is not used here
    items = with_random_reference(random_items(model.config.vocab_size, batch, prompt, response, seed=seed + 1))
    inputs = PreferenceCollator(pad_token_id=PAD)(items)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    return trainer, inputs, n_params


def one_step(trainer, inputs) -> None:
    trainer.training_step(trainer.model, inputs)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def worker_time(args: argparse.Namespace) -> dict:
    import torch

    trainer, inputs, n_params = build(args.model, args.method, args.device, args.batch, args.prompt, args.response)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_mem = torch.cuda.memory_allocated() / 2**20
    base_rss = max_rss_mib()
    for _ in range(args.warmup):
        one_step(trainer, inputs)
    sync(args.device)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        one_step(trainer, inputs)
        sync(args.device)
        times.append((time.perf_counter() - start) * 1000.0)
    result = {"params": n_params, "times_ms": times, "rss_peak_mib": max_rss_mib(), "rss_base_mib": base_rss}
    if args.device == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["cuda_base_mib"] = base_mem
    return result


def worker_profile(args: argparse.Namespace) -> dict:
    """AAO's loss parts (ms per step) and the per-operator self time of AAO and DPO steps."""
    from torch.profiler import ProfilerActivity, profile

    import aao.method as aao_method
    import suite.engine as engine

    part_ms: dict[str, list[float]] = defaultdict(list)

    def timed(name, fn):
        def wrapper(*a, **k):
            sync(args.device)
            start = time.perf_counter()
            out = fn(*a, **k)
            sync(args.device)
            part_ms[name].append((time.perf_counter() - start) * 1000.0)
            return out

        return wrapper

    originals = {name: getattr(aao_method, name) for name in AAO_PARTS}
    originals_engine = {"forward_outputs": engine.forward_outputs}
    results: dict = {"parts": {}, "ops": {}}
    for method_name in ("dpo", "aao"):
        trainer, inputs, _ = build(args.model, method_name, args.device, args.batch, args.prompt, args.response)
        for _ in range(args.warmup):
            one_step(trainer, inputs)
        # (1) wall time of the loss parts and of the engine's forward, per step
        part_ms.clear()
        engine.forward_outputs = timed("engine forward (model + token log-probs)", originals_engine["forward_outputs"])
        loss_fn = trainer.method.loss
        trainer.method = type(trainer.method)(
            **{**trainer.method.__dict__, "loss": timed("method loss (total)", loss_fn)}
        )
        if method_name == "aao":
            for name in AAO_PARTS:
                setattr(aao_method, name, timed(name, originals[name]))
        steps = []
        for _ in range(args.steps):
            sync(args.device)
            start = time.perf_counter()
            one_step(trainer, inputs)
            sync(args.device)
            steps.append((time.perf_counter() - start) * 1000.0)
        for name, value in originals.items():
            setattr(aao_method, name, value)
        engine.forward_outputs = originals_engine["forward_outputs"]
        trainer.method = type(trainer.method)(**{**trainer.method.__dict__, "loss": loss_fn})
        parts = {name: statistics.median(v) * len(v) / args.steps for name, v in part_ms.items()}
        parts["step (total)"] = statistics.median(steps)
        results["parts"][method_name] = parts
        # (2) operator self times under torch.profiler
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(args.steps):
                one_step(trainer, inputs)
            sync(args.device)
        attr = "self_device_time_total" if args.device == "cuda" else "self_cpu_time_total"
        results["ops"][method_name] = {
            e.key: getattr(e, attr) / 1000.0 / args.steps for e in prof.key_averages() if getattr(e, attr) > 0
        }
        del trainer, inputs
    return results


# ---------------------------------------------------------------- driver


def run_worker(kind: str, model: str, method: str, device: str, shape, steps: int, warmup: int, threads: int) -> dict:
    command = [
        sys.executable, __file__, "--worker", kind, "--models", model, "--method", method, "--device", device,
        "--batch", str(shape[0]), "--prompt", str(shape[1]), "--response", str(shape[2]),
        "--steps", str(steps), "--warmup", str(warmup),
    ]  # fmt: skip
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"worker {kind} {model} {method} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--models", default="tiny,100m", help="comma-separated: tiny, 100m")
    parser.add_argument("--steps", type=int, help="measured steps (default per model and device)")
    parser.add_argument("--warmup", type=int, help="unmeasured steps first (default per model and device)")
    parser.add_argument("--batch", type=int, help="pairs per batch (default per model and device)")
    parser.add_argument("--prompt", type=int, help="prompt tokens")
    parser.add_argument("--response", type=int, help="tokens per response")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of the workers (0: torch's default)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument(
        "--no-proposals", dest="proposals", action="store_false", help="time only DPO and AAO, not the speed-up rows"
    )
    parser.add_argument("--top", type=int, default=10, help="operators listed in the profile")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--worker", choices=["time", "profile"], help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        os.environ.setdefault("TQDM_DISABLE", "1")
        args.model = args.models
        result = worker_time(args) if args.worker == "time" else worker_profile(args)
        print(json.dumps(result))
        return

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    raw: dict = {"device": device_name, "runs": {}, "profiles": {}}
    rows = []
    for model in args.models.split(","):
        default_shape = SHAPES[model][args.device]
        shape = (args.batch or default_shape[0], args.prompt or default_shape[1], args.response or default_shape[2])
        steps, warmup = DEFAULT_STEPS[args.device][model]
        steps, warmup = args.steps or steps, args.warmup if args.warmup is not None else warmup
        results = {}
        for method in VARIANTS if args.proposals else ("dpo", "aao"):
            print(f"[bench] {model} {method}: {steps} steps after {warmup} warm-up, shape {shape}", file=sys.stderr)
            results[method] = run_worker("time", model, method, args.device, shape, steps, warmup, args.threads)
            raw["runs"][f"{model}/{method}"] = results[method]
        dpo_median = quartiles(results["dpo"]["times_ms"])[1]
        for method, result in results.items():
            q1, median, q3 = quartiles(result["times_ms"])
            if args.device == "cuda":
                memory = f"{result['cuda_peak_mib']:.0f} MiB (+{result['cuda_peak_mib'] - result['cuda_base_mib']:.0f})"
            else:
                memory = f"{result['rss_peak_mib']:.0f} MiB (+{result['rss_peak_mib'] - result['rss_base_mib']:.0f})"
            rows.append(
                f"| {model} | {fmt_params(result['params'])} | {shape[0]}x({shape[1]}+{shape[2]}) | {method} | "
                f"{median:.1f} ({q1:.1f}-{q3:.1f}) | {median / dpo_median:.2f}x | {memory} |"
            )
        if args.profile:
            print(f"[bench] {model}: profiling", file=sys.stderr)
            pw = max(1, warmup)
            raw["profiles"][model] = run_worker(
                "profile", model, "aao", args.device, shape, min(steps, 5), pw, args.threads
            )

    memory_kind = "peak CUDA allocated (rise in step)" if args.device == "cuda" else "peak RSS (rise in steps)"
    print(f"\n## AAO vs DPO step time on {device_name}\n")
    print(
        "Step = PreferenceTrainer.training_step (forward, loss, backward) + AdamW step; "
        "batch = pairs x (prompt + response).\n"
    )
    print(f"| model | params | batch | method | step ms, median (IQR) | vs DPO | {memory_kind} |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    for model, profile_result in raw["profiles"].items():
        print_profile(model, profile_result, args.top)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2))


def print_profile(model: str, result: dict, top: int) -> None:
    parts = result["parts"]
    print(f"\n### {model}: where the time goes (ms per step, median of timed steps)\n")
    print("| part | DPO | AAO |")
    print("|---|---|---|")
    for name in ("step (total)", "engine forward (model + token log-probs)", "method loss (total)"):
        print(f"| {name} | {parts['dpo'].get(name, 0.0):.2f} | {parts['aao'].get(name, 0.0):.2f} |")
    aao_parts = sorted(((v, k) for k, v in parts["aao"].items() if k in AAO_PARTS), reverse=True)
    for value, name in aao_parts:
        print(f"| AAO loss part: {AAO_PARTS[name]} (`{name}`) | | {value:.2f} |")
    ops = result["ops"]
    extra = sorted(
        ((ops["aao"].get(k, 0.0) - ops["dpo"].get(k, 0.0), k) for k in set(ops["aao"]) | set(ops["dpo"])),
        reverse=True,
    )
    print(f"\n### {model}: operators with the most extra self time under AAO (torch.profiler, ms per step)\n")
    print("| operator | DPO | AAO | extra |")
    print("|---|---|---|---|")
    for value, name in extra[:top]:
        print(f"| `{name}` | {ops['dpo'].get(name, 0.0):.2f} | {ops['aao'].get(name, 0.0):.2f} | {value:+.2f} |")
    total_dpo, total_aao = sum(ops["dpo"].values()), sum(ops["aao"].values())
    print(f"| (all operators) | {total_dpo:.2f} | {total_aao:.2f} | {total_aao - total_dpo:+.2f} |")


if __name__ == "__main__":
    main()
