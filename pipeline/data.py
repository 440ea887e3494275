"""Rule entry point: validate and normalise one dataset (suite.data.prepare); bad data exits with status 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.data import KINDS, DataError, Policy, check_source, parse_json_option, prepare


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; bad data exits with status 2 and a one-line message, not a traceback."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.data", description="Validate and normalise a data set for the suite."
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument(
        "--source",
        required=True,
        help='JSON object, e.g. {"format": "ultrafeedback", "path": "x.jsonl"} or '
        '{"format": "hh", "hub": {"id": "Anthropic/hh-rlhf", "split": "train", "revision": "..."}}',
    )
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--manifest", type=Path, help="the manifest (default: <out name>.manifest.json beside it)")
    parser.add_argument(
        "--policy", default="{}", help='JSON, e.g. {"on_invalid": "skip", "max_invalid_fraction": 0.01}'
    )
    parser.add_argument("--with-chosen", action="store_true", help="prompts: keep (and check) the chosen reply")
    parser.add_argument("--limit", type=int, default=None, help="keep only N records")
    parser.add_argument("--seed", type=int, default=0, help='subset seed when the source has "sample": "random"')
    args = parser.parse_args(argv)
    try:
        source = parse_json_option(args.source, "--source")
        check_source(source)
        policy = Policy.from_mapping(parse_json_option(args.policy, "--policy"))
        count = prepare(
            args.kind,
            source,
            args.out,
            limit=args.limit,
            seed=args.seed,
            policy=policy,
            with_chosen=args.with_chosen,
            manifest_out=args.manifest,
        )
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {count} {args.kind} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
