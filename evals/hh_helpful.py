"""Helpfulness on Anthropic-HH: each model reply against the data set's chosen reply, judged pairwise.

The HH experiment reports this beside the harmless rate, so that a method that
becomes harmless by becoming useless shows it. For every test prompt (a
conversation ending with a user turn) the model's reply and HH's chosen reply
are compared by AlpacaEval's pairwise annotator (``evals.alpaca_eval``: the
``weighted_alpaca_eval_gpt4_turbo`` prompt, order swap and log-prob
preference) through the judge interface, with the conversation rendered as
the instruction (``User:``/``Assistant:`` paragraphs). The score is
alpaca_eval's win rate against the chosen replies (ties count half) with its
standard error. No length-controlled rate: LC is defined for the 805
AlpacaEval instructions only. A reply that never parses is an error unless
the option ``allow_partial`` is set (:mod:`evals.results`).

Prompts and chosen replies come from a normalised preference file of
:mod:`suite.data` (or raw HH transcripts): on the cluster ``Anthropic/hh-rlhf``
split ``test`` (``data_dir: helpful-base``), at CPU scale the shipped HH test
sample.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evals import alpaca_eval, harmless
from evals.conversation import check_options
from evals.judges import Judge, JudgeRequest, make_judge
from evals.records import numbered, read_records
from suite.data import parse_hh
from suite.io import write_json

log = logging.getLogger(__name__)

NAME = "hh_helpful"
COLUMNS = {"win_rate": "Helpful WR vs chosen"}
ERRORS = {"win_rate": "standard_error"}  # result key of each column's standard error
REFERENCE_GENERATOR = "hh_chosen"
OPTIONS: dict[str, Any] = {"allow_partial": False}
EXPECTED_JUDGE_OUTPUT_TOKENS = alpaca_eval.EXPECTED_JUDGE_OUTPUT_TOKENS  # the same one-token annotator

write_outputs = harmless.write_outputs  # {id, prompt, output, generator} per prompt


def read_prompts(path: str | Path) -> list[list[dict[str, str]]]:
    """The conversations to answer, checked first to carry the chosen replies they are compared with.

    So a prompt set prepared without them (kind ``prompts`` without
    ``with_chosen``) fails before any generation, not after it.
    """
    chosen_replies(path)
    return harmless.read_prompts(path)


def chosen_replies(path: str | Path) -> dict[str, str]:
    """Each prompt's chosen reply (the last assistant turn of ``chosen``), by prompt id."""
    replies = {}
    for where, record in numbered(read_records(path), str(path)):
        prompt_id, _ = harmless.prompt_record(record, where)
        if "chosen" not in record:
            raise ValueError(
                f"{path}: record {where.number}: field 'chosen': missing; helpfulness is judged against HH's chosen "
                "reply: prepare this prompt set with 'with_chosen: true' (or as preference data)"
            )
        chosen = record["chosen"]
        if isinstance(chosen, str):  # a raw HH transcript
            chosen = parse_hh(chosen, "chosen", where)
        if not isinstance(chosen, list) or not chosen or chosen[-1].get("role") != "assistant":
            raise ValueError(f"{path}: record {where.number}: field 'chosen' must end with an assistant reply")
        replies[prompt_id] = str(chosen[-1]["content"])
    return replies


def as_instruction(prompt: Sequence[Mapping[str, str]]) -> str:
    """The conversation as AlpacaEval's instruction: a single user turn as it is, else the whole dialogue."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return harmless.conversation_text(prompt)


def read_pairs(outputs_path: str | Path, prompts_path: str | Path) -> tuple[list[harmless.Item], pd.DataFrame]:
    """The answered prompts and alpaca_eval's pair table: HH's chosen reply is output_1, the model's output_2."""
    items = harmless.read_items(outputs_path, prompts_path)
    chosen = chosen_replies(prompts_path)
    generator = str(items[0].generator)
    model = [{"instruction": as_instruction(i.prompt), "output": i.response, "generator": generator} for i in items]
    reference = [
        {"instruction": as_instruction(i.prompt), "output": chosen[i.id], "generator": REFERENCE_GENERATOR}
        for i in items
    ]
    return items, alpaca_eval.pair_outputs(reference, model)


def judge_requests(outputs: str | Path, reference: str | Path, options: Mapping[str, Any]) -> list[JudgeRequest]:
    """The judge calls an evaluation makes (for the cost estimate of ``evals.budget``)."""
    from evals.budget import annotation_requests

    return annotation_requests(read_pairs(outputs, reference)[1])


def evaluate(
    outputs_path: str | Path, prompts_path: str | Path, judge: Judge, options: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Judge every reply against the chosen one; returns the result record and the annotations."""
    opts = check_options(options or {}, OPTIONS, NAME)
    items, table = read_pairs(outputs_path, prompts_path)
    annotator = alpaca_eval.load_annotator()
    annotated = alpaca_eval.annotate(table, judge, annotator, NAME)
    result = alpaca_eval.summarise(table, annotated, judge, annotator, NAME, len(items), [], opts["allow_partial"])
    return {**result, "prompt_set": harmless.prompt_set(prompts_path, items), "options": opts}, annotated


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.hh_helpful", description=__doc__)
    parser.add_argument("--outputs", type=Path, required=True, help="model outputs (this module's write_outputs)")
    parser.add_argument("--reference", type=Path, required=True, help="the HH prompt file with its chosen replies")
    parser.add_argument("--judge", required=True, help='judge config as JSON, e.g. \'{"backend": "offline"}\'')
    parser.add_argument("--cache", type=Path, help="sqlite file of judge replies, shared between runs")
    parser.add_argument("--options", default="{}", help="options as JSON: allow_partial (OPTIONS)")
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.add_argument("--annotations-out", type=Path, help="per-prompt annotations JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = check_options(json.loads(args.options), OPTIONS, NAME)
    judge = make_judge(json.loads(args.judge), args.cache)
    result, annotations = evaluate(args.outputs, args.reference, judge, options)
    log.info("win rate vs chosen %.2f over %d; judge %s", result["win_rate"], result["n"], judge.name)
    if args.annotations_out is not None:
        alpaca_eval.write_annotations(args.annotations_out, annotations)
    write_json(args.out, result)


if __name__ == "__main__":
    main()


# --------------------------------------------------------------------------- per-item outcomes (pipeline/tables.py)

# Each prompt's win against the chosen reply, in % (ties 50): the annotations are alpaca_eval's layout.
item_scores = alpaca_eval.item_scores
