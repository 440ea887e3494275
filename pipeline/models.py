"""Rule entry points of model stages: the tiny models' tokenizer, a tiny model, a pointer stage (suite.models)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoTokenizer

from suite.io import atomic_dir
from suite.models import (
    TINY_ARCHITECTURES,
    build_tiny_model,
    corpus_texts,
    fetch_checkpoint,
    save_model,
    train_tokenizer,
    write_pointer,
)


def _cmd_tokenizer(args: argparse.Namespace) -> None:
    tokenizer = train_tokenizer(corpus_texts(args.corpus), args.vocab_size)
    with atomic_dir(args.out) as tmp:
        tokenizer.save_pretrained(tmp)


def _cmd_tiny(args: argparse.Namespace) -> None:
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    model = build_tiny_model(args.arch, tokenizer, json.loads(args.size), args.seed)
    save_model(model, tokenizer, args.out)


def _cmd_pointer(args: argparse.Namespace) -> None:
    recorded = fetch_checkpoint(args.name_or_path, args.revision, args.download)
    write_pointer(args.out, args.name_or_path, args.revision, args.chat_template, **recorded)
    print(f"{args.out}: points to {args.name_or_path} ({recorded or 'not downloaded'})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    tok = sub.add_parser("tokenizer", help="train the tiny models' tokenizer on shipped text")
    tok.add_argument("--corpus", type=Path, nargs="+", required=True)
    tok.add_argument("--vocab-size", type=int, default=1024)
    tok.add_argument("--out", type=Path, required=True)
    tok.set_defaults(func=_cmd_tokenizer)

    tiny = sub.add_parser("tiny", help="build a random tiny Llama/Mistral model")
    tiny.add_argument("--arch", required=True, choices=sorted(TINY_ARCHITECTURES))
    tiny.add_argument("--tokenizer", type=Path, required=True)
    tiny.add_argument("--size", required=True, help="JSON object of config sizes")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--out", type=Path, required=True)
    tiny.set_defaults(func=_cmd_tiny)

    ptr = sub.add_parser("pointer", help="refer to a hub id (downloaded into the HF cache first) or a directory")
    ptr.add_argument("--name-or-path", required=True, help="a hub id or a local checkpoint directory")
    ptr.add_argument("--revision")
    ptr.add_argument("--chat-template", choices=["zephyr"], help="override the model's own template")
    ptr.add_argument("--download", action="store_true")
    ptr.add_argument("--out", type=Path, required=True)
    ptr.set_defaults(func=_cmd_pointer)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
