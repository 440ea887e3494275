"""MT-Bench: two-turn questions, single-answer grading 1-10 by a judge, FastChat's protocol.

What comes from the installed FastChat package (``fastchat.llm_judge.common``,
read from its source by ``evals.fastchat_judge``): the categories that are
judged against a reference answer (``NEED_REF_CATS``), the per-category
generation temperatures (``temperature_config``; 0.7 for any other category,
as ``gen_model_answer``), the rating regexes (``[[rating]]``, falling back to
``[rating]``; the first match counts, as ``run_judge_single`` does) and the
judge's chat template. The judge prompts themselves are a file in FastChat's
``judge_prompts.jsonl`` format; on the cluster FastChat's own file, with its
``question.jsonl`` and ``reference_answer/gpt-4.jsonl``, downloaded from a
pinned commit.

Protocol, as ``gen_judgment.py --mode single``: turn 1 of every question is
judged with ``single-v1`` (``single-math-v1`` with the reference answer for the
reference categories), turn 2 with ``single-v1-multi-turn``
(``single-math-v1-multi-turn``), seeing the whole two-turn conversation; the
judge decodes greedily with at most 2048 tokens.

Where this module departs from FastChat, on purpose:

* FastChat records an unparseable judgment as -1 and ``show_result`` silently
  drops it, so its average can cover fewer questions than it says. Here an
  unparseable judgment (or a rating outside 1-10, e.g. a ``[2023]`` caught by
  the fallback regex) is asked again, up to ``judge_attempts`` times in all, at
  ``retry_temperature`` (each retry its own cache entry; an unparsed reply is
  cached only beside the retry that parsed, so a rerun replays the exchange),
  and then counted as missing. A question with a missing judgment is an error
  (:mod:`evals.results`: no result is written) unless the option
  ``allow_partial`` is set; then the result says ``partial: true``, ``missing``
  counts the questions left out, and every ``n`` is the number of questions
  (or turns) actually averaged.
* The overall score is the mean over questions of each question's mean over
  its turns (FastChat pools all turn judgments; the two agree when every
  question has both turns judged), so that its standard error is over
  independent questions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import string
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from evals.conversation import (
    answer_record,
    answers_by_question,
    check_options,
    evaluation_parser,
    fetch_asset,
    mean_se,
    openai_messages,
    question_turns,
    require,
    template_id,
    usage,
)
from evals.fastchat_judge import NEED_REF_CATS, one_score_pattern, one_score_pattern_backup, temperature_config
from evals.judges import AskPolicy, Judge, JudgeReply, JudgeRequest, complete_all, make_judge
from evals.records import normalised_records, numbered, read_records
from evals.records import require as require_field
from evals.results import UNPARSED, completeness, require_complete
from suite.io import write_json

log = logging.getLogger(__name__)

NAME = "mt_bench"
COLUMNS = {"score": "MT-Bench"}
ERRORS = {"score": "score_standard_error"}
ASSETS = {
    "judge_prompts": "judge prompts in FastChat's judge_prompts.jsonl format",
    "reference_answers": "reference answers (FastChat answer records, JSON lines) for the reference categories",
}
OPTIONS: dict[str, Any] = {"allow_partial": False, "judge_attempts": 3, "retry_temperature": 0.7}

DEFAULT_TEMPERATURE = 0.7  # gen_model_answer's temperature for a category missing from temperature_config
JUDGE_DECODING = {"temperature": 0.0, "max_tokens": 2048}  # run_judge_single for an OpenAI judge
# Mean length of 160 real GPT-4 single-grading judgments (FastChat's prompts, 80 questions x 2 turns):
# 827 characters, about 207 tokens at 4 characters a token. Source: instructlab/eval at commit 810dcfce,
# data/mt_bench/model_judgment/gpt-4_single.jsonl.
EXPECTED_JUDGE_OUTPUT_TOKENS = 207
JUDGE_PROMPT = "a FastChat judge prompt (name, system_prompt, prompt_template)"
RATING_RANGE = (1.0, 10.0)
# make_judge_single: (reference-based?, turn) -> judge prompt name, and the fields each prompt may use.
JUDGE_PROMPTS = {
    (False, 1): "single-v1",
    (True, 1): "single-math-v1",
    (False, 2): "single-v1-multi-turn",
    (True, 2): "single-math-v1-multi-turn",
}
PROMPT_FIELDS = {
    (False, 1): {"question", "answer"},
    (True, 1): {"question", "answer", "ref_answer_1"},
    (False, 2): {"question_1", "answer_1", "question_2", "answer_2"},
    (True, 2): {"question_1", "answer_1", "question_2", "answer_2", "ref_answer_1", "ref_answer_2"},
}


# --------------------------------------------------------------------------- questions and generation


def read_questions(path: str | Path) -> list[dict[str, Any]]:
    """MT-Bench questions (a ``question.jsonl`` normalised by ``suite.data mt_bench``), checked again on reading."""
    return normalised_records(path, "mt_bench")


def read_prompts(path: str | Path) -> list[list[dict[str, str]]]:
    """The first turn of every question as a conversation (the later turns come from :func:`read_turns`)."""
    return [[{"role": "user", "content": question_turns(q)[0]}] for q in read_questions(path)]


def read_turns(path: str | Path) -> list[list[str]]:
    """Every question's user turns; generation answers them in order, each turn seeing the earlier answers."""
    return [question_turns(q) for q in read_questions(path)]


def category_temperature(category: str) -> float:
    return float(temperature_config.get(category, DEFAULT_TEMPERATURE))


def prompt_decodings(path: str | Path, decoding: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's decoding with FastChat's temperature for each question's category."""
    return [{**decoding, "temperature": category_temperature(q["category"])} for q in read_questions(path)]


def write_outputs(
    prompts_path: str | Path, responses: Sequence[Sequence[str]], generator: str, out: str | Path
) -> None:
    """FastChat's model-answer records (a JSON list), one per question, one answer per turn."""
    questions = read_questions(prompts_path)
    if len(questions) != len(responses):
        raise ValueError(f"{len(responses)} responses for {len(questions)} questions in {prompts_path}")
    records = []
    for question, turns in zip(questions, responses, strict=True):
        if isinstance(turns, str) or len(turns) != len(question["turns"]):
            raise ValueError(f"question {question['question_id']}: expected one answer per turn, got {turns!r:.80}")
        record = answer_record(question["question_id"], generator, list(turns))
        record["temperature"] = category_temperature(question["category"])
        records.append(record)
    write_json(out, records)


# --------------------------------------------------------------------------- judge prompts and parsing


def load_prompts(path: str | Path) -> dict[str, dict[str, Any]]:
    """FastChat judge prompts by name, checked to hold the four single-grading prompts in usable form."""
    prompts = {  # as FastChat's load_judge_prompts: the file's records by name
        require_field(record, "name", where, JUDGE_PROMPT): record
        for where, record in numbered(read_records(path), str(path))
    }
    for key, name in JUDGE_PROMPTS.items():
        if name not in prompts:
            raise ValueError(f"{path}: judge prompt {name!r} is missing (needed: {', '.join(JUDGE_PROMPTS.values())})")
        prompt = prompts[name]
        for field_name in ("system_prompt", "prompt_template"):
            if not isinstance(prompt.get(field_name), str):
                raise ValueError(f"{path}: judge prompt {name!r}: {field_name!r} must be a string")
        if prompt.get("output_format") != "[[rating]]":
            raise ValueError(f"{path}: judge prompt {name!r}: output_format must be '[[rating]]'")
        fields = {f for _, f, _, _ in string.Formatter().parse(prompt["prompt_template"]) if f is not None}
        needed = {"answer"} if key[1] == 1 else {"answer_2"}
        if key[0]:
            needed |= {"ref_answer_1"} if key[1] == 1 else {"ref_answer_2"}
        if not needed <= fields or not fields <= PROMPT_FIELDS[key]:
            raise ValueError(
                f"{path}: judge prompt {name!r} uses fields {sorted(fields)}; it needs {sorted(needed)} "
                f"and may use only {sorted(PROMPT_FIELDS[key])}"
            )
    return prompts


def parse_rating(text: str) -> float | None:
    """FastChat's parse: the first ``[[x]]``, else the first ``[x]``; None if neither or outside 1-10."""
    match = one_score_pattern.search(text) or one_score_pattern_backup.search(text)
    if match is None:
        return None
    rating = float(match.group(1))
    return rating if RATING_RANGE[0] <= rating <= RATING_RANGE[1] else None


def read_reference_answers(path: str | Path) -> dict[Any, list[str]]:
    """Reference answers by question id (FastChat answer records, e.g. ``reference_answer/gpt-4.jsonl``)."""
    return {qid: answer.turns for qid, answer in answers_by_question(read_records(path), str(path)).items()}


def _validate_asset(name: str, path: Path) -> None:
    if name == "judge_prompts":
        load_prompts(path)
    else:
        read_reference_answers(path)


# --------------------------------------------------------------------------- judging


@dataclass
class Judgment:
    """One judged turn of one question, with every attempt's reply."""

    question_id: Any
    category: str
    turn: int
    prompt_name: str
    messages: tuple[dict[str, str], ...]
    template: str
    payload: dict[str, Any]
    replies: list[str] = field(default_factory=list)
    rating: float | None = None

    def request(self) -> JudgeRequest:
        """The judgment as FastChat asks for it (its retries: :func:`retry_policy`)."""
        return JudgeRequest(
            messages=self.messages,
            max_tokens=JUDGE_DECODING["max_tokens"],
            temperature=JUDGE_DECODING["temperature"],
            top_logprobs=None,
            template=self.template,
            payload=self.payload,
            item=f"{NAME} question {self.question_id} turn {self.turn}",
        )


def build_judgments(
    questions: Sequence[Mapping[str, Any]],
    answers: Mapping[Any, Sequence[str]],
    prompts: Mapping[str, Mapping[str, Any]],
    references: Mapping[Any, Sequence[str]] | None,
) -> list[Judgment]:
    """Turn 1 of every question, then turn 2 of every two-turn question (FastChat's order of matches)."""
    judgments = []
    for turn in (1, 2):
        for q in questions:
            q_turns = question_turns(q)
            if len(q_turns) < turn:
                continue
            qid, a_turns = q["question_id"], answers[q["question_id"]]
            ref_based = q["category"] in NEED_REF_CATS
            fields: dict[str, str] = (
                {"question": q_turns[0], "answer": a_turns[0]}
                if turn == 1
                else {
                    "question_1": q_turns[0],
                    "question_2": q_turns[1],
                    "answer_1": a_turns[0],
                    "answer_2": a_turns[1],
                }
            )
            reference = None
            if ref_based:
                if references is None or qid not in references or len(references[qid]) < turn:
                    raise ValueError(
                        f"question {qid} ({q['category']}) is judged against a reference answer for turn {turn}, "
                        "but the reference answers have none"
                    )
                fields.update({f"ref_answer_{k + 1}": references[qid][k] for k in range(turn)})
                reference = references[qid][turn - 1]
            name = JUDGE_PROMPTS[(ref_based, turn)]
            prompt = prompts[name]
            judgments.append(
                Judgment(
                    question_id=qid,
                    category=q["category"],
                    turn=turn,
                    prompt_name=name,
                    messages=openai_messages(prompt["system_prompt"], [prompt["prompt_template"].format(**fields)]),
                    template=template_id(f"mt_bench/{name}", prompt["system_prompt"], prompt["prompt_template"]),
                    payload={
                        "task": "single_rating",
                        "question": q_turns[turn - 1],
                        "answer": a_turns[turn - 1],
                        "reference": reference,
                        "question_id": qid,
                        "turn": turn,
                    },
                )
            )
    return judgments


def retry_policy(attempts: int, retry_temperature: float) -> AskPolicy:
    """A rating that does not parse is asked again at ``retry_temperature``, each retry under its own cache key."""

    def retry(request: JudgeRequest, reply: JudgeReply, attempt: int) -> JudgeRequest:
        template = request.template.split("#retry")[0]
        return dataclasses.replace(request, temperature=retry_temperature, template=f"{template}#retry{attempt}")

    return AskPolicy(accept=lambda reply: parse_rating(reply.text) is not None, attempts=attempts, follow_up=retry)


def judge_all(judge: Judge, judgments: Sequence[Judgment], attempts: int, retry_temperature: float) -> int:
    """Ask for every rating, re-asking unparseable ones; returns the number of requests made."""
    policy = retry_policy(attempts, retry_temperature)
    exchanges = complete_all(judge, [j.request() for j in judgments], "mt_bench judge", policy)
    for judgment, exchange in zip(judgments, exchanges, strict=True):
        judgment.replies = exchange.texts
        judgment.rating = parse_rating(exchange.reply.text) if exchange.accepted else None
    unparsed = sum(j.rating is None for j in judgments)
    if unparsed:
        log.warning("%d judgments without a rating after %d attempts", unparsed, attempts)
    return sum(len(e.replies) for e in exchanges)


# --------------------------------------------------------------------------- scores


def compute_scores(judgments: Sequence[Judgment]) -> dict[str, Any]:
    """Per-turn and overall means over the rated judgments, with standard errors, n and the contract's keys.

    A question counts in the overall score only when every turn of it was
    rated; ``missing`` counts the questions left out, ``missing_judgments``
    lists the unrated turns.
    """
    missing = [j for j in judgments if j.rating is None]
    result: dict[str, Any] = {"n_judgments": len(judgments), "n_missing": len(missing)}
    result["missing_judgments"] = [{"question_id": j.question_id, "turn": j.turn} for j in missing]
    for turn in sorted({j.turn for j in judgments}):
        rated = [j.rating for j in judgments if j.turn == turn and j.rating is not None]
        mean, se = mean_se(rated)
        result.update(
            {f"score_turn_{turn}": mean, f"score_turn_{turn}_standard_error": se, f"n_turn_{turn}": len(rated)}
        )

    by_question: dict[Any, list[float | None]] = defaultdict(list)
    for j in judgments:
        by_question[j.question_id].append(j.rating)
    complete = [sum(r) / len(r) for r in by_question.values() if None not in r]  # type: ignore[arg-type]
    mean, se = mean_se(complete)
    result.update(score=mean, score_standard_error=se, score_unavailable_reason=None)
    result.update(
        completeness(len(by_question), {UNPARSED: unrated_questions(judgments)}), n_questions=len(by_question)
    )
    if missing:
        result["partial_note"] = (
            f"partial: {len(missing)} of {len(judgments)} judgments missing; every n counts only rated ones"
        )
    categories: dict[str, list[float]] = defaultdict(list)
    for j in judgments:
        if j.rating is not None:
            categories[j.category].append(j.rating)
    result["category_scores"] = {c: sum(v) / len(v) for c, v in sorted(categories.items())}
    return result


def unrated_questions(judgments: Sequence[Judgment]) -> list[Any]:
    """The questions with at least one turn left without a rating, in order."""
    return list(dict.fromkeys(j.question_id for j in judgments if j.rating is None))


def check_run_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    opts = check_options(options or {}, OPTIONS, NAME)
    if int(opts["judge_attempts"]) < 1:
        raise ValueError(f"{NAME}: judge_attempts must be >= 1, got {opts['judge_attempts']}")
    return opts


def prepare(
    model_answers: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    prompts: Mapping[str, Mapping[str, Any]],
    references: Mapping[Any, Sequence[str]] | None,
) -> tuple[dict[Any, list[str]], list[Judgment]]:
    """The answers by question id, checked against the questions, and the judgments to ask for."""
    by_question = answers_by_question(model_answers, "model answers")
    qids = [q["question_id"] for q in questions]
    if set(by_question) != set(qids):
        lacking, extra = sorted(set(qids) - set(by_question), key=str), sorted(set(by_question) - set(qids), key=str)
        raise ValueError(f"model answers do not match the questions: no answer for {lacking}, no question for {extra}")
    answers = {qid: answer.turns for qid, answer in by_question.items()}
    for q in questions:
        if len(answers[q["question_id"]]) != len(q["turns"]):
            raise ValueError(
                f"question {q['question_id']} has {len(q['turns'])} turns but its answer has a different number"
            )
    return answers, build_judgments(questions, answers, prompts, references)


def evaluate(
    model_answers: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    judge: Judge,
    prompts: Mapping[str, Mapping[str, Any]],
    references: Mapping[Any, Sequence[str]] | None,
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Judge every turn of every answer; returns the result record and the per-turn judgments."""
    opts = check_run_options(options)
    answers, judgments = prepare(model_answers, questions, prompts, references)
    n_requests = judge_all(judge, judgments, int(opts["judge_attempts"]), float(opts["retry_temperature"]))
    require_complete(NAME, len(questions), {UNPARSED: unrated_questions(judgments)}, bool(opts["allow_partial"]))
    generators = {str(record.get("model_id")) for record in model_answers}
    result = {
        "benchmark": NAME,
        "generator": ", ".join(sorted(generators)),
        **compute_scores(judgments),
        "avg_length": sum(len(t) for a in answers.values() for t in a) / max(1, sum(len(a) for a in answers.values())),
        "judge": judge.name,
        "judge_is_offline": judge.is_offline,
        "judge_prompts": {j.prompt_name: j.template for j in judgments},
        "judge_decoding": JUDGE_DECODING,
        "reference_categories": list(NEED_REF_CATS),
        "options": opts,
        **usage(judge, n_requests),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    annotations = [
        {
            "question_id": j.question_id,
            "category": j.category,
            "turn": j.turn,
            "model": result["generator"],
            "judge": [judge.name, j.prompt_name],
            "user_prompt": j.messages[-1]["content"],
            "judgment": j.replies[-1] if j.replies else None,
            "score": j.rating,
            "attempts": j.replies,
        }
        for j in judgments
    ]
    return result, annotations


# --------------------------------------------------------------------------- entry point


def load_inputs(
    outputs: str | Path, questions: str | Path, judge_prompts: str | Path, reference_answers: str | Path | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, Any]], dict[Any, list[str]] | None]:
    """The model answers, questions, judge prompts and reference answers (None without a file) from their files.

    Every file is checked as it is read, so an error names the file.
    """
    references = read_reference_answers(reference_answers) if reference_answers else None
    answers = read_records(outputs)
    answers_by_question(answers, str(outputs))
    return answers, read_questions(questions), load_prompts(judge_prompts), references


def judge_requests(
    outputs_path: str | Path,
    prompts_path: str | Path,
    options: Mapping[str, Any] | None = None,
    assets: Mapping[str, str | Path] | None = None,
) -> list[JudgeRequest]:
    """The first-attempt judge requests for an outputs file (used by :mod:`evals.budget`).

    ``assets`` holds the files ``main`` takes as flags: ``judge_prompts`` and,
    for the reference categories, ``reference_answers``.
    """
    assets = assets or {}
    if "judge_prompts" not in assets:
        raise ValueError(f"{NAME}: judge_requests needs the judge_prompts asset")
    check_run_options(options)
    answers, questions, prompts, references = load_inputs(
        outputs_path, prompts_path, assets["judge_prompts"], assets.get("reference_answers")
    )
    _, judgments = prepare(answers, questions, prompts, references)
    return [j.request() for j in judgments]


def main(argv: Sequence[str] | None = None) -> None:
    parser = evaluation_parser("python -m evals.mt_bench", __doc__, ASSETS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.fetch_asset:
        require(parser, args, ["source", "out"])
        name = args.fetch_asset
        path = fetch_asset(json.loads(args.source), args.out, lambda p: _validate_asset(name, p))
        log.info("wrote %s asset %s to %s", NAME, name, path)
        return
    require(parser, args, ["outputs", "questions", "judge", "out", "judge_prompts"])
    judge = make_judge(json.loads(args.judge), args.cache)
    answers, questions, prompts, references = load_inputs(
        args.outputs, args.questions, args.judge_prompts, args.reference_answers
    )
    result, annotations = evaluate(answers, questions, judge, prompts, references, json.loads(args.options))
    log.info("judge %s: %d calls, %d cache hits", judge.name, result["judge_calls"], result["cache_hits"])
    if args.annotations_out is not None:
        write_json(args.annotations_out, annotations)
    write_json(args.out, result)


if __name__ == "__main__":
    main()


# --------------------------------------------------------------------------- per-item outcomes (pipeline/tables.py)


def item_scores(annotations_path: str | Path) -> pd.Series:
    """Each question's mean rating over its turns, by question id; a question with an unrated turn is left out.

    That is this module's overall score (the mean over questions of each
    question's turn mean, over complete questions), so the mean of the
    series is the reported score.
    """
    from suite.annotations import annotation_records

    records = annotation_records(annotations_path, ["question_id", "turn", "score"])
    ratings = pd.DataFrame({"item": [r["question_id"] for r in records], "score": [r["score"] for r in records]})
    complete = ratings.groupby("item", sort=False)["score"].agg(lambda s: s.isna().sum() == 0 and len(s) > 0)
    ratings = ratings[ratings["item"].map(complete)]
    return ratings.groupby("item", sort=False)["score"].mean().astype(float)
