"""Rule entry point: one model answers every benchmark of its run (the model loaded once)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from evals import benchmark_names, get_benchmark
from evals.generate import answer_benchmark
from pipeline import setup_logging
from suite.generation import RESPONDERS, make_responder, shared_dtype
from suite.processes import job_processes

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.generate", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="model stage directory")
    parser.add_argument(
        "--task",
        nargs=4,
        action="append",
        required=True,
        metavar=("BENCHMARK", "PROMPTS", "DECODING", "OUT"),
        help="a benchmark, its prompt file, its decoding (JSON) and the output file; repeat for more "
        "benchmarks: the model is loaded once",
    )
    parser.add_argument("--generator", required=True, help="name recorded with every output")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=sorted(RESPONDERS), default="hf")
    args = parser.parse_args(argv)
    setup_logging()

    tasks = [(name, Path(prompts), json.loads(decoding), Path(out)) for name, prompts, decoding, out in args.task]
    for name, *_ in tasks:
        if name not in benchmark_names():
            parser.error(f"unknown benchmark {name!r}; valid: {', '.join(benchmark_names())}")
    respond = make_responder(args.model, shared_dtype([t[2] for t in tasks]), args.batch_size, args.seed, args.backend)
    main_process = job_processes().is_main_process
    for name, prompts, decoding, out in tasks:
        responses = answer_benchmark(respond, name, prompts, decoding)
        if main_process:
            get_benchmark(name).write_outputs(prompts, responses, args.generator, out)
            log.info("wrote %d %s outputs to %s", len(responses), name, out)


if __name__ == "__main__":
    main()
