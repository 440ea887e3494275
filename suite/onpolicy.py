"""On-policy preference data, SimPO's protocol for the Instruct variants.

For every prompt of a preference data set (UltraFeedback), the variant's own
model samples ``n_samples`` responses, a reward model scores each, and the
best becomes ``chosen``, the worst ``rejected``. Three steps, each a
subcommand and a workflow rule (workflow/rules/onpolicy.smk):

* ``sample``: the responses, in shards of ``shard_size`` prompts. Every shard
  is written atomically under a work directory that is not a rule output and
  whose name is a hash of everything that decides the samples (model content
  or hub id, decoding, n, seed, backend, shard size); a shard's own file name
  carries a hash of its prompts. A re-run (after a kill, a timeout, or with a
  larger ``limit``) generates only the missing shards, and a changed setting
  never reuses stale ones. Sample ``k`` of shard ``s`` is one generation pass
  over the shard's prompts with its own seed (:func:`sample_seed`), as
  SimPO's five seeded decoding runs are (vLLM seeds each request, so a prompt
  repeated within one pass would get the same answer every time). Passes go
  through :func:`suite.generation.generate_responses`; with the ``vllm``
  backend each runs in a child process (:func:`suite.generation.generate_isolated`).
* ``score``: the reward of every non-empty response, sharded the same way
  (keyed by the reward model), so a resumed job loads the reward model only
  if some shard is missing.
* ``binarize``: per prompt, identical responses count once and empty ones not
  at all; with fewer than two distinct responses, or when the best and worst
  rewards are equal, the prompt is dropped as a tie (counted). The pairs are
  written in the suite's preference format, with a metadata JSON beside them
  (sampling settings, model, reward model and revision, n, tie rule, counts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from accelerate import PartialState

from suite.generation import generate_isolated, generate_responses
from suite.io import read_jsonl, write_json, write_jsonl
from suite.provenance import digest, identity

log = logging.getLogger(__name__)

SHARD_FORMAT = 1  # bump when the shard contents change meaning
TIE_RULE = (
    "responses are compared after stripping whitespace; empty ones are ignored and identical ones count once; "
    "a prompt is dropped as a tie when fewer than two distinct responses remain or when the best and the worst "
    "reward are equal; otherwise chosen = the highest reward, rejected = the lowest (the first one on equal rewards)"
)
SEED_RULE = "sample k of shard s uses seed int(sha256(f'{seed}/{s}/{k}')[:8], 16) % 2**31 for one pass over the shard"

Generate = Callable[..., list[str]]
Scorer = Callable[[Sequence[Sequence[Mapping[str, str]]]], list[float]]


class OnPolicyError(ValueError):
    """The on-policy data cannot be built as asked; the message says why."""


# --------------------------------------------------------------------------- keys and shards


def sample_seed(seed: int, shard: int, k: int) -> int:
    """The seed of sample ``k`` of shard ``shard`` (see SEED_RULE)."""
    return int(hashlib.sha256(f"{seed}/{shard}/{k}".encode()).hexdigest()[:8], 16) % 2**31


def _shard_path(shard_dir: Path, index: int, unit: Sequence[Mapping[str, Any]]) -> Path:
    return (
        shard_dir
        / f"shard-{index:05d}-{digest([[r['id'], r.get('prompt'), r.get('responses')] for r in unit], 12)}.jsonl"
    )


def run_shards(
    units: Sequence[Sequence[Mapping[str, Any]]],
    shard_dir: Path,
    manifest: Mapping[str, Any],
    work: Callable[[int, Sequence[Mapping[str, Any]]], list[dict]],
) -> tuple[list[dict], dict[str, int]]:
    """Run ``work`` on every unit whose shard file is missing; reuse the others. Returns (records, counts).

    In a job of several processes every process runs ``work`` (which shares the unit out, see
    :mod:`suite.generation`) and gets the whole result; only the main process writes.
    """
    main = PartialState().is_main_process
    shard_dir.mkdir(parents=True, exist_ok=True)
    if main and not (shard_dir / "manifest.json").exists():
        write_json(shard_dir / "manifest.json", manifest)
    records: list[dict] = []
    counts = {"shards": len(units), "shards_reused": 0, "shards_computed": 0}
    for index, unit in enumerate(units):
        path = _shard_path(shard_dir, index, unit)
        if path.exists():
            done = read_jsonl(path)
            if [r["id"] for r in done] == [r["id"] for r in unit]:
                records += done
                counts["shards_reused"] += 1
                continue
            log.warning("%s does not match its prompts; computing it again", path)
        start = time.monotonic()
        done = work(index, unit)
        if main:
            write_jsonl(path, done)  # atomic: a killed job leaves no half shard
        records += done
        counts["shards_computed"] += 1
        log.info("shard %d/%d done in %.1f s (%s)", index + 1, len(units), time.monotonic() - start, path.name)
    return records, counts


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    if size < 1:
        raise OnPolicyError(f"shard_size must be >= 1, got {size}")
    return [items[i : i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------------------- sample


def load_prompts(path: Path, limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The distinct prompts (id + messages) of a normalised preference file, the first ``limit`` of them.

    A prompt that occurs again later is answered once, under its first id (as
    SimPO does); returns (prompts, how many repeats were skipped).
    """
    prompts: list[dict[str, Any]] = []
    seen: set[str] = set()
    repeats = 0
    for record in read_jsonl(path):
        key = json.dumps(record["prompt"], sort_keys=True, ensure_ascii=False)
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        prompts.append({"id": record["id"], "prompt": record["prompt"]})
        if limit and len(prompts) == limit:
            break
    if not prompts:
        raise OnPolicyError(f"{path}: no prompts")
    return prompts, repeats


def sample(
    model_dir: Path,
    prompts: Sequence[Mapping[str, Any]],
    *,
    n_samples: int,
    decoding: Mapping[str, Any],
    shard_size: int,
    seed: int,
    batch_size: int,
    backend: str,
    work_dir: Path,
    generate: Generate | None = None,
) -> tuple[list[dict], dict[str, Any]]:
    """``n_samples`` responses per prompt from the model, resuming from finished shards. Returns (records, meta)."""
    if n_samples < 2:
        raise OnPolicyError(f"n_samples must be >= 2 to form a pair, got {n_samples}")
    if generate is None:
        generate = generate_isolated if backend == "vllm" else generate_responses
    settings = {
        "format": SHARD_FORMAT,
        "model": identity(model_dir),
        "decoding": dict(decoding),
        "n_samples": n_samples,
        "seed": seed,
        "backend": backend,
        "shard_size": shard_size,
    }
    shard_dir = work_dir / f"samples-{digest(settings)}"
    generated = [0]

    def work(index: int, unit: Sequence[Mapping[str, Any]]) -> list[dict]:
        seeds = [sample_seed(seed, index, k) for k in range(n_samples)]
        passes = [
            generate(model_dir, [r["prompt"] for r in unit], decoding, batch_size, s, backend=backend) for s in seeds
        ]
        generated[0] += len(unit) * n_samples
        return [
            {"id": r["id"], "prompt": r["prompt"], "responses": [p[i] for p in passes], "seeds": seeds}
            for i, r in enumerate(unit)
        ]

    start = time.monotonic()
    records, counts = run_shards(_chunks(prompts, shard_size), shard_dir, settings, work)
    meta = {
        **settings,
        "model_dir": str(model_dir),
        "seed_rule": SEED_RULE,
        "batch_size": batch_size,
        "prompts": len(prompts),
        "shard_dir": str(shard_dir),
        **counts,
        "generations_this_run": generated[0],
        "seconds_this_run": round(time.monotonic() - start, 2),
    }
    return records, meta


# --------------------------------------------------------------------------- score


def score_samples(
    samples: Sequence[Mapping[str, Any]],
    *,
    reward_identity: Mapping[str, Any],
    shard_size: int,
    work_dir: Path,
    scorer: Callable[[], Scorer],
) -> tuple[list[dict], dict[str, Any]]:
    """The reward of every non-empty response (None for empty ones), resuming from finished shards.

    ``scorer`` is called at most once, when the first missing shard needs it,
    and returns the function that scores a list of conversations.
    """
    settings = {"format": SHARD_FORMAT, "reward_model": dict(reward_identity), "shard_size": shard_size}
    shard_dir = work_dir / f"scores-{digest(settings)}"
    loaded: list[Scorer] = []

    def work(index: int, unit: Sequence[Mapping[str, Any]]) -> list[dict]:
        if not loaded:
            loaded.append(scorer())
        wanted = [(row, k) for row, r in enumerate(unit) for k, text in enumerate(r["responses"]) if text.strip()]
        conversations = [
            [*unit[row]["prompt"], {"role": "assistant", "content": unit[row]["responses"][k]}] for row, k in wanted
        ]
        values = loaded[0](conversations) if conversations else []
        scores: list[list[float | None]] = [[None] * len(r["responses"]) for r in unit]
        for (row, k), value in zip(wanted, values, strict=True):
            scores[row][k] = float(value)
        return [{"id": r["id"], "scores": s} for r, s in zip(unit, scores, strict=True)]

    start = time.monotonic()
    records, counts = run_shards(_chunks(samples, shard_size), shard_dir, settings, work)
    return records, {
        **settings,
        "shard_dir": str(shard_dir),
        **counts,
        "seconds_this_run": round(time.monotonic() - start, 2),
    }


# --------------------------------------------------------------------------- binarize


def binarize(
    samples: Sequence[Mapping[str, Any]], scores: Sequence[Mapping[str, Any]]
) -> tuple[list[dict], dict[str, int]]:
    """Best vs worst response per prompt, in the suite's preference format; ties dropped and counted (TIE_RULE)."""
    by_id = {r["id"]: r["scores"] for r in scores}
    missing = [r["id"] for r in samples if r["id"] not in by_id]
    if missing:
        raise OnPolicyError(f"no scores for {len(missing)} prompt(s), e.g. {missing[0]!r}")
    counts = {
        "prompts": len(samples),
        "pairs_kept": 0,
        "ties_dropped": 0,
        "ties_equal_reward": 0,
        "ties_identical_responses": 0,
        "empty_responses": 0,
        "duplicate_responses": 0,
    }
    pairs = []
    for record in samples:
        distinct: dict[str, float] = {}
        for text, value in zip(record["responses"], by_id[record["id"]], strict=True):
            text = text.strip()
            if not text:
                counts["empty_responses"] += 1
            elif text in distinct:
                counts["duplicate_responses"] += 1
            else:
                if value is None:
                    raise OnPolicyError(f"{record['id']}: a non-empty response has no score")
                distinct[text] = float(value)
        if len(distinct) < 2:
            counts["ties_dropped"] += 1
            counts["ties_identical_responses"] += 1
            continue
        ranked = list(distinct.items())
        best = max(ranked, key=lambda item: item[1])
        worst = min(ranked, key=lambda item: item[1])
        if best[1] == worst[1]:
            counts["ties_dropped"] += 1
            counts["ties_equal_reward"] += 1
            continue
        pairs.append(
            {
                "id": record["id"],
                "prompt": record["prompt"],
                "chosen": [{"role": "assistant", "content": best[0]}],
                "rejected": [{"role": "assistant", "content": worst[0]}],
                "score_chosen": best[1],
                "score_rejected": worst[1],
            }
        )
    counts["pairs_kept"] = len(pairs)
    return pairs, counts


def reward_summary(pairs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    if not pairs:
        return {}
    n = len(pairs)
    chosen = sum(p["score_chosen"] for p in pairs) / n
    rejected = sum(p["score_rejected"] for p in pairs) / n
    return {"mean_chosen": chosen, "mean_rejected": rejected, "mean_margin": chosen - rejected}
