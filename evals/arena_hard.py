"""Arena-Hard-Auto: pairwise judging against a baseline, Bradley-Terry win rate with a bootstrap interval.

Implemented from arena-hard-auto's code and configs (it is not on PyPI), in
two versioned protocols (option ``protocol``; everything that differs lives in
:data:`PROTOCOLS`, each with the commit its values were read from):

* **v0.1** (the paper's; arena-hard-auto at 3071ef95, its ``gen_judgment.py``,
  ``show_result.py`` and ``config/judge_config.yaml``): 500 prompts, judge
  gpt-4-1106-preview (greedy, at most 4096 tokens), baseline gpt-4-0314, one
  system prompt and a template with ``{question_1}``, ``{answer_1}``,
  ``{answer_2}``; the verdict is the one distinct ``[[label]]`` of the
  judgment; a reply without any label is continued with upstream's follow-up
  turn (the reply, then the user turn :data:`V01_FOLLOW_UP`; two replies in
  all) and the labels are read from both replies together; two different
  labels make the game undecided.
* **v2.0** (arena-hard-auto at 196f6b82, unchanged since its v2.0 release:
  ``config/arena-hard-v2.0.yaml``, ``utils/judge_utils.py``,
  ``gen_judgment.py``): 750 prompts in categories ``hard_prompt`` (coding and
  math) and ``creative_writing``, judge gpt-4.1 (greedy, at most 16000
  tokens), a baseline and a system prompt per category (o3-mini-2025-01-31 for
  hard prompts, gemini-2.0-flash-001 for creative writing; the prompts come
  from the ``judge_settings`` asset, upstream's ``judge_utils.py``), a template
  with ``{QUESTION}``, ``{ANSWER_A}``, ``{ANSWER_B}``, one reply per game, and
  the verdict is the last match of the first of its two regexes
  (``[[label]]``, then ``[label]``) that matches the upper-cased judgment;
  ``A<B``-style labels count as their mirror. Each category is scored against
  its own baseline (``category_scores``); ``win_rate`` is the hard-prompt
  category's, as upstream's ``show_result.py`` reports by default.

Common to both: every prompt is judged twice, positions swapped (game 1 shows
the baseline as assistant A, game 2 the model); each decided game is a battle
between the baseline and the model, a strong verdict (``>>``) counting as
three battles, a tie as half a win each; Bradley-Terry ratings on the Elo
scale (400 points per factor 10 in odds, the baseline anchored at 1000) by
unregularised logistic regression on the battles; the win rate against the
baseline is the fitted probability of beating it, in %; the 95% interval comes
from the 2.5th and 97.5th percentiles of the model's rating over the bootstrap
resamples of the battles (v0.1: 100), mapped to win rates the same way;
``standard_error`` is the standard deviation of the bootstrap win rates.

Files, in either of arena-hard-auto's layouts (the layout does not decide the
version; the content does): questions ``{question_id, category, turns:
[{content}]}`` or ``{uid, category, subcategory, prompt}``; answers ``{question_id,
model_id, choices: [{turns: [{content}]}]}`` or ``{uid, ans_id, model, messages:
[..., {role: assistant, content: {answer}}], metadata}``. Model answers are
written in the layout of the question file. A file of the other version
(a v2.0 category, baseline or judge config under v0.1, or the reverse) is an
error that names both versions.

A game without a verdict leaves its prompt unscored (both games, so the
position swap stays balanced); arena-hard-auto silently drops such games.
Here a prompt left unscored is an error (:mod:`evals.results`) unless the
option ``allow_partial`` is set; then the result says ``partial: true`` and
``missing`` counts the prompts left out by reason. The v0.1 continuation is
the protocol's own retry: a reply without a label is cached only as a step of
a game that then got its verdict.
"""

from __future__ import annotations

import json
import logging
import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from evals.conversation import (
    Answer,
    answer_id,
    answer_record,
    answers_by_question,
    check_options,
    evaluation_parser,
    fastchat_answer,
    fetch_asset,
    only_model,
    openai_messages,
    require,
    template_id,
    usage,
)
from evals.judges import AskPolicy, Judge, JudgeReply, JudgeRequest, complete_all, continued, make_judge
from evals.records import normalised_records, numbered, read_records
from evals.records import require as require_field
from evals.results import CONFLICTING, NO_VERDICT, completeness, require_complete
from evals.source_constants import assignments, literal
from suite.data import Where
from suite.io import read_json, write_json

log = logging.getLogger(__name__)

NAME = "arena_hard"
COLUMNS = {"win_rate": "Arena-Hard WR"}
ERRORS = {"win_rate": "standard_error"}
ASSETS = {
    "baseline_answers": "the baseline model's answers (JSON lines; v2.0: one of its per-category baselines)",
    "second_baseline_answers": "v2.0: the other per-category baseline's answers (JSON lines)",
    "judge_config": "arena-hard-auto's judge config (v0.1: config/judge_config.yaml; v2.0: "
    "config/arena-hard-v2.0.yaml), or one JSON-lines record with the same keys",
    "judge_settings": "v2.0: per-category baselines and system prompts: arena-hard-auto's utils/judge_utils.py, "
    "or a JSON/YAML mapping {category: {baseline, system_prompt}}",
}
LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
MIRRORED = {"A<<B": "B>>A", "A<B": "B>A", "B=A": "A=B", "B<<A": "A>>B", "B<A": "A>B"}  # v2.0 also reads these
UNKNOWN_LABEL = "unknown verdict label"
SCALE, BASE, INIT_RATING = 400.0, 10.0, 1000.0
ELO_CLIP = 4000.0  # a one-sided (infinite) rating is clipped this far from the anchor for percentiles (odds 1e10)
V01_FOLLOW_UP = "continue your judgment and finish by outputting a final verdict label"  # gen_judgment.py @3071ef95
ANSWER = "an Arena-Hard answer record (question_id, model_id, choices) or (uid, model, messages)"
QUESTION = "an Arena-Hard question record (question_id, category, turns) or (uid, category, prompt)"
V20_BASELINES = {  # utils/judge_utils.py JUDGE_SETTINGS @196f6b82: question category -> baseline model
    "hard_prompt": "o3-mini-2025-01-31",
    "coding": "o3-mini-2025-01-31",
    "math": "o3-mini-2025-01-31",
    "creative_writing": "gemini-2.0-flash-001",
}
ANY_CATEGORY = "*"


@dataclass(frozen=True)
class Protocol:
    """One version of the Arena-Hard protocol: its judge, baselines, decoding, parsing and scoring settings."""

    version: str
    source: str  # where the values come from
    bench_name: str
    judge_model: str
    baselines: Mapping[str, str]  # question category -> baseline model (ANY_CATEGORY: every category)
    judge_temperature: float
    judge_max_tokens: int
    judgment_attempts: int
    verdict_patterns: tuple[str, ...]
    labels: Mapping[str, str]  # label as the judge may write it -> one of LABELS
    last_match: bool  # v2.0: patterns in order, upper-cased, last match; v0.1: one distinct label, else ask again
    template_keys: tuple[str, str, str]  # the template's fields for the question, answer A and answer B
    settings_asset: bool  # system prompts (and baselines) per category come from the judge_settings asset
    headline_category: str | None  # the category reported as win_rate (None: all prompts together)
    strong_weight: int
    bootstrap_rounds: int
    follow_up: str | None  # the user turn after a reply without a label (None: not continued)
    expected_judge_output_tokens: int  # what the cost guard expects a judgment to cost (evals.budget)
    generation: Mapping[str, Any]  # what the prompts are answered with (the workflow's benchmark decoding)

    @property
    def assets(self) -> tuple[str, ...]:
        """The asset files this version needs."""
        return ("baseline_answers", "judge_config", *(("judge_settings",) if self.settings_asset else ()))


PROTOCOLS: dict[str, Protocol] = {
    "v0.1": Protocol(
        version="v0.1",
        source="lmarena/arena-hard-auto@3071ef95d913bb5cd632641db336a3b6c7fe4bdd",
        bench_name="arena-hard-v0.1",
        judge_model="gpt-4-1106-preview",
        baselines={ANY_CATEGORY: "gpt-4-0314"},
        judge_temperature=0.0,
        judge_max_tokens=4096,
        judgment_attempts=2,
        verdict_patterns=(r"\[\[([AB<>=]+)\]\]",),
        labels={label: label for label in LABELS},
        last_match=False,
        template_keys=("question_1", "answer_1", "answer_2"),
        settings_asset=False,
        headline_category=None,
        strong_weight=3,
        bootstrap_rounds=100,
        follow_up=V01_FOLLOW_UP,
        # ~2,400 characters (about 600 tokens at 4 a token): a small sample (6) of gpt-4-1106-preview's v0.1
        # judgments in arena-hard-auto's published model_judgment/gpt-4-1106-preview/gpt-4-0613.jsonl; it puts a
        # model's v0.1 judging at about a quarter of the max_tokens bound, as real runs cost.
        expected_judge_output_tokens=600,
        generation={"temperature": 0.0, "max_new_tokens": 4096},
    ),
    "v2.0": Protocol(
        version="v2.0",
        source="lmarena/arena-hard-auto@196f6b826783b3da7310e361a805fa36f0be83f3",
        bench_name="arena-hard-v2.0",
        judge_model="gpt-4.1",
        baselines=V20_BASELINES,
        judge_temperature=0.0,
        judge_max_tokens=16000,
        judgment_attempts=1,
        verdict_patterns=(r"\[\[([AB<>=]+)\]\]", r"\[([AB<>=]+)\]"),
        labels={**{label: label for label in LABELS}, **MIRRORED},
        last_match=True,
        template_keys=("QUESTION", "ANSWER_A", "ANSWER_B"),
        settings_asset=True,
        headline_category="hard_prompt",
        strong_weight=3,
        bootstrap_rounds=100,
        follow_up=None,
        # No published v2.0 judgments were readable here; assumed as long as v0.1's (same system prompts).
        expected_judge_output_tokens=600,
        generation={"temperature": 0.0, "max_new_tokens": 16000},
    ),
}
OPTIONS: dict[str, Any] = {"protocol": "v0.1", "allow_partial": False, "bootstrap_rounds": None, "bootstrap_seed": 42}


def protocol(version: str) -> Protocol:
    if version not in PROTOCOLS:
        raise ValueError(f"{NAME}: protocol {version!r} is not implemented; available: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[version]


def run_protocol(options: Mapping[str, Any] | None) -> Protocol:
    """The protocol the (checked) options select."""
    return protocol(check_options(options or {}, OPTIONS, NAME)["protocol"])


# --------------------------------------------------------------------------- questions and answers


@dataclass(frozen=True)
class Question:
    """One prompt: its id, category, text, and whether its file had arena-hard-auto's ``uid`` layout."""

    question_id: Any
    category: str
    text: str
    uid_layout: bool


def version_of_category(category: str) -> str:
    """The protocol version a question category belongs to (v2.0's are its baseline table's)."""
    return "v2.0" if category in V20_BASELINES else "v0.1"


def question_text(record: Mapping[str, Any], where: Where) -> tuple[Any, str]:
    """A question record's id and prompt text, in either layout."""
    if "uid" in record:
        return require_field(record, "uid", where, QUESTION, (str, int)), require_field(
            record, "prompt", where, QUESTION
        )
    qid = require_field(record, "question_id", where, QUESTION, (str, int))
    turns = require_field(record, "turns", where, QUESTION, list)
    if not turns or not isinstance(turns[0], Mapping) or not isinstance(turns[0].get("content"), str):
        raise where.error("turns[0].content", "missing (an Arena-Hard prompt is one turn {content: str})")
    return qid, turns[0]["content"]


def parse_questions(records: Sequence[Mapping[str, Any]], origin: str, proto: Protocol) -> list[Question]:
    """Question records of either layout, checked to belong to ``proto``'s version."""
    questions = []
    for where, record in numbered(list(records), origin):
        qid, text = question_text(record, where)
        category = require_field(record, "category", where, QUESTION)
        if version_of_category(category) != proto.version:
            raise where.error(
                "category",
                f"{category!r} is an Arena-Hard {version_of_category(category)} question category, but the protocol "
                f"is {proto.version} (options.protocol; versions: {', '.join(PROTOCOLS)})",
            )
        questions.append(Question(qid, category, text, "uid" in record))
    return questions


def read_questions(path: str | Path) -> list[dict[str, Any]]:
    """Arena-Hard prompts (a ``question.jsonl`` normalised by ``suite.data arena_hard``), checked again on reading."""
    return normalised_records(path, "arena_hard")


def _texts(path: str | Path) -> list[tuple[Any, str, bool]]:
    """``(id, prompt, uid layout?)`` per question of a file, whatever its version."""
    return [
        (*question_text(record, where), "uid" in record) for where, record in numbered(read_questions(path), str(path))
    ]


def read_prompts(path: str | Path) -> list[list[dict[str, str]]]:
    """One single-turn conversation per prompt."""
    return [[{"role": "user", "content": text}] for _, text, _ in _texts(path)]


def write_outputs(prompts_path: str | Path, responses: Sequence[str], generator: str, out: str | Path) -> None:
    """The model's answers as a JSON list, in the layout of the question file (FastChat's, or arena-hard-auto's)."""
    prompts = _texts(prompts_path)
    if len(prompts) != len(responses):
        raise ValueError(f"{len(responses)} responses for {len(prompts)} prompts in {prompts_path}")
    write_json(
        out,
        [
            uid_answer(qid, generator, prompt, text)
            if uid_layout
            else answer_record(qid, generator, [{"content": text}])
            for (qid, prompt, uid_layout), text in zip(prompts, responses, strict=True)
        ],
    )


def uid_answer(uid: Any, model: str, prompt: str, text: str) -> dict[str, Any]:
    """arena-hard-auto's current answer record (``metadata`` left empty: its style counts are not used here)."""
    return {
        "uid": uid,
        "ans_id": answer_id(model, uid, [text]),
        "model": model,
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": {"answer": text}}],
        "metadata": {},
    }


def uid_layout_answer(record: Mapping[str, Any], where: Where, expected: str = ANSWER) -> Answer:
    """An answer of arena-hard-auto's current layout: its assistant messages' ``content.answer`` are the turns."""
    qid = require_field(record, "uid", where, expected, (str, int))
    model = require_field(record, "model", where, expected)
    turns = []
    for i, message in enumerate(require_field(record, "messages", where, expected, list)):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant", "system"):
            raise where.error(f"messages[{i}]", "expected a message object with role user, assistant or system")
        if message["role"] == "assistant":
            content = message.get("content")
            if not isinstance(content, Mapping) or not isinstance(content.get("answer"), str):
                raise where.error(f"messages[{i}].content.answer", "missing (an assistant message is {answer: str})")
            turns.append(content["answer"])
    if not turns:
        raise where.error("messages", "has no assistant message")
    return Answer(qid, model, turns)


def any_layout_answer(record: Mapping[str, Any], where: Where) -> Answer:
    """An answer record of either layout."""
    if "uid" in record or "messages" in record:
        return uid_layout_answer(record, where)
    return fastchat_answer(record, where, ANSWER)


def answers_by_model(records: Sequence[Mapping[str, Any]], origin: str) -> dict[str, dict[Any, Answer]]:
    """Answer records (of one or several models, e.g. two baseline files) grouped by model, then question."""
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for where, record in numbered(list(records), origin):
        by_model.setdefault(any_layout_answer(record, where).model, []).append(record)
    return {model: answers_by_question(rs, f"{origin} ({model})", any_layout_answer) for model, rs in by_model.items()}


# --------------------------------------------------------------------------- the judge config


@dataclass(frozen=True)
class JudgeConfig:
    """The judge prompt: system prompts by category, user templates, and baselines by category."""

    system_prompts: Mapping[str, str]  # category -> system prompt (ANY_CATEGORY: every category)
    prompt_templates: tuple[str, ...]
    baselines: Mapping[str, str]  # category -> baseline model (ANY_CATEGORY: every category)
    template: str  # versioned id for the cache

    def for_category(self, mapping: Mapping[str, str], category: str, what: str) -> str:
        if category in mapping:
            return mapping[category]
        if ANY_CATEGORY in mapping:
            return mapping[ANY_CATEGORY]
        raise ValueError(f"{NAME}: no {what} for question category {category!r} (have: {sorted(mapping)})")


PROTOCOL_KEYS = {  # judge config key -> Protocol attribute; present keys must agree with the protocol
    "bench_name": "bench_name",
    "judge_model": "judge_model",
    "temperature": "judge_temperature",
    "max_tokens": "judge_max_tokens",
    "number_of_judgment_attempts": "judgment_attempts",
}


def _config_file(path: Path) -> Mapping[str, Any]:
    """A YAML or JSON mapping, or a JSON-lines (or JSON list) file with exactly one record."""
    if path.suffix in (".yaml", ".yml"):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    elif path.suffix == ".json" and isinstance(read_json(path), Mapping):
        config = read_json(path)
    else:
        records = read_records(path)
        if len(records) != 1:
            raise ValueError(f"{path}: expected exactly one judge config record, got {len(records)}")
        config = records[0]
    if not isinstance(config, Mapping):
        raise ValueError(f"{path}: expected a mapping of judge settings")
    return config


def _check_agrees(path: Path, config: Mapping[str, Any], proto: Protocol) -> None:
    """Keys the protocol fixes must agree with it; a file of the other version is named as such."""
    if config.get("bench_name", proto.bench_name) != proto.bench_name:
        other = next((v for v, p in PROTOCOLS.items() if p.bench_name == config["bench_name"]), None)
        kind = f"the judge config of Arena-Hard {other}" if other else f"for {config['bench_name']!r}"
        raise ValueError(
            f"{path}: bench_name is {config['bench_name']!r}: this is {kind}, but the protocol is {proto.version} "
            f"(options.protocol; versions: {', '.join(PROTOCOLS)})"
        )
    for key, attribute in PROTOCOL_KEYS.items():
        if key in config and config[key] != getattr(proto, attribute):
            raise ValueError(
                f"{path}: {key} is {config[key]!r} but protocol {proto.version} has {getattr(proto, attribute)!r}"
            )
    patterns = config.get("regex_patterns", [config["regex_pattern"]] if "regex_pattern" in config else None)
    if patterns is not None and tuple(patterns) != proto.verdict_patterns:
        other = [v for v, p in PROTOCOLS.items() if p.verdict_patterns == tuple(patterns)]
        whose = f"; they are Arena-Hard {other[0]}'s" if other else ""
        raise ValueError(
            f"{path}: the verdict regexes {patterns} are not protocol {proto.version}'s ({proto.source}){whose}"
        )
    if config.get("baseline_model", proto.baselines.get(ANY_CATEGORY)) != proto.baselines.get(ANY_CATEGORY):
        raise ValueError(f"{path}: baseline_model is {config['baseline_model']!r}, not protocol {proto.version}'s")
    if config.get("pairwise") is False or config.get("baseline") is False or config.get("reference"):
        raise ValueError(f"{path}: only the pairwise, baseline-based, reference-free setting is supported")


def _templates(path: Path, config: Mapping[str, Any], proto: Protocol) -> tuple[str, ...]:
    templates = config.get("prompt_template")
    templates = [templates] if isinstance(templates, str) else templates
    if not templates or not all(isinstance(t, str) for t in templates):
        raise ValueError(f"{path}: needs a 'prompt_template' string or list of strings")
    question, answer_a, answer_b = proto.template_keys
    for text in templates:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        if not fields <= set(proto.template_keys) or not {answer_a, answer_b} <= fields:
            versions = [
                v for v, p in PROTOCOLS.items() if v != proto.version and fields and fields <= set(p.template_keys)
            ]
            which = f" (Arena-Hard {versions[0]}'s fields)" if versions else ""
            raise ValueError(
                f"{path}: a prompt template of protocol {proto.version} must use {{{answer_a}}} and {{{answer_b}}} "
                f"(and {{{question}}}), got {sorted(fields)}{which}"
            )
    return tuple(templates)


def load_judge_settings(path: str | Path, proto: Protocol) -> tuple[dict[str, str], dict[str, str]]:
    """System prompts and baselines by category (v2.0): upstream's ``judge_utils.py`` or a JSON/YAML mapping.

    A baseline other than the protocol's is logged (as a v0.1 baseline is),
    so small fixtures can name their own; the result records the baselines.
    """
    path = Path(path)
    settings = literal("JUDGE_SETTINGS", assignments(path), str(path)) if path.suffix == ".py" else _config_file(path)
    prompts, baselines = {}, {}
    for category, expected in proto.baselines.items():
        entry = settings.get(category)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("system_prompt"), str):
            raise ValueError(f"{path}: category {category!r} needs a 'system_prompt' string")
        if not isinstance(entry.get("baseline"), str):
            raise ValueError(f"{path}: category {category!r} needs a 'baseline' model name")
        if entry["baseline"] != expected:
            log.warning(
                "%s: baseline for %s is %r, not protocol %s's %r",
                path,
                category,
                entry["baseline"],
                proto.version,
                expected,
            )
        prompts[category], baselines[category] = entry["system_prompt"], entry["baseline"]
    return prompts, baselines


def load_judge_config(path: str | Path, proto: Protocol, settings: str | Path | None = None) -> JudgeConfig:
    """Read a judge config (and, for v2.0, the judge settings) and check they fit ``proto``."""
    path = Path(path)
    config = _config_file(path)
    _check_agrees(path, config, proto)
    templates = _templates(path, config, proto)
    if proto.settings_asset:
        if settings is None:
            raise ValueError(f"{NAME}: protocol {proto.version} needs the judge_settings asset (system prompts)")
        system_prompts, baselines = load_judge_settings(settings, proto)
    else:
        if settings is not None:
            raise ValueError(
                f"{NAME}: judge_settings is a v2.0 asset; protocol {proto.version} takes judge_config only"
            )
        if not isinstance(config.get("system_prompt"), str):
            raise ValueError(f"{path}: needs a 'system_prompt' string")
        system_prompts, baselines = {ANY_CATEGORY: config["system_prompt"]}, dict(proto.baselines)
    texts = [f"{category}\x00{text}" for category, text in sorted(system_prompts.items())]
    return JudgeConfig(
        system_prompts=system_prompts,
        prompt_templates=templates,
        baselines=baselines,
        template=template_id(f"arena_hard/{proto.version}", *texts, *templates),
    )


def parse_verdict(judgment: str, proto: Protocol) -> tuple[str | None, str | None]:
    """The verdict label of a judgment (one of :data:`LABELS`), or None and why, as the protocol's version reads it.

    v0.1: the one distinct match of its regex (no match: ``NO_VERDICT``, asked
    again; different labels: ``CONFLICTING``, not asked again). v2.0: the last
    match of the first regex that matches the upper-cased judgment.
    """
    if proto.last_match:
        for pattern in proto.verdict_patterns:
            matches = [m for m in re.findall(pattern, judgment.upper()) if m != ""]
            if matches:
                label = matches[-1].strip("\n")
                return (proto.labels[label], None) if label in proto.labels else (None, UNKNOWN_LABEL)
        return None, NO_VERDICT
    matches = [m for m in re.findall(proto.verdict_patterns[0], judgment) if m != ""]
    if not matches:
        return None, NO_VERDICT
    if len(set(matches)) > 1:
        return None, CONFLICTING
    label = matches[0].strip("\n")
    return (proto.labels[label], None) if label in proto.labels else (None, UNKNOWN_LABEL)


# --------------------------------------------------------------------------- judging


@dataclass
class Game:
    """One judged pairing of a prompt: ``game`` 1 shows the baseline as A, game 2 the model as A."""

    question_id: Any
    category: str
    baseline: str
    game: int
    messages: tuple[dict[str, str], ...]
    payload: dict[str, Any]
    replies: list[str] = field(default_factory=list)
    verdict: str | None = None
    missing_reason: str | None = None

    def request(self, config: JudgeConfig, proto: Protocol) -> JudgeRequest:
        """The game's first request (a continuation: :func:`judge_policy`)."""
        return JudgeRequest(
            messages=self.messages,
            max_tokens=proto.judge_max_tokens,
            temperature=proto.judge_temperature,
            top_logprobs=None,
            template=config.template,
            payload=self.payload,
            item=f"{NAME} question {self.question_id} game {self.game}",
        )

    @property
    def judgment(self) -> str:
        """All replies as arena-hard concatenates them."""
        return "".join("\n" + reply for reply in self.replies)


def build_games(
    questions: Sequence[Question],
    answers: Mapping[Any, str],
    baselines: Mapping[str, Mapping[Any, str]],
    config: JudgeConfig,
    proto: Protocol,
) -> list[Game]:
    """Both games of every prompt, against its category's baseline (``baselines``: model -> answers by question)."""
    games = []
    for q in questions:
        baseline = config.for_category(config.baselines, q.category, "baseline")
        system_prompt = config.for_category(config.system_prompts, q.category, "system prompt")
        theirs, mine = baselines[baseline][q.question_id], answers[q.question_id]
        for game, (a, b) in enumerate(((theirs, mine), (mine, theirs)), start=1):
            fields = dict(zip(proto.template_keys, (q.text, a, b), strict=True))
            prompts = [t.format(**fields) for t in config.prompt_templates]
            games.append(
                Game(
                    question_id=q.question_id,
                    category=q.category,
                    baseline=baseline,
                    game=game,
                    messages=openai_messages(system_prompt, prompts),
                    payload={
                        "task": "pairwise_verdict",
                        "question": q.text,
                        "answer_a": a,
                        "answer_b": b,
                        "game": game,
                    },
                )
            )
    return games


def judge_policy(proto: Protocol) -> AskPolicy:
    """A game is answered by a verdict; v0.1 continues a reply without any label with its follow-up turn."""

    def continuation(request: JudgeRequest, reply: JudgeReply, attempt: int) -> JudgeRequest | None:
        if proto.follow_up is None or parse_verdict(reply.text, proto)[1] != NO_VERDICT:
            return None
        return continued(request, reply, proto.follow_up)

    return AskPolicy(
        accept=lambda reply: parse_verdict(reply.text, proto)[0] is not None,
        attempts=proto.judgment_attempts,
        follow_up=continuation,
    )


def judge_all(judge: Judge, games: Sequence[Game], config: JudgeConfig, proto: Protocol) -> int:
    """Judge every game (continuing those without a label, in v0.1); returns the number of requests made."""
    exchanges = complete_all(judge, [g.request(config, proto) for g in games], "arena_hard judge", judge_policy(proto))
    for game, exchange in zip(games, exchanges, strict=True):
        game.replies = exchange.texts
        game.verdict, game.missing_reason = parse_verdict(game.judgment, proto)
        if not exchange.accepted:
            game.verdict = None
    return sum(len(e.replies) for e in exchanges)


# --------------------------------------------------------------------------- battles and Bradley-Terry


def battles_from_games(games: Sequence[Game], model: str, strong_weight: int) -> pd.DataFrame:
    """Battles (``model_a`` the baseline, ``model_b`` the model, ``winner``); strong verdicts count more.

    A strong verdict (``>>``) counts ``strong_weight`` times.

    Game 1 shows the baseline as A, game 2 shows the model as A, so a label
    means the opposite winner in the two games.
    """
    winner_of_label = {
        1: {"A>>B": "model_a", "A>B": "model_a", "A=B": "tie", "B>A": "model_b", "B>>A": "model_b"},
        2: {"A>>B": "model_b", "A>B": "model_b", "A=B": "tie", "B>A": "model_a", "B>>A": "model_a"},
    }
    rows = []
    for g in games:
        if g.verdict is None:
            continue
        weight = strong_weight if ">>" in g.verdict else 1
        row = {"question_id": g.question_id, "model_a": g.baseline, "model_b": model}
        rows += [{**row, "winner": winner_of_label[g.game][g.verdict]}] * weight
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner"])


def fit_bradley_terry(battles: pd.DataFrame, anchor: str) -> dict[str, float]:
    """Elo-scale Bradley-Terry ratings by unregularised logistic regression, ``anchor`` fixed at 1000.

    P(a beats b) = 1 / (1 + 10^((R_b - R_a) / 400)); a tie counts as half a
    win for each side. A model that never lost (never won) against all its
    opponents has no finite maximum-likelihood rating: it gets +inf (-inf),
    which is only well defined with two models.
    """
    from sklearn.linear_model import LogisticRegression

    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    if anchor not in models:
        raise ValueError(f"the anchor {anchor!r} is in no battle")
    free = [m for m in models if m != anchor]
    column = {m: i for i, m in enumerate(free)}
    score_a = battles["winner"].map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5})
    if score_a.isna().any():
        raise ValueError(f"unknown winner values {sorted(set(battles['winner'][score_a.isna()]))}")
    table = (
        pd.DataFrame({"a": battles["model_a"], "b": battles["model_b"], "wins_a": score_a, "wins_b": 1 - score_a})
        .groupby(["a", "b"], sort=True)[["wins_a", "wins_b"]]
        .sum()
    )
    rows, labels, weights = [], [], []
    for (a, b), (wins_a, wins_b) in table.iterrows():
        if a == b:
            continue
        x = np.zeros(len(free))
        if a != anchor:
            x[column[a]] += math.log(BASE)
        if b != anchor:
            x[column[b]] -= math.log(BASE)
        for label, weight in ((1, wins_a), (0, wins_b)):
            if weight > 0:
                rows.append(x)
                labels.append(label)
                weights.append(weight)
    ratings = {anchor: INIT_RATING}
    if not free:
        return ratings
    if len(set(labels)) < 2:  # complete separation: every battle went the same way
        if len(free) > 1:
            raise ValueError("every battle went the same way; Bradley-Terry ratings are undefined for >2 models")
        wins = score_a[battles["model_a"] == free[0]].sum() + (1 - score_a[battles["model_b"] == free[0]]).sum()
        ratings[free[0]] = math.inf if wins > 0 else -math.inf
        return ratings
    model = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8, max_iter=1000)
    model.fit(np.array(rows), np.array(labels), sample_weight=np.array(weights))
    ratings.update({m: float(SCALE * model.coef_[0][column[m]] + INIT_RATING) for m in free})
    return ratings


def win_rate(rating: float, baseline_rating: float = INIT_RATING) -> float:
    """The Elo win probability against the baseline, in %."""
    difference = (baseline_rating - rating) / SCALE
    if difference > 300:
        return 0.0
    return 100.0 / (1.0 + BASE**difference)


def bootstrap_ratings(battles: pd.DataFrame, anchor: str, model: str, rounds: int, seed: int) -> np.ndarray:
    """The model's rating on ``rounds`` resamples (with replacement) of the battles."""
    rng = np.random.default_rng(seed)
    n = len(battles)
    return np.array(
        [fit_bradley_terry(battles.iloc[rng.integers(0, n, n)], anchor).get(model, math.nan) for _ in range(rounds)]
    )


def score_battles(battles: pd.DataFrame, anchor: str, model: str, rounds: int, seed: int) -> dict[str, Any]:
    """Win rate against ``anchor`` with its bootstrap interval, as arena-hard v0.1 reports it.

    Percentiles are taken on the bootstrap ratings (infinite ones, from
    resamples the model won or lost entirely, held at +-ELO_CLIP from the
    anchor meanwhile) and mapped to win rates.
    """
    rating = fit_bradley_terry(battles, anchor)[model]
    low, high = INIT_RATING - ELO_CLIP, INIT_RATING + ELO_CLIP
    boot = np.clip(bootstrap_ratings(battles, anchor, model, rounds, seed), low, high)
    bounds = [float(v) for v in np.percentile(boot, [2.5, 97.5])]
    bounds = [math.inf if v >= high else -math.inf if v <= low else v for v in bounds]
    boot_rates = [win_rate(math.inf if r >= high else -math.inf if r <= low else r) for r in boot]
    return {
        "win_rate": win_rate(rating),
        "win_rate_ci_lower": win_rate(bounds[0]),
        "win_rate_ci_upper": win_rate(bounds[1]),
        "standard_error": float(np.std(boot_rates, ddof=1)) if rounds > 1 else None,
        "elo": _finite(rating),
        "elo_ci": [_finite(v) for v in bounds],
    }


def _finite(value: float) -> float | None:
    """JSON has no infinity: an unbounded rating is written as null (its win rate says 0 or 100)."""
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- evaluation


def _counts(games: Sequence[Game]) -> dict[str, Any]:
    """Verdicts as the judge gave them (positions), and the share of decided games won by position A."""
    shown = Counter(g.verdict for g in games if g.verdict is not None)
    decided = sum(n for label, n in shown.items() if label != "A=B")
    a_wins = shown["A>>B"] + shown["A>B"]
    return {
        "verdict_counts": {label: shown[label] for label in LABELS},
        "position_a_share": a_wins / decided if decided else None,
    }


EMPTY_SCORE = dict.fromkeys(("win_rate", "win_rate_ci_lower", "win_rate_ci_upper", "standard_error", "elo", "elo_ci"))


def category_score(games: Sequence[Game], model: str, proto: Protocol, rounds: int, seed: int) -> dict[str, Any]:
    """Win rate (with interval) against the baseline of these games, which all share one baseline."""
    battles = battles_from_games(games, model, proto.strong_weight)
    baseline = games[0].baseline
    scored = {"baseline": baseline, "n_battles": len(battles), **EMPTY_SCORE, "win_rate_unavailable_reason": None}
    if battles.empty:
        scored["win_rate_unavailable_reason"] = f"none of the {len(games)} games has a verdict"
        return scored
    return {**scored, **score_battles(battles, baseline, model, rounds, seed)}


def prepare(
    model_answers: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    baseline_answers: Sequence[Mapping[str, Any]],
    config: JudgeConfig,
    proto: Protocol,
    judge: Judge | None = None,
) -> tuple[list[Question], dict[Any, str], str, list[Game]]:
    """The prompts, the model's answers and name, and the games to judge (both orders per prompt)."""
    prompts = parse_questions(questions, "questions", proto)
    qids = [q.question_id for q in prompts]
    mine = answers_by_question(model_answers, "model answers", any_layout_answer)
    model_name = only_model(mine, "model answers")
    answers = _single_turn(mine, qids, "model answers")
    baselines = answers_by_model(baseline_answers, "baseline answers")
    if model_name in baselines:
        raise ValueError(f"the model and a baseline are both called {model_name!r}")
    _check_baselines(baselines, proto)
    if ANY_CATEGORY in config.baselines:  # v0.1: one baseline file, whatever its model (checked above)
        (only,) = baselines
        config = JudgeConfig(config.system_prompts, config.prompt_templates, {ANY_CATEGORY: only}, config.template)
    served: dict[str, list[Any]] = {}  # baseline model -> the questions it is the baseline of
    for q in prompts:
        served.setdefault(config.for_category(config.baselines, q.category, "baseline"), []).append(q.question_id)
    lacking = sorted(set(served) - set(baselines))
    if lacking:
        raise ValueError(
            f"no baseline answers by {lacking} (the baselines of these questions' categories); got answers of "
            f"{sorted(baselines)}: give each baseline's answer file as an asset"
        )
    texts = {
        name: _single_turn(baselines[name], qids, f"baseline answers ({name})", extra_ok=True)
        for name, qids in served.items()
    }
    if judge is not None and not judge.is_offline and judge.name.split(":", 1)[-1] != proto.judge_model:
        log.warning("judge %s is not protocol %s's %s", judge.name, proto.version, proto.judge_model)
    return prompts, answers, model_name, build_games(prompts, answers, texts, config, proto)


def _check_baselines(baselines: Mapping[str, Any], proto: Protocol) -> None:
    """Baseline answers of the other version are an error naming both; a custom v0.1 baseline only a warning."""
    for name in baselines:
        for version, other in PROTOCOLS.items():
            if version != proto.version and name in other.baselines.values() and name not in proto.baselines.values():
                raise ValueError(
                    f"baseline answers by {name!r} are Arena-Hard {version}'s baseline, but the protocol is "
                    f"{proto.version} (its baselines: {sorted(set(proto.baselines.values()))})"
                )
    if ANY_CATEGORY in proto.baselines:
        if len(baselines) != 1:
            raise ValueError(f"protocol {proto.version} has one baseline; got answers of {sorted(baselines)}")
        if proto.baselines[ANY_CATEGORY] not in baselines:
            log.warning("baseline %s is not protocol %s's %r", list(baselines), proto.version, proto.baselines["*"])


def evaluate(
    model_answers: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    baseline_answers: Sequence[Mapping[str, Any]],
    judge: Judge,
    config: JudgeConfig,
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Judge every prompt twice against its baseline; returns the result record and the judgments.

    A prompt with a game left without a verdict is an error unless
    ``allow_partial``; then both its games are left out.
    """
    opts = check_options(options or {}, OPTIONS, NAME)
    proto = protocol(opts["protocol"])
    rounds, seed = int(opts["bootstrap_rounds"] or proto.bootstrap_rounds), int(opts["bootstrap_seed"])
    prompts, answers, model_name, games = prepare(model_answers, questions, baseline_answers, config, proto, judge)
    n_requests = judge_all(judge, games, config, proto)
    missing = _missing_prompts(games)
    require_complete(NAME, len(prompts), missing, opts["allow_partial"])
    lost = {qid for ids in missing.values() for qid in ids}
    scored = [g for g in games if g.question_id not in lost]
    result: dict[str, Any] = {
        "benchmark": NAME,
        "protocol": proto.version,
        "protocol_source": proto.source,
        "generator": model_name,
        "baseline": None,
        **completeness(len(prompts), missing),
        "n_games": len(games),
        "n_games_missing": sum(g.verdict is None for g in games),
        "n_battles": len(battles_from_games(scored, model_name, proto.strong_weight)),
        **_counts(games),
        **EMPTY_SCORE,
        "win_rate_unavailable_reason": None,
    }
    if missing:
        result["partial_note"] = f"partial: {result['n_expected'] - result['n']} prompts without both verdicts left out"
    result.update(_scores(scored, games, model_name, proto, rounds, seed))
    result.update(
        {
            "bootstrap_rounds": rounds,
            "bootstrap_seed": seed,
            "avg_length": sum(len(a) for a in answers.values()) / max(1, len(answers)),
            "judge": judge.name,
            "judge_is_offline": judge.is_offline,
            "protocol_judge": proto.judge_model,
            "protocol_generation": dict(proto.generation),
            "template": config.template,
            "judge_decoding": {"temperature": proto.judge_temperature, "max_tokens": proto.judge_max_tokens},
            "options": {**opts, "bootstrap_rounds": rounds},
            **usage(judge, n_requests),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    return result, _judgments(games, model_name, judge.name)


def _missing_prompts(games: Sequence[Game]) -> dict[str, list[Any]]:
    """The prompts with a game left without a verdict, by the first such game's reason."""
    missing: dict[str, list[Any]] = {}
    for g in games:
        if g.verdict is None and not any(g.question_id in ids for ids in missing.values()):
            missing.setdefault(g.missing_reason or NO_VERDICT, []).append(g.question_id)
    return missing


def _scores(
    scored: Sequence[Game], games: Sequence[Game], model: str, proto: Protocol, rounds: int, seed: int
) -> dict[str, Any]:
    """The headline score (all prompts, or v2.0's headline category) and, for v2.0, one score per category."""
    if proto.headline_category is None:
        if not scored:
            return {"baseline": games[0].baseline, "win_rate_unavailable_reason": "no prompt has both verdicts"}
        return category_score(scored, model, proto, rounds, seed)
    by_category: dict[str, list[Game]] = {}
    for g in scored:
        by_category.setdefault(g.category, []).append(g)
    categories = {c: category_score(gs, model, proto, rounds, seed) for c, gs in sorted(by_category.items())}
    headline = categories.get(proto.headline_category)
    if headline is None:
        reason = f"no {proto.headline_category} prompt was scored (the protocol reports that category's win rate)"
        headline = {"win_rate_unavailable_reason": reason}
    headline = {k: v for k, v in headline.items() if k != "n_battles"}  # the top-level n_battles counts them all
    return {**headline, "win_rate_category": proto.headline_category, "category_scores": categories}


def _single_turn(
    records: Mapping[Any, Answer], qids: Sequence[Any], origin: str, extra_ok: bool = False
) -> dict[Any, str]:
    lacking = [q for q in qids if q not in records]
    if lacking:
        raise ValueError(f"{origin}: no answer for {len(lacking)} prompts, e.g. {lacking[:3]}")
    extra = sorted(set(records) - set(qids), key=str)
    if extra and not extra_ok:
        raise ValueError(f"{origin}: answers for prompts not in the question file, e.g. {extra[:3]}")
    texts = {}
    for qid in qids:
        turns = records[qid].turns
        if len(turns) != 1:
            raise ValueError(f"{origin}: the answer to {qid} has {len(turns)} turns; Arena-Hard prompts have one")
        texts[qid] = turns[0]
    return texts


def _judgments(games: Sequence[Game], model: str, judge_name: str) -> list[dict[str, Any]]:
    """arena-hard-auto's judgment records: one per prompt, its two games in order."""
    by_question: dict[Any, dict[str, Any]] = {}
    for g in games:
        record = by_question.setdefault(
            g.question_id,
            {
                "question_id": g.question_id,
                "model": model,
                "judge": judge_name,
                "category": g.category,
                "baseline": g.baseline,
                "games": [],
            },
        )
        record["games"].append(
            {
                "user_prompt": g.messages[-1]["content"],
                "judgment": g.judgment,
                "score": g.verdict,
                "attempts": len(g.replies),
                "missing_reason": g.missing_reason if g.verdict is None else None,
            }
        )
    return list(by_question.values())


# --------------------------------------------------------------------------- entry point


def _validate_asset(name: str, path: Path, proto: Protocol) -> None:
    """What ``--fetch-asset`` checks before it keeps a file."""
    if name == "judge_config":
        config = _config_file(path)
        _check_agrees(path, config, proto)
        _templates(path, config, proto)
    elif name == "judge_settings":
        load_judge_settings(path, proto)
    else:
        checked_answers(path)


def load_inputs(
    outputs: str | Path, questions: str | Path, assets: Mapping[str, str | Path | None], proto: Protocol
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], JudgeConfig]:
    """The model answers, questions, baseline answers (every baseline file) and judge config from their files."""
    lacking = [name for name in proto.assets if assets.get(name) is None]
    if lacking:
        raise ValueError(f"{NAME}: protocol {proto.version} needs the assets {', '.join(lacking)}")
    baselines = []
    for name in ("baseline_answers", "second_baseline_answers"):
        if assets.get(name) is not None:
            baselines += checked_answers(assets[name])  # type: ignore[arg-type]
    config = load_judge_config(assets["judge_config"], proto, assets.get("judge_settings"))  # type: ignore[arg-type]
    return checked_answers(outputs), read_questions(questions), baselines, config


def checked_answers(path: str | Path) -> list[dict[str, Any]]:
    """An answer file's records, each checked as it is read (so an error names the file)."""
    records = read_records(path)
    answers_by_model(records, str(path))
    return records


def judge_requests(
    outputs_path: str | Path,
    prompts_path: str | Path,
    options: Mapping[str, Any] | None = None,
    assets: Mapping[str, str | Path] | None = None,
) -> list[JudgeRequest]:
    """The first-attempt judge requests for an outputs file, two games per prompt (used by :mod:`evals.budget`).

    ``assets`` holds the files ``main`` takes as flags (:data:`ASSETS`).
    """
    proto = run_protocol(options)
    answers, questions, baselines, config = load_inputs(outputs_path, prompts_path, assets or {}, proto)
    *_, games = prepare(answers, questions, baselines, config, proto)
    return [g.request(config, proto) for g in games]


def expected_judge_output_tokens(options: Mapping[str, Any] | None) -> int:
    """What one judgment of the selected protocol is expected to cost in output tokens (:mod:`evals.budget`)."""
    return run_protocol(options).expected_judge_output_tokens


def main(argv: Sequence[str] | None = None) -> None:
    parser = evaluation_parser("python -m evals.arena_hard", __doc__, ASSETS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = json.loads(args.options)
    proto = run_protocol(options)

    if args.fetch_asset:
        require(parser, args, ["source", "out"])
        name = args.fetch_asset
        path = fetch_asset(json.loads(args.source), args.out, lambda p: _validate_asset(name, p, proto))
        log.info("wrote %s asset %s to %s", NAME, name, path)
        return
    require(parser, args, ["outputs", "questions", "judge", "out", *proto.assets])
    answers, questions, baselines, config = load_inputs(
        args.outputs, args.questions, {name: getattr(args, name) for name in ASSETS}, proto
    )
    judge = make_judge(json.loads(args.judge), args.cache)
    result, annotations = evaluate(answers, questions, baselines, judge, config, options)
    log.info("judge %s: %d calls, %d cache hits", judge.name, result["judge_calls"], result["cache_hits"])
    if args.annotations_out is not None:
        write_json(args.annotations_out, annotations)
    write_json(args.out, result)


if __name__ == "__main__":
    main()


# --------------------------------------------------------------------------- per-item outcomes (pipeline/tables.py)


def item_scores(annotations_path: str | Path) -> pd.Series:
    """The model's battles against the baseline, indexed by ``(question_id, battle)``: 100 won, 50 tie, 0 lost.

    Why battles and not one number per question: with two players the
    Bradley-Terry win rate is exactly the share of battles won (ties half),
    and a question contributes 2 to 6 battles (a strong verdict counts
    ``strong_weight`` times). A per-question mean would weight every question
    equally and no longer be the reported win rate. So the outcome of a
    question is its battles; the paired bootstrap (``suite.stats``) resamples
    questions (the first index level) and recomputes the pooled share, which
    is the win rate on each resample. As in the result, a prompt with a game
    left without a verdict is left out, and under v2.0 only the headline
    category's prompts count (its win rate is the one reported).
    """
    from suite.annotations import annotation_records

    battles = []
    for number, record in enumerate(annotation_records(annotations_path, ["question_id", "games"]), start=1):
        category = str(record.get("category") or "")
        proto = protocol(version_of_category(category))
        if proto.headline_category not in (None, category):
            continue
        games = []
        for game, judged in enumerate(record["games"], start=1):
            verdict = judged.get("score") if isinstance(judged, dict) else None
            if verdict is not None and verdict not in LABELS:
                raise ValueError(f"{annotations_path}: record {number}: field 'games[{game - 1}].score' is {verdict!r}")
            games.append(Game(record["question_id"], category, "baseline", game, (), {}, verdict=verdict))
        if all(g.verdict is not None for g in games):
            battles.append(battles_from_games(games, "model", proto.strong_weight))
    frame = pd.concat(battles) if battles else battles_from_games([], "model", 1)
    score = frame["winner"].map({"model_b": 100.0, "tie": 50.0, "model_a": 0.0})
    battle = frame.groupby("question_id", sort=False).cumcount()
    return pd.Series(
        score.to_numpy(), index=pd.MultiIndex.from_arrays([frame["question_id"], battle], names=["item", "battle"])
    )
