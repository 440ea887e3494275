"""The suite's engine against TRL 1.16's trainers, side by side: step time, peak memory, where the time goes.

    python workflow/scripts/bench_trl.py                          # CPU: the side-by-side table, a few minutes
    python workflow/scripts/bench_trl.py --tables paper-memory    # peak memory at Llama-3.1's vocabulary
    python workflow/scripts/bench_trl.py --models small,100m --steps 5 --methods dpo,simpo
    python workflow/scripts/bench_trl.py --device cuda --dtype bfloat16 --models small,100m

Sides. Each method runs on the suite's engine (``PreferenceTrainer`` with the registered loss) and on TRL's
trainer for it, in each configuration of ``SIDES``: DPO and IPO on ``DPOTrainer`` with precomputed reference
log-probs (its fastest configuration; TRL 1.16's ``padding_free`` is "temporarily unavailable": setting it warns
and falls back to padding, so there is no padding-free side to time), SimPO on the experimental ``CPOTrainer``
(``loss_type="simpo"``, ``cpo_alpha=0``), KTO on ``KTOTrainer`` with a live reference (as the suite's KTO) and
with precomputed reference log-probs (TRL's fastest: it fixes each example's mismatched KL completion when the
data is prepared, so the reference's log-probs on it can be precomputed too).

Same things. Every side gets its own copy of one random-init Llama (policy = reference + seeded noise), the same
token ids (rejected responses shorter, so batches carry padding), the same reference log-probs (computed once by
the suite's engine on the reference, summed for TRL), the same optimizer (the Trainer's AdamW at one learning
rate) and dtype (weights in ``--dtype``, no autocast: TRL's bf16 is off). Before anything is timed the first
step's losses must agree (``check_first_losses``) and the optimizers must match (``check_same_optimizer``):
otherwise the run stops rather than time unlike things.

A step is what training does per batch: collate the examples with the side's own collator, ``training_step``
(forward, loss, backward), then the optimizer's step and zero_grad. The sides of a method are stepped
round-robin in one process, so load changes hit them alike; step time is the median (min-max) over ``--steps``
steps after the checked first one. Where the time goes is read from the same steps: collation, the model's
forwards, the log-prob computation (TRL's fused LM head computes the projection inside it, and recomputes it in
its backward), the loss with its metrics, backward and the optimizer. Peak memory is measured per side in its
own process (no other side's buffers in it): peak resident memory during ``--memory-steps`` steps on the
CPU, peak allocated CUDA memory on a GPU; its rise is over the process after setup.

glibc's malloc decides much of the CPU numbers: with its defaults every buffer above the mmap threshold (at most
32 MiB) is mapped and zero-filled afresh each step; with ``MALLOC_MMAP_MAX_=0`` freed buffers are reused from the
heap (faster, more resident memory). The settings in force (``MALLOC_*`` environment variables, threads) are
printed with the table.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_common import (
    MODELS,
    PAD,
    allocator_settings,
    build_llama,
    memory_now_mib,
    peak_memory_mib,
    perturbed,
    random_items,
    reset_peak_memory,
    run_isolated,
    sync,
)

SHAPES = {"short": (4, 64, 192), "long": (2, 64, 960)}  # pairs per batch, prompt tokens, response tokens
LEARNING_RATE = 1e-5
PARAMS = {  # the suite's parameters; TRL's configs get the same values under their names
    "dpo": {"beta": 0.1},
    "ipo": {"tau": 0.1},
    "simpo": {"beta": 2.0, "gamma_beta_ratio": 0.5, "label_smoothing": 0.0},
    "kto": {"beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.0},
}
# |first-step loss difference| allowed, relative to the loss (at least 1 in scale): float32 sums of up to ~2k
# per-token log-probs, added in another order, agree to ~1e-6 of their size; bf16 logits to ~1e-2.
LOSS_RTOL = {"float32": 1e-4, "bfloat16": 2e-2}
PAPER_MEMORY = [(128256, 512), (128256, 1024), (128256, 2048), (32000, 2048)]  # (vocabulary, tokens per sequence)
BREAKDOWN = ("collate", "forward", "log-probs", "loss", "backward", "optimizer")


class UnlikeSides(RuntimeError):
    """The sides of a comparison do not compute the same thing: timing them would mislead."""


# ---------------------------------------------------------------- where the time goes


class StepTimer:
    """Wall time of named parts of each step; parts may nest (a model forward inside compute_loss)."""

    current: StepTimer | None = None  # the side being stepped; module-level hooks report to it

    def __init__(self, device: str) -> None:
        self.device = device
        self.steps: list[dict[str, float]] = []

    def new_step(self) -> None:
        self.steps.append(defaultdict(float))
        StepTimer.current = self

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.steps[-1][name] += time.perf_counter() - start


def timed(name: str, fn: Callable) -> Callable:
    """``fn``, its calls counted under ``name`` in the current side's step."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        timer = StepTimer.current
        if timer is None:
            return fn(*args, **kwargs)
        with timer.part(name):
            return fn(*args, **kwargs)

    return wrapper


@functools.cache
def install_log_prob_hooks() -> None:
    """Count the log-prob computations of both libraries under "logps": the suite's ``response_logps`` and
    ``token_logps``, TRL's fused LM head (``trl.trainer.utils._ChunkedLogProbFunction``, projection included) and
    CPOTrainer's ``selective_log_softmax``."""
    import types

    import trl.experimental.cpo.cpo_trainer as cpo_module
    import trl.trainer.utils as trl_utils

    import suite.engine as engine

    engine.token_logps = timed("logps", engine.token_logps)
    engine.response_logps = timed("logps", engine.response_logps)
    fused = trl_utils._ChunkedLogProbFunction
    trl_utils._ChunkedLogProbFunction = types.SimpleNamespace(apply=timed("logps", fused.apply))
    cpo_module.selective_log_softmax = timed("logps", cpo_module.selective_log_softmax)


def breakdown(step: dict[str, float], logps_in_forward: bool) -> dict[str, float]:
    """One step's parts in seconds: the forward excludes the log-probs, the loss is the rest of compute_loss."""
    logps = step.get("logps", 0.0)
    model = step.get("model", 0.0) - (logps if logps_in_forward else 0.0)
    loss = step["compute_loss"] - model - logps
    return {
        "collate": step["collate"],
        "forward": model,
        "log-probs": logps,
        "loss": loss,
        "backward": step["training_step"] - step["compute_loss"],
        "optimizer": step["optimizer"],
        "step": step["collate"] + step["training_step"] + step["optimizer"],
    }


# ---------------------------------------------------------------- the shared workload and the sides


@dataclass
class Workload:
    """One model, batch and reference, from which every side takes its own copies."""

    model: str
    shape: tuple[int, int, int]
    device: str
    dtype: str
    reference: Any
    policy: Any
    items: list[dict[str, Any]]  # the suite's dataset items, with the reference's per-token log-probs
    kl_ref_logps: list[float]  # the reference's summed log-probs on the 2B mismatched (KL) examples
    scratch: Path

    @property
    def pairs(self) -> int:
        return self.shape[0]


def make_workload(
    model: str, shape: tuple[int, int, int], device: str, dtype: str, scratch: Path, vocab: int | None = None
) -> Workload:
    """The reference, the policy (reference + seeded noise) and the batch; reference log-probs by the suite."""
    import torch

    from suite.engine import PreferenceCollator, forward_batch, mismatched_inputs
    from suite.reference import reference_logps

    pairs, prompt, response = shape
    reference = build_llama(model, max_positions=prompt + response + 8, vocab_size=vocab, dtype=dtype).to(device)
    policy = perturbed(reference)
    items = random_items(reference.config.vocab_size, pairs, prompt, response)
    stored = reference_logps(reference, items, PAD, batch_size=pairs)
    items = [
        {**it, "ref_chosen_logps": stored[it["id"]]["chosen"], "ref_rejected_logps": stored[it["id"]]["rejected"]}
        for it in items
    ]
    inputs = PreferenceCollator(PAD)(items)
    kl_inputs = {k: v.to(device) for k, v in mismatched_inputs(inputs).items()}
    with torch.no_grad():
        logps, mask, _ = forward_batch(reference, kl_inputs)
    kl_ref = (logps * mask).sum(-1).float().cpu().tolist()
    return Workload(model, shape, device, dtype, reference, policy, items, kl_ref, scratch)


@dataclass
class Side:
    """One trainer, ready to step: its model, optimizer, examples in its own format and its own collator."""

    name: str
    trainer: Any
    model: Any
    optimizer: Any
    examples: list[dict[str, Any]]
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    logps_in_forward: bool  # TRL's fused LM head computes the log-probs inside the model's forward
    timer: StepTimer = field(init=False)

    def __post_init__(self) -> None:
        self.timer = StepTimer(str(self.trainer.args.device))
        self.trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train's loop, which is not used
        self.trainer.compute_loss = timed("compute_loss", self.trainer.compute_loss)
        reference = getattr(self.trainer, "ref_model", None)
        for module in (self.model, reference) if reference is not None else (self.model,):
            module.forward = timed("model", module.forward)

    def step(self) -> float:
        """One training step; returns its loss."""
        self.timer.new_step()
        with self.timer.part("collate"):
            batch = self.collate(self.examples)
        with self.timer.part("training_step"):
            loss = self.trainer.training_step(self.model, batch)
        with self.timer.part("optimizer"):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        StepTimer.current = None
        return loss.item()


def common_args(work: Workload, name: str, batch_size: int) -> dict[str, Any]:
    """Training arguments every side shares: the same optimizer, learning rate and precision."""
    return {
        "output_dir": str(work.scratch / name.replace(" ", "_")),
        "report_to": [],
        "use_cpu": work.device == "cpu",
        "learning_rate": LEARNING_RATE,
        "per_device_train_batch_size": batch_size,
        "bf16": False,
        "fp16": False,
        "gradient_checkpointing": False,
        "seed": 0,
    }


def finish(name: str, trainer: Any, model: Any, examples: list, collate: Callable, logps_in_forward: bool) -> Side:
    return Side(name, trainer, model, trainer.create_optimizer(), examples, collate, logps_in_forward)


def suite_side(work: Workload, method_name: str, params: dict[str, Any]) -> Side:
    """The suite's engine with the registered method; a live reference is a frozen copy of the reference."""
    import copy

    from transformers import TrainingArguments

    from suite.engine import PreferenceCollator, PreferenceTrainer
    from suite.methods import get_method

    method = get_method(method_name)
    model = copy.deepcopy(work.policy)
    trainer = PreferenceTrainer(
        model=model,
        args=TrainingArguments(**common_args(work, f"suite-{method_name}", work.pairs)),
        data_collator=PreferenceCollator(PAD),
        method=method,
        method_params=method.resolve_params(params),
        ref_model=copy.deepcopy(work.reference) if method.reference == "live" else None,
    )
    examples = work.items if method.reference == "precomputed" else [_without_reference(it) for it in work.items]
    return finish(f"suite {method_name}", trainer, model, examples, PreferenceCollator(PAD), False)


def _without_reference(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("ref_")}


@functools.cache
def bench_tokenizer():
    """A small tokenizer for TRL's constructors (they tokenise a placeholder dataset; steps get the token ids)."""
    from suite.models import train_tokenizer

    tokenizer = train_tokenizer(["yes no maybe hello world"] * 8, vocab_size=300)
    assert tokenizer.pad_token_id == PAD, "the benchmark pads with the suite's pad id"
    return tokenizer


def summed(logps) -> float:
    """A response's summed reference log-probs, as TRL's precomputed columns hold them."""
    import torch

    return torch.as_tensor(logps, dtype=torch.float32).sum().item()


def placeholder_dataset(rows: int):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": "hello", "chosen": " yes", "rejected": " no"}] * rows)


def trl_dpo_side(work: Workload, loss_type: str, params: dict[str, Any]) -> Side:
    """TRL's DPOTrainer with precomputed reference log-probs (the suite's, summed): no reference model is held."""
    import copy

    from trl import DPOConfig, DPOTrainer

    beta = params["beta"] if loss_type == "sigmoid" else params["tau"]
    model = copy.deepcopy(work.policy)
    args = DPOConfig(
        **common_args(work, f"trl-dpo-{loss_type}", work.pairs),
        beta=beta,
        loss_type=[loss_type],
        precompute_ref_log_probs=True,
        max_length=None,
    )
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=placeholder_dataset(work.pairs), processing_class=bench_tokenizer()
    )
    examples = [
        {
            "prompt_ids": it["prompt_ids"],
            "chosen_ids": it["chosen_ids"],
            "rejected_ids": it["rejected_ids"],
            "ref_chosen_logps": summed(it["ref_chosen_logps"]),
            "ref_rejected_logps": summed(it["ref_rejected_logps"]),
        }
        for it in work.items
    ]
    return finish(f"trl DPOTrainer {loss_type}, precomputed ref", trainer, model, examples, trainer.data_collator, True)


def trl_cpo_side(work: Workload, params: dict[str, Any]) -> Side:
    """TRL's CPOTrainer as SimPO (loss_type simpo, cpo_alpha 0), on the same token ids in its own row format."""
    import copy

    from trl.experimental.cpo import CPOConfig, CPOTrainer

    beta = params["beta"]
    model = copy.deepcopy(work.policy)
    args = CPOConfig(
        **common_args(work, "trl-cpo", work.pairs),
        loss_type="simpo",
        cpo_alpha=0.0,
        beta=beta,
        simpo_gamma=params["gamma_beta_ratio"] * beta,
        label_smoothing=params["label_smoothing"],
        max_length=sum(work.shape[1:]) + 8,
        remove_unused_columns=False,  # its collator needs every column (it says so, and sets it, otherwise)
    )
    trainer = CPOTrainer(
        model=model, args=args, train_dataset=placeholder_dataset(work.pairs), processing_class=bench_tokenizer()
    )
    examples = []
    for it in work.items:
        row = {}
        for side in ("chosen", "rejected"):
            ids = it["prompt_ids"] + it[f"{side}_ids"]
            row[f"{side}_input_ids"] = ids
            row[f"{side}_attention_mask"] = [1] * len(ids)
            row[f"{side}_labels"] = [-100] * len(it["prompt_ids"]) + it[f"{side}_ids"]
        examples.append(row)
    return finish("trl CPOTrainer simpo", trainer, model, examples, trainer.data_collator, False)


def trl_kto_side(work: Workload, params: dict[str, Any], precomputed: bool) -> Side:
    """TRL's KTOTrainer on the B pairs as 2B unpaired examples (chosen ones desirable, then the rejected ones), each
    with the completion of the example before it as its KL completion (the suite's mismatched pairs); with a live
    reference or with the reference's log-probs precomputed (the suite's, summed)."""
    import copy

    from trl import KTOConfig, KTOTrainer

    model = copy.deepcopy(work.policy)
    args = KTOConfig(
        **common_args(work, f"trl-kto-{precomputed}", 2 * work.pairs),
        beta=params["beta"],
        desirable_weight=params["desirable_weight"],
        undesirable_weight=params["undesirable_weight"],
        precompute_ref_log_probs=precomputed,
        max_length=None,
    )
    trainer = KTOTrainer(
        model=model,
        ref_model=None if precomputed else copy.deepcopy(work.reference),
        args=args,
        train_dataset=placeholder_dataset(2 * work.pairs),
        processing_class=bench_tokenizer(),
    )
    completions = [(it, "chosen") for it in work.items] + [(it, "rejected") for it in work.items]
    examples = []
    for index, (it, side) in enumerate(completions):
        before, before_side = completions[index - 1]
        example = {
            "prompt_ids": it["prompt_ids"],
            "completion_ids": it[f"{side}_ids"],
            "KL_completion_ids": before[f"{before_side}_ids"],
            "label": side == "chosen",
        }
        if precomputed:
            example["ref_logps"] = summed(it[f"ref_{side}_logps"])
            example["ref_KL_logps"] = work.kl_ref_logps[index]
        examples.append(example)
    name = f"trl KTOTrainer, {'precomputed' if precomputed else 'live'} ref"
    return finish(name, trainer, model, examples, trainer.data_collator, True)


# method -> side name -> builder(workload, params). The first side is the suite's.
SIDES: dict[str, dict[str, Callable[[Workload, dict[str, Any]], Side]]] = {
    "dpo": {
        "suite": lambda w, p: suite_side(w, "dpo", p),
        "trl precomputed": lambda w, p: trl_dpo_side(w, "sigmoid", p),
    },
    "ipo": {
        "suite": lambda w, p: suite_side(w, "ipo", p),
        "trl precomputed": lambda w, p: trl_dpo_side(w, "ipo", p),
    },
    "simpo": {
        "suite": lambda w, p: suite_side(w, "simpo", p),
        "trl cpo": trl_cpo_side,
    },
    "kto": {
        "suite": lambda w, p: suite_side(w, "kto", p),
        "trl live": lambda w, p: trl_kto_side(w, p, precomputed=False),
        "trl precomputed": lambda w, p: trl_kto_side(w, p, precomputed=True),
    },
}


def build_sides(work: Workload, method: str, params: dict[str, dict[str, Any]] | None = None) -> dict[str, Side]:
    """Every side of ``method``; ``params`` overrides a side's parameters (the tests make unlike sides with it)."""
    install_log_prob_hooks()
    overrides = params or {}
    return {key: build(work, {**PARAMS[method], **overrides.get(key, {})}) for key, build in SIDES[method].items()}


# ---------------------------------------------------------------- the checks


def check_first_losses(losses: dict[str, float], dtype: str) -> dict[str, float]:
    """Each side's first-step loss against the suite's (the first side); raises UnlikeSides beyond tolerance.

    Returns |difference| per side.
    """
    (suite_key, suite_loss), *others = losses.items()
    allowed = LOSS_RTOL[dtype] * max(1.0, abs(suite_loss))
    differences = {suite_key: 0.0}
    for key, loss in others:
        differences[key] = abs(loss - suite_loss)
        if not differences[key] <= allowed:  # NaN fails too
            raise UnlikeSides(
                f"first-step losses differ: {suite_key} {suite_loss:.8g}, {key} {loss:.8g} "
                f"(|diff| {differences[key]:.3g} > {allowed:.3g}): refusing to time unlike things"
            )
    return differences


OPTIMIZER_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "foreach", "fused", "maximize")


def check_same_optimizer(sides: dict[str, Side]) -> str:
    """The same optimizer class and hyperparameters on every side; returns its description."""
    described = {
        key: (type(side.optimizer).__name__, tuple(side.optimizer.defaults.get(k) for k in OPTIMIZER_KEYS))
        for key, side in sides.items()
    }
    if len(set(described.values())) != 1:
        raise UnlikeSides(f"optimizers differ: {described}: refusing to time unlike things")
    name, values = next(iter(described.values()))
    return f"{name}({', '.join(f'{k}={v}' for k, v in zip(OPTIMIZER_KEYS, values, strict=True))})"


# ---------------------------------------------------------------- workers (each in its own process)


@dataclass(frozen=True)
class Run:
    """How every worker runs: device, weights' dtype, torch CPU threads (0: torch's default)."""

    device: str
    dtype: str
    threads: int = 0

    def start(self) -> None:
        """Called first in each worker."""
        import torch

        quiet_libraries()  # already done before forking; a spawned worker (CUDA) starts afresh
        if self.threads:
            torch.set_num_threads(self.threads)


def time_method(run: Run, model: str, shape: tuple, method: str, steps: int) -> dict[str, Any]:
    """Check, then step the sides of ``method`` round-robin; step times and their breakdown per side."""
    run.start()
    with tempfile.TemporaryDirectory() as scratch:
        work = make_workload(model, shape, run.device, run.dtype, Path(scratch))
        sides = build_sides(work, method)
        optimizer = check_same_optimizer(sides)
        differences = check_first_losses({key: side.step() for key, side in sides.items()}, run.dtype)
        for _ in range(steps):
            for side in sides.values():
                side.step()
        result = {"params": sum(p.numel() for p in work.policy.parameters()), "optimizer": optimizer, "sides": {}}
        for key, side in sides.items():
            parts = [breakdown(step, side.logps_in_forward) for step in side.timer.steps[1:]]
            result["sides"][key] = {
                "name": side.name,
                "loss_difference": differences[key],
                "times": [p["step"] for p in parts],
                "parts": {name: statistics.median(p[name] for p in parts) for name in (*BREAKDOWN, "step")},
            }
        return result


def side_memory(
    run: Run, model: str, shape: tuple, method: str, key: str, steps: int, vocab: int | None = None
) -> dict[str, float]:
    """Peak memory of one side alone over ``steps`` steps, and its rise over the process after setup."""
    import gc

    run.start()
    with tempfile.TemporaryDirectory() as scratch:
        work = make_workload(model, shape, run.device, run.dtype, Path(scratch), vocab=vocab)
        side = SIDES[method][key](work, PARAMS[method])
        work.reference = work.policy = None  # each side holds its own copies
        gc.collect()
        reset_peak_memory(run.device)
        before = memory_now_mib(run.device)
        for _ in range(steps):
            side.step()
        peak = peak_memory_mib(run.device)
        return {"peak_mib": peak, "rise_mib": peak - before}


def quiet_libraries() -> None:
    """Import what every worker needs once, before forking, without progress bars or advice on stderr."""
    import warnings

    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore")
    import datasets
    import transformers
    import trl.experimental.cpo  # noqa: F401

    import suite.engine  # noqa: F401

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()


def environment(run: Run) -> dict[str, str]:
    import torch

    run.start()
    settings = allocator_settings()
    if run.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device available")
        settings["device"] = torch.cuda.get_device_name()
    else:
        settings["device"] = f"CPU, {os.cpu_count()} cores"
    return settings


# ---------------------------------------------------------------- driver and tables


def ratio_note(ratio: float) -> str:
    return f"{(1 - ratio) * 100:.0f}% faster" if ratio <= 1 else f"{(ratio - 1) * 100:.0f}% SLOWER"


def paired_ratios(sides: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each side's step time over TRL's fastest side's (lowest median), as the median of the round-by-round ratios:
    the sides were stepped in turn, so a ratio within a round holds while the machine's speed drifts."""
    trl = {key: statistics.median(side["times"]) for key, side in sides.items() if key != "suite"}
    fastest = sides[min(trl, key=trl.get)]["times"]
    return {key: statistics.median(t / f for t, f in zip(s["times"], fastest, strict=True)) for key, s in sides.items()}


def side_table(runs: list[dict[str, Any]], memory: dict[tuple, dict[str, float]], memory_kind: str) -> list[str]:
    lines = [
        f"| model | shape | method | side | step ms, median (min-max) | x TRL's fastest (paired) | suite vs TRL's "
        f"fastest | {memory_kind} MiB (rise) | first-step loss |diff| |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        ratios = paired_ratios(run["result"]["sides"])
        for key, side in run["result"]["sides"].items():
            times = [1e3 * t for t in side["times"]]
            median = statistics.median(times)
            verdict = ratio_note(ratios[key]) if key == "suite" else ""
            mem = memory.get((run["model"], run["shape"], run["method"], key))
            mem_text = f"{mem['peak_mib']:.0f} (+{mem['rise_mib']:.0f})" if mem else "-"
            lines.append(
                f"| {run['model']} | {run['shape']} | {run['method']} | {side['name']} | {median:.0f} "
                f"({min(times):.0f}-{max(times):.0f}) | {ratios[key]:.2f} | {verdict} "
                f"| {mem_text} | {side['loss_difference']:.1e} |"
            )
    return lines


def breakdown_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | shape | method | side | " + " | ".join(BREAKDOWN) + " | step |",
        "|---|---|---|---|" + "---|" * (len(BREAKDOWN) + 1),
    ]
    for run in runs:
        for side in run["result"]["sides"].values():
            parts = " | ".join(f"{1e3 * side['parts'][name]:.0f}" for name in (*BREAKDOWN, "step"))
            lines.append(f"| {run['model']} | {run['shape']} | {run['method']} | {side['name']} | {parts} |")
    return lines


def paper_memory_table(args: argparse.Namespace) -> list[str]:
    """Peak memory of one DPO step per side at Llama-3.1's vocabulary and its sequence lengths."""
    lines = [
        f"| vocabulary | tokens per sequence | side | peak {'CUDA allocated' if args.cuda else 'RSS'} MiB (rise) "
        "| float32 logits of the batch, MiB |",
        "|---|---|---|---|---|",
    ]
    for vocab, length in PAPER_MEMORY:
        shape = (1, 64, length - 64)
        for key, name in (("suite", "suite dpo"), ("trl precomputed", "trl DPOTrainer, precomputed ref")):
            print(f"[bench] paper memory: vocab {vocab}, {length} tokens, {name}", file=sys.stderr)
            mem = run_isolated(
                side_memory, args.run, "llama31-vocab", shape, "dpo", key, args.memory_steps, vocab, device=args.device
            )
            logits = 2 * length * vocab * 4 / 2**20
            lines.append(
                f"| {vocab} | 2 x {length} | {name} | {mem['peak_mib']:.0f} (+{mem['rise_mib']:.0f}) | {logits:.0f} |"
            )
    return lines


def measure_sides(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[tuple, dict[str, float]]]:
    """Timing (one process per model, shape and method) and memory (one process per side) of every run."""
    runs, memory = [], {}
    for model in args.models.split(","):
        for shape_name in args.shapes.split(","):
            shape = SHAPES[shape_name]
            for method in args.methods.split(","):
                print(f"[bench] {model} {shape_name} {method}: timing", file=sys.stderr)
                result = run_isolated(time_method, args.run, model, shape, method, args.steps, device=args.device)
                runs.append({"model": model, "shape": shape_name, "method": method, "result": result})
                for key in SIDES[method] if args.memory_steps else ():
                    print(f"[bench] {model} {shape_name} {method} {key}: memory", file=sys.stderr)
                    memory[(model, shape_name, method, key)] = run_isolated(
                        side_memory, args.run, model, shape, method, key, args.memory_steps, device=args.device
                    )
    return runs, memory


def print_sides(args: argparse.Namespace, runs: list[dict[str, Any]], memory: dict[tuple, dict[str, float]]) -> None:
    params = {run["model"]: run["result"]["params"] for run in runs}
    print(f"optimizer (every side): {runs[0]['result']['optimizer']}")
    print(f"step time: median (min-max) of {args.steps} steps after the checked first one; memory: own process")
    print("shapes: " + "; ".join(f"{k} = {p} pairs x ({q} + {r}) tokens" for k, (p, q, r) in SHAPES.items()))
    print("models: " + "; ".join(f"{m} = {n / 1e6:.1f}M parameters, vocabulary {MODELS[m]['vocab_size']}"
                                 for m, n in params.items()))  # fmt: skip
    print("\n## Step time and peak memory\n")
    print("\n".join(side_table(runs, memory, "peak CUDA allocated" if args.cuda else "peak RSS")))
    print("\n## Where the time goes (ms per step, median)\n")
    print("\n".join(breakdown_table(runs)))
    print(
        "\nforward: the model's forwards (policy, and reference where live), output layer included, except in TRL's "
        "DPOTrainer and KTOTrainer: their fused LM head projects inside log-probs and again in their backward."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default="sides", help="comma-separated: sides, paper-memory")
    parser.add_argument("--models", default="tiny,mini", help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--shapes", default="short,long", help="comma-separated: " + ", ".join(
        f"{k} = {p} pairs x ({q} prompt + {r} response)" for k, (p, q, r) in SHAPES.items()))  # fmt: skip
    parser.add_argument("--methods", default=",".join(SIDES), help="comma-separated, of " + ", ".join(SIDES))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=sorted(LOSS_RTOL))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side after the checked first one")
    parser.add_argument(
        "--memory-steps", type=int, default=2, help="steps per side in the memory processes (0: no memory column)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads of the workers (0: torch's default)")
    args = parser.parse_args(argv)
    args.cuda = args.device.startswith("cuda")
    args.run = Run(args.device, args.dtype, args.threads)
    tables = set(args.tables.split(","))
    quiet_libraries()

    settings = run_isolated(environment, args.run, device=args.device)
    load = os.getloadavg()
    print(f"# The suite's engine vs TRL ({settings.pop('versions')})\n")
    print(f"device: {settings.pop('device')}; dtype {args.dtype}; load average {load[0]:.1f} (1 min) {load[1]:.1f} (5)")
    print("allocator and threads: " + "; ".join(f"{k}={v}" for k, v in settings.items()))
    if "sides" in tables:
        print_sides(args, *measure_sides(args))
    if "paper-memory" in tables:
        print("\n## Peak memory at Llama-3.1's vocabulary (DPO step, 1 pair, a 2-layer 64-wide Llama)\n")
        print("\n".join(paper_memory_table(args)))


if __name__ == "__main__":
    main()
