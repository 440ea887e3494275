"""The synthetic preference task: shared filler, a few key words that decide the preference.

Each pair is about one *subject* named in the prompt. Every subject has one
correct value for each key *kind* (colour, shape, ...), fixed by the data
seed. A response is a sequence of words: filler words, and for each key kind
a cue word (the kind's name) followed by the key word (a value of that kind).
The chosen response uses the subject's correct values, the rejected one
wrong values at the very same positions; everything else is shared:

* filler words are identical, except that with ``paraphrase_prob`` the
  rejected response uses a synonym (a light paraphrase: shared content, not
  a preference signal, because chosen responses use both synonyms equally);
* cue words are identical.

So with ``key_tokens`` = K and a response of L words, exactly K positions
decide the preference and the ambiguous (shared) share is (L - K) / L. Every
word is a single token of the PoC tokenizer (checked when training), so word
positions are token positions within the response. Records carry
``key_positions`` and ``paraphrase_positions`` (word indices) for evaluation.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.poc.config import response_length, share_label
from suite.io import write_jsonl

SUBJECTS = (
    "lemon", "river", "falcon", "tulip", "anchor", "violin", "glacier", "lantern",
    "pepper", "meadow", "harbor", "comet", "cactus", "marble", "otter", "willow",
)  # fmt: skip
KINDS = (
    ("colour", ("red", "blue", "green", "yellow", "purple", "orange", "silver", "brown")),
    ("shape", ("round", "square", "flat", "long", "curved", "pointed", "hollow", "narrow")),
    ("mood", ("calm", "angry", "happy", "sleepy", "brave", "shy", "proud", "gentle")),
    ("metal", ("iron", "copper", "gold", "tin", "zinc", "nickel", "lead", "bronze")),
)
SYNONYMS = (
    ("quick", "fast"), ("big", "large"), ("small", "tiny"), ("often", "frequently"), ("begin", "start"),
    ("near", "close"), ("road", "street"), ("house", "home"), ("simple", "easy"), ("shout", "yell"),
    ("rock", "stone"), ("glad", "pleased"), ("maybe", "perhaps"), ("quiet", "silent"), ("center", "middle"),
    ("buy", "purchase"), ("end", "finish"), ("gift", "present"), ("smart", "clever"), ("jump", "leap"),
    ("path", "trail"), ("rich", "wealthy"), ("sea", "ocean"), ("talk", "speak"),
)  # fmt: skip
PROMPTS = (
    "tell me about the {subject}",
    "describe the {subject}",
    "what do you know about the {subject}",
    "say something about the {subject}",
)


def fact_table(data_seed: int, subjects: int, key_tokens: int) -> dict[str, dict[str, str]]:
    """subject -> kind -> correct value; depends on the data seed only (the same for every share)."""
    if not 1 <= subjects <= len(SUBJECTS):
        raise ValueError(f"poc: subjects must be 1..{len(SUBJECTS)}, got {subjects}")
    rng = random.Random(data_seed)
    return {s: {kind: rng.choice(values) for kind, values in KINDS[:key_tokens]} for s in SUBJECTS[:subjects]}


def make_pair(rng: random.Random, facts: Mapping[str, Mapping[str, str]], length: int, paraphrase_prob: float) -> dict:
    """One pair of word sequences of ``length`` words with its key and paraphrase positions."""
    subject = rng.choice(sorted(facts))
    kinds = list(facts[subject])
    filler_count = length - 2 * len(kinds)
    chosen: list[str] = []
    rejected: list[str] = []
    paraphrases = []
    for _ in range(filler_count):
        pair = rng.choice(SYNONYMS)
        side = rng.randrange(2)
        chosen.append(pair[side])
        if rng.random() < paraphrase_prob:
            rejected.append(pair[1 - side])
            paraphrases.append(len(chosen) - 1)
        else:
            rejected.append(pair[side])
    # insertion points of the (cue, key) segments among the filler, in kind order
    points = sorted(rng.choices(range(filler_count + 1), k=len(kinds)))
    words_w: list[str] = []
    words_l: list[str] = []
    keys, para = [], []
    values = dict(KINDS)
    cursor = 0
    for kind, point in zip(kinds, points, strict=True):
        for i in range(cursor, point):
            if i in paraphrases:
                para.append(len(words_w))
            words_w.append(chosen[i])
            words_l.append(rejected[i])
        cursor = point
        correct = facts[subject][kind]
        wrong = rng.choice([v for v in values[kind] if v != correct])
        words_w += [kind, correct]
        words_l += [kind, wrong]
        keys.append(len(words_w) - 1)
    for i in range(cursor, filler_count):
        if i in paraphrases:
            para.append(len(words_w))
        words_w.append(chosen[i])
        words_l.append(rejected[i])
    prompt = rng.choice(PROMPTS).format(subject=subject)
    return {
        "subject": subject,
        "prompt_text": prompt,
        "chosen_words": words_w,
        "rejected_words": words_l,
        "key_positions": keys,
        "paraphrase_positions": para,
    }


def generate(config: Mapping[str, Any], share: float) -> tuple[list[dict], list[dict]]:
    """Train and held-out records for one ambiguous share: distinct pairs, deterministic for the data seed."""
    k = config["key_tokens"]
    length = response_length(share, k)
    facts = fact_table(config["data_seed"], config["subjects"], k)
    rng = random.Random(config["data_seed"] * 1_000_003 + round(share * 10_000))
    wanted = config["n_train"] + config["n_heldout"]
    seen: set[tuple] = set()
    pairs: list[dict] = []
    attempts = 0
    while len(pairs) < wanted:
        attempts += 1
        if attempts > 50 * wanted:
            raise ValueError(
                f"poc: cannot draw {wanted} distinct pairs at share {share} (length {length}); "
                "lower n_train/n_heldout or raise subjects/key_tokens"
            )
        pair = make_pair(rng, facts, length, config["paraphrase_prob"])
        identity = (pair["prompt_text"], tuple(pair["chosen_words"]), tuple(pair["rejected_words"]))
        if identity not in seen:
            seen.add(identity)
            pairs.append(pair)
    label = share_label(share)
    records = [to_record(pair, f"poc-{label}-{i}", share, length, k) for i, pair in enumerate(pairs)]
    return records[: config["n_train"]], records[config["n_train"] :]


def to_record(pair: Mapping[str, Any], record_id: str, share: float, length: int, key_tokens: int) -> dict:
    """A record the engine reads (id, prompt, chosen, rejected as chat messages) plus the PoC's metadata."""
    return {
        "id": record_id,
        "prompt": [{"role": "user", "content": pair["prompt_text"]}],
        "chosen": [{"role": "assistant", "content": " ".join(pair["chosen_words"])}],
        "rejected": [{"role": "assistant", "content": " ".join(pair["rejected_words"])}],
        "subject": pair["subject"],
        "chosen_words": list(pair["chosen_words"]),
        "rejected_words": list(pair["rejected_words"]),
        "key_positions": list(pair["key_positions"]),
        "paraphrase_positions": list(pair["paraphrase_positions"]),
        "share": share,
        "realised_share": (length - key_tokens) / length,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.poc.data", description=__doc__)
    parser.add_argument("--config", required=True, help="JSON: the poc config block")
    parser.add_argument("--share", type=float, required=True)
    parser.add_argument("--train-out", type=Path, required=True)
    parser.add_argument("--heldout-out", type=Path, required=True)
    args = parser.parse_args(argv)
    train, heldout = generate(json.loads(args.config), args.share)
    write_jsonl(args.train_out, train)
    write_jsonl(args.heldout_out, heldout)
    print(f"share {args.share}: {len(train)} train, {len(heldout)} held-out pairs")


if __name__ == "__main__":
    main()
