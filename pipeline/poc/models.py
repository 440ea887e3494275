"""The PoC's tokenizer (trained on the generated text) and its tiny start models, one per seed.

Every word of the task must be one token, so that word positions are token
positions: the tokenizer is trained on the generated records and on every
word of the task's vocabulary in both forms (sentence-initial and after a
space), with a vocabulary bound high enough that BPE merges each word whole.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from pipeline.poc.data import KINDS, PROMPTS, SUBJECTS, SYNONYMS
from suite.io import atomic_dir, read_jsonl
from suite.models import build_tiny_model, save_model, train_tokenizer


def task_words() -> list[str]:
    """Every word a PoC record can contain."""
    words = set(SUBJECTS)
    for kind, values in KINDS:
        words.add(kind)
        words.update(values)
    for pair in SYNONYMS:
        words.update(pair)
    for template in PROMPTS:
        words.update(w for w in template.split() if "{" not in w)
    return sorted(words)


def corpus(records: Iterable[dict]) -> Iterable[str]:
    words = task_words()
    for _ in range(5):  # both forms of every word, frequent enough to be merged whole
        yield " ".join(words)
        yield from words
    for record in records:
        for key in ("prompt", "chosen", "rejected"):
            for message in record[key]:
                yield message["content"]


def check_single_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    """Fail loudly when some word would be split: key positions would then be wrong."""
    split = [w for w in task_words() for form in (w, " " + w) if len(tokenizer(form)["input_ids"]) != 1]
    if split:
        raise ValueError(f"poc tokenizer splits words {split[:10]}: raise vocab_size")


def build_tokenizer(data: Sequence[Path], vocab_size: int, out: Path) -> None:
    records = [r for path in data for r in read_jsonl(path)]
    tokenizer = train_tokenizer(corpus(records), vocab_size)
    check_single_tokens(tokenizer)
    with atomic_dir(out) as tmp:
        tokenizer.save_pretrained(tmp)


def build_model(tokenizer_dir: Path, size: dict, seed: int, out: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    save_model(build_tiny_model("llama", tokenizer, size, seed), tokenizer, out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.poc.models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tok = sub.add_parser("tokenizer")
    tok.add_argument("--data", type=Path, nargs="+", required=True)
    tok.add_argument("--vocab-size", type=int, required=True)
    tok.add_argument("--out", type=Path, required=True)
    model = sub.add_parser("model")
    model.add_argument("--tokenizer", type=Path, required=True)
    model.add_argument("--size", required=True, help="JSON: tiny Llama sizes")
    model.add_argument("--seed", type=int, required=True)
    model.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "tokenizer":
        build_tokenizer(args.data, args.vocab_size, args.out)
    else:
        build_model(args.tokenizer, json.loads(args.size), args.seed, args.out)


if __name__ == "__main__":
    main()
