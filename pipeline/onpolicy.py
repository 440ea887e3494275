"""Rule entry points of on-policy data: sample, score, binarize (suite.onpolicy)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelerate import PartialState

from pipeline import setup_logging
from suite.io import read_json, read_jsonl, write_json, write_jsonl
from suite.onpolicy import TIE_RULE, Scorer, binarize, load_prompts, reward_summary, sample, score_samples
from suite.processes import job_processes
from suite.provenance import identity

log = logging.getLogger(__name__)


def _cmd_sample(args: argparse.Namespace) -> None:
    job_processes()  # join the job's processes before anything else asks for them
    prompts, repeats = load_prompts(args.prompts, args.limit)
    records, meta = sample(
        args.model,
        prompts,
        n_samples=args.n_samples,
        decoding=json.loads(args.decoding),
        shard_size=args.shard_size,
        seed=args.seed,
        batch_size=args.batch_size,
        backend=args.backend,
        work_dir=args.work_dir,
    )
    if not PartialState().is_main_process:
        return
    write_jsonl(args.out, records)
    write_json(
        args.meta, {**meta, "prompts_file": str(args.prompts), "limit": args.limit, "repeated_prompts_skipped": repeats}
    )
    log.info("%d prompts x %d samples -> %s", len(records), args.n_samples, args.out)


def _cmd_score(args: argparse.Namespace) -> None:
    from suite.reward import load_reward_model, reward_source

    samples = read_jsonl(args.samples)
    described: dict[str, Any] = {}

    def scorer() -> Scorer:
        model = load_reward_model(args.reward, dtype=args.dtype)
        described.update(model.describe())
        return lambda conversations: model.score(conversations, args.batch_size)

    reward_identity = {**identity(args.reward), "dtype": args.dtype}
    records, meta = score_samples(
        samples, reward_identity=reward_identity, shard_size=args.shard_size, work_dir=args.work_dir, scorer=scorer
    )
    write_jsonl(args.out, records)
    source = reward_source(args.reward)
    write_json(
        args.meta,
        {
            **meta,
            "reward_dir": str(args.reward),
            **source,
            "dtype": args.dtype,
            "batch_size": args.batch_size,
            "loaded": described or "not loaded: every shard was reused",
        },
    )


def _cmd_binarize(args: argparse.Namespace) -> int:
    pairs, counts = binarize(read_jsonl(args.samples), read_jsonl(args.scores))
    sampling, scoring = read_json(args.samples_meta), read_json(args.scores_meta)
    meta = {
        **json.loads(args.describe),
        "protocol": "on-policy (SimPO): n responses per prompt sampled from the policy, scored by a reward model, "
        "best = chosen, worst = rejected",
        "file": str(args.out),
        "sampling": sampling,
        "reward": scoring,
        "n_samples": sampling["n_samples"],
        "tie_rule": TIE_RULE,
        "counts": counts,
        "rewards": reward_summary(pairs),
    }
    if not pairs:
        print(f"error: no pairs left: {counts}", file=sys.stderr)
        return 2
    write_jsonl(args.out, pairs)
    write_json(args.meta, meta)
    log.info("%s: %s", args.out, counts)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.onpolicy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sa = sub.add_parser("sample", help="n responses per prompt from the policy (sharded, resumable)")
    sa.add_argument("--model", type=Path, required=True, help="the policy's model stage")
    sa.add_argument("--prompts", type=Path, required=True, help="preference data whose prompts are used")
    sa.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    sa.add_argument("--n-samples", type=int, default=5)
    sa.add_argument("--decoding", required=True, help="JSON object: max_new_tokens, temperature, top_p")
    sa.add_argument("--shard-size", type=int, default=256, help="prompts per shard")
    sa.add_argument("--batch-size", type=int, default=8)
    sa.add_argument("--seed", type=int, default=42)
    sa.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    sa.add_argument("--work-dir", type=Path, required=True, help="where shards live (not a rule output)")
    sa.add_argument("--out", type=Path, required=True)
    sa.add_argument("--meta", type=Path, required=True)
    sa.set_defaults(func=_cmd_sample)

    sc = sub.add_parser("score", help="the reward of every sampled response (sharded, resumable)")
    sc.add_argument("--samples", type=Path, required=True)
    sc.add_argument("--reward", type=Path, required=True, help="reward model stage (directory or pointer)")
    sc.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    sc.add_argument("--batch-size", type=int, default=8)
    sc.add_argument("--shard-size", type=int, default=256)
    sc.add_argument("--work-dir", type=Path, required=True)
    sc.add_argument("--out", type=Path, required=True)
    sc.add_argument("--meta", type=Path, required=True)
    sc.set_defaults(func=_cmd_score)

    bi = sub.add_parser("binarize", help="best vs worst per prompt, ties dropped and counted")
    bi.add_argument("--samples", type=Path, required=True)
    bi.add_argument("--samples-meta", type=Path, required=True)
    bi.add_argument("--scores", type=Path, required=True)
    bi.add_argument("--scores-meta", type=Path, required=True)
    bi.add_argument(
        "--describe", default="{}", help="JSON recorded with the data (dataset, policy, reward model names)"
    )
    bi.add_argument("--out", type=Path, required=True)
    bi.add_argument("--meta", type=Path, required=True)
    bi.set_defaults(func=_cmd_binarize)

    args = parser.parse_args(argv)
    setup_logging()
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
