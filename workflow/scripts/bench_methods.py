"""Training-step time of every baseline against DPO on the same model and batch, on the suite's engine.

    python workflow/scripts/bench_methods.py                      # CPU, tiny and small Llamas
    python workflow/scripts/bench_methods.py --models tiny --steps 30 --threads 1
    python workflow/scripts/bench_methods.py --device cuda --models small,100m

A step is what the Trainer does per batch: ``PreferenceTrainer.training_step``
(the engine's forwards, the registered loss, backward) followed by the
optimizer step and ``zero_grad``. Every method starts from the same random
Llama and sees the same batch of random token ids; methods with a precomputed
reference get random stored log-probs (computing those is a one-off rule, not
part of a step), methods with a live reference get a frozen copy of the model.
The runs are stepped round-robin (all models are held at once), so a change
in the machine's load hits every method alike. The table gives the median
step time over ``--steps`` steps after ``--warmup``, its ratio to DPO's, and on
CUDA the peak memory a step allocates on top of what was held before it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

from bench_common import MODELS, PAD, build_llama, random_items, with_random_reference

RUNS = {  # run name -> (registered method, parameters over its defaults)
    "dpo": ("dpo", {}),
    "dpo_random": ("dpo_random", {}),
    "ipo": ("ipo", {}),
    "simpo": ("simpo", {}),
    "kto": ("kto", {}),
    "tdpo1": ("tdpo", {"variant": 1}),
    "tdpo2": ("tdpo", {"variant": 2}),
}
# Model forwards per step (policy with gradient, policy without, reference), for reading the table.
FORWARDS = {"dpo": "1", "dpo_random": "1", "ipo": "1", "simpo": "1", "kto": "1 + 1 + 2 ref", "tdpo": "1 + 1 ref"}


def make_inputs(vocab: int, pairs: int, prompt: int, response: int, seed: int):
    """A batch as the engine's collator makes it (B chosen rows, then B rejected ones, padded), random reference."""
    from suite.engine import PreferenceCollator

    return PreferenceCollator(PAD)(with_random_reference(random_items(vocab, pairs, prompt, response, seed)))


def setup_run(run: str, base, inputs, args, out_dir: Path) -> dict:
    """Trainer, optimizer, model and batch of one run, ready to step."""
    import torch
    from transformers import TrainingArguments

    from suite.engine import PreferenceCollator, PreferenceTrainer
    from suite.methods import get_method

    name, params = RUNS[run]
    method = get_method(name)
    model = copy.deepcopy(base).to(args.device).train()
    reference = copy.deepcopy(base).eval() if method.reference == "live" else None
    trainer = PreferenceTrainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(out_dir / run), report_to=[], use_cpu=args.device == "cpu", learning_rate=1e-5
        ),
        data_collator=PreferenceCollator(0),
        method=method,
        method_params={**method.defaults, **params},
        ref_model=reference,
    )
    optimizer = trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train() otherwise
    batch = {k: v.to(args.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    if method.reference != "precomputed":
        batch.pop("ref_logps")
    return {"trainer": trainer, "optimizer": optimizer, "model": model, "batch": batch, "times": [], "peak": 0.0}


def step(state: dict, cuda: bool) -> float:
    """One training step; returns its wall time and records the step's peak extra CUDA memory."""
    import torch

    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    state["trainer"].training_step(state["model"], state["batch"])
    state["optimizer"].step()
    state["optimizer"].zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
        state["peak"] = max(state["peak"], (torch.cuda.max_memory_allocated() - before) / 2**30)
    return time.perf_counter() - start


def bench(runs: list[str], base, inputs, args, out_dir: Path) -> dict[str, dict]:
    """Steps the runs round-robin, so that a change in machine load hits every method alike."""
    states = {run: setup_run(run, base, inputs, args, out_dir) for run in runs}
    cuda = args.device.startswith("cuda")
    for index in range(args.warmup + args.steps):
        for state in states.values():
            elapsed = step(state, cuda)
            if index >= args.warmup:
                state["times"].append(elapsed)
    return {
        run: {
            "median_s": statistics.median(s["times"]),
            "min_s": min(s["times"]),
            "peak_gib": s["peak"] if cuda else None,
        }
        for run, s in states.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,small", help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated, of " + ", ".join(RUNS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", type=int, default=4, help="pairs per batch (the engine's B)")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--response", type=int, default=96)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)

    import torch
    from transformers.utils import logging

    logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = args.runs.split(",")
    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, batch {args.pairs} pairs x "
        f"({args.prompt} prompt + {args.response} response) tokens, median of {args.steps} steps after {args.warmup}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in args.models.split(","):
            size = MODELS[model_name]
            base = build_llama(model_name, max_positions=args.prompt + args.response + 8)
            inputs = make_inputs(size["vocab_size"], args.pairs, args.prompt, args.response, seed=0)
            n_params = sum(p.numel() for p in base.parameters()) / 1e6
            print(f"\nmodel {model_name}: {n_params:.1f}M parameters, vocabulary {size['vocab_size']}")
            results = bench(runs, base, inputs, args, Path(tmp))
            dpo, dpo_min = results.get("dpo", {}).get("median_s"), results.get("dpo", {}).get("min_s")
            header = f"{'method':<11} {'forwards/step':<14} {'ms/step':>9} {'min ms':>8} {'x DPO':>6} {'x DPO min':>9}"
            print(header + ("  step peak GiB" if args.device.startswith("cuda") else ""))
            for run, r in results.items():
                ratio = f"{r['median_s'] / dpo:6.2f} {r['min_s'] / dpo_min:9.2f}" if dpo else f"{'-':>6} {'-':>9}"
                line = (
                    f"{run:<11} {FORWARDS[RUNS[run][0]]:<14} {1e3 * r['median_s']:9.1f} {1e3 * r['min_s']:8.1f} {ratio}"
                )
                print(line + (f"  {r['peak_gib']:8.2f}" if r["peak_gib"] is not None else ""))


if __name__ == "__main__":
    main()
