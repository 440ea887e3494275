"""Lengths of generated answers, in characters and in the model's own tokens, per item.

The paper claims AAO's gains come without markedly longer responses, and
judges are known to favour length, so every score in the tables sits beside
its mean response length. Generation files come in two layouts: alpaca_eval's
(and the HH benchmarks') records with an ``output``, and FastChat's answer
records whose first choice holds the turns (MT-Bench, Arena-Hard v0.1), or
arena-hard-auto's current ``uid``/``messages`` layout (Arena-Hard v2.0), read
by the benchmark modules' own parsers; an item's length is the sum over its
turns. Items are indexed by their position in the file, which is their
position in the prompt set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from evals.records import numbered, read_records

Tokenize = Callable[[str], int]


def response_texts(path: str | Path) -> list[list[str]]:
    """Each item's response turns from a generation file (either layout)."""
    from evals.arena_hard import any_layout_answer

    texts = []
    for where, record in numbered(read_records(path), str(path)):
        texts.append([str(record["output"])] if "output" in record else any_layout_answer(record, where).turns)
    return texts


def item_lengths(path: str | Path, tokens: Tokenize) -> pd.DataFrame:
    """Per item: ``chars`` and ``tokens`` of its response (summed over turns)."""
    texts = response_texts(path)
    return pd.DataFrame(
        {
            "chars": [sum(len(t) for t in turns) for turns in texts],
            "tokens": [sum(tokens(t) for t in turns) for turns in texts],
        },
        index=pd.RangeIndex(len(texts), name="item"),
    ).astype(float)


def token_counter(model_dir: str | Path) -> Tokenize:
    """Counts tokens with the model's tokenizer (no special tokens: the response as generated)."""
    from suite.models import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
