"""What MT-Bench and Arena-Hard share: question/answer records, conversations, asset files, the CLI frame.

Both benchmarks come from the FastChat family of formats:

* questions (JSON lines, validated by :mod:`suite.data`): ``question_id``,
  ``category`` and ``turns`` (MT-Bench: strings; Arena-Hard: ``{"content": str}``);
* answers: ``{"question_id", "answer_id", "model_id", "choices": [{"index": 0,
  "turns": [...]}]}``, turns again as strings (FastChat) or ``{"content"}``
  objects (arena-hard-auto v0.1). The suite writes model answers as a JSON list of
  such records (the workflow's generation files are ``.json``) and reads
  reference or baseline answers from JSON lines, as the benchmarks ship them.
  (arena-hard-auto's current ``uid``/``messages`` layout is read and written
  by :mod:`evals.arena_hard`.) Every answer record is checked field by field
  (:mod:`evals.records`), so a foreign file names its file, record and field.

Assets are the files a benchmark's judge needs besides its questions (judge
prompts, reference answers, baseline answers). The config names each as a
source, ``{"path": local file}`` or ``{"url": pinned URL}``; the workflow's
login-node step ``--fetch-asset`` validates it and copies it under
``results/data/assets/``, so compute nodes only read local files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.judges import CachedJudge, Judge
from evals.records import numbered
from evals.records import require as require_field
from suite.data import DataError, Where, fetch_url
from suite.io import copy_plain

Message = dict[str, str]
ANSWER = "a FastChat answer record (question_id, model_id, choices)"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Answer:
    """One model's answer to one question: the question's id, the model's name and its answer turns."""

    question_id: Any
    model: str
    turns: list[str]


def turn_text(turn: Any, where: Where, field_name: str) -> str:
    """A turn as text: FastChat stores strings, arena-hard-auto v0.1 ``{"content": str}`` objects."""
    if isinstance(turn, str):
        return turn
    if isinstance(turn, Mapping) and isinstance(turn.get("content"), str):
        return turn["content"]
    raise where.error(field_name, f"a turn is a string or an object with a 'content' string, got {type(turn).__name__}")


def question_turns(question: Mapping[str, Any]) -> list[str]:
    """The user turns of a question record that a normaliser of :mod:`suite.data` has checked."""
    return [t if isinstance(t, str) else t["content"] for t in question["turns"]]


def fastchat_answer(record: Mapping[str, Any], where: Where, expected: str = ANSWER) -> Answer:
    """A FastChat answer record: ``{question_id, model_id, choices: [{turns: [...]}, ...]}`` (its first choice)."""
    qid = require_field(record, "question_id", where, expected, (str, int))
    model = require_field(record, "model_id", where, expected)
    choices = require_field(record, "choices", where, expected, list)
    if not choices or not isinstance(choices[0], Mapping):
        raise where.error("choices[0]", "missing (an answer record has at least one choice, an object)")
    turns = choices[0].get("turns")
    if not isinstance(turns, list) or not turns:
        raise where.error("choices[0].turns", f"expected a non-empty list of turns, got {type(turns).__name__}")
    return Answer(qid, model, [turn_text(t, where, f"choices[0].turns[{i}]") for i, t in enumerate(turns)])


def answers_by_question(
    records: Sequence[Mapping[str, Any]], origin: str, parse: Callable[..., Answer] = fastchat_answer
) -> dict[Any, Answer]:
    """Answers keyed by question id, each parsed by ``parse``; a malformed or repeated record names file and record."""
    answers: dict[Any, Answer] = {}
    for where, record in numbered(list(records), origin):
        answer = parse(record, where)
        if answer.question_id in answers:
            raise where.error(None, f"repeats the answer to question {answer.question_id!r}")
        answers[answer.question_id] = answer
    return answers


def only_model(answers: Mapping[Any, Answer], origin: str) -> str:
    """The one model that gave every answer of a file."""
    names = sorted({a.model for a in answers.values()})
    if len(names) != 1:
        raise ValueError(f"{origin}: expected the answers of one model, got {names}")
    return names[0]


def answer_id(model_id: str, question_id: Any, turns: Sequence[str]) -> str:
    """A deterministic answer id (FastChat draws a random one), so reruns write identical files."""
    material = json.dumps([model_id, question_id, list(turns)], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()[:22]


def answer_record(question_id: Any, model_id: str, turns: Sequence[Any]) -> dict[str, Any]:
    """A FastChat answer record; ``turns`` are strings (MT-Bench) or ``{"content": str}`` (arena-hard v0.1)."""
    texts = [t if isinstance(t, str) else t["content"] for t in turns]
    return {
        "question_id": question_id,
        "answer_id": answer_id(model_id, question_id, texts),
        "model_id": model_id,
        "choices": [{"index": 0, "turns": list(turns)}],
    }


def openai_messages(system_prompt: str, user_prompts: Sequence[str]) -> tuple[Message, ...]:
    """A judge conversation in OpenAI chat form via FastChat's ``chatgpt`` template (as its judges build it).

    An empty system prompt is left out, as FastChat does.
    """
    from fastchat.conversation import get_conv_template

    conv = get_conv_template("chatgpt")
    conv.set_system_message(system_prompt)
    for prompt in user_prompts:
        conv.append_message(conv.roles[0], prompt)
        conv.append_message(conv.roles[1], None)
    return tuple(conv.to_openai_api_messages())


def template_id(name: str, *texts: str) -> str:
    """``name@sha256[:12]`` of the prompt texts, so an edited prompt never reuses cached replies."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12]
    return f"{name}@{digest}"


# --------------------------------------------------------------------------- statistics


def mean_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and its standard error (sample SD / sqrt(n)); None where undefined."""
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n == 1:
        return mean, None
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def usage(judge: Judge, n_requests: int) -> dict[str, int]:
    if isinstance(judge, CachedJudge):
        return {"judge_calls": judge.calls, "cache_hits": judge.hits}
    return {"judge_calls": n_requests, "cache_hits": 0}


# --------------------------------------------------------------------------- options and assets


def check_options(options: Mapping[str, Any], defaults: Mapping[str, Any], benchmark: str) -> dict[str, Any]:
    """Options over their defaults; an unknown key is an error that lists the valid ones."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"{benchmark}: unknown option(s) {unknown}; valid: {sorted(defaults)}")
    return {**defaults, **options}


def source_path(source: Mapping[str, Any], download: bool = True) -> Path:
    """The local file behind an asset source ``{"path": ...}`` or ``{"url": ..., "sha256"?: ...}``."""
    keys = set(source) if isinstance(source, Mapping) else set()
    if keys not in ({"path"}, {"url"}, {"url", "sha256"}):
        raise DataError(f"an asset source is {{'path': ...}} or {{'url': ..., 'sha256': ...}}, got {source!r}")
    if "path" in source:
        path = Path(source["path"])
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        return path
    return fetch_url(source["url"], download=download, sha256=source.get("sha256"))


def fetch_asset(source: Mapping[str, Any], out: str | Path, validate: Callable[[Path], Any]) -> Path:
    """Download or locate an asset, validate it with ``validate(path)``, and copy it to ``out`` atomically.

    A ``.gz`` asset is copied decompressed (``out`` is named without the ``.gz``).
    """
    path = source_path(source)
    validate(path)
    copy_plain(path, out)
    return Path(out)


# --------------------------------------------------------------------------- command line


def evaluation_parser(prog: str, description: str | None, assets: Mapping[str, str]) -> argparse.ArgumentParser:
    """The evaluate CLI both benchmarks share (the workflow's ``evaluate`` rule calls it the same way).

    ``assets`` maps each asset name to its help text; each becomes a
    ``--<name>`` flag, and ``--fetch-asset NAME --source JSON --out PATH``
    fetches one of them instead of evaluating.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--outputs", type=Path, help="model answers (JSON list of answer records)")
    parser.add_argument("--reference", "--questions", dest="questions", type=Path, help="the question file")
    for name, help_text in assets.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=Path, help=help_text)
    parser.add_argument("--judge", help='judge config as JSON, e.g. \'{"backend": "offline"}\'')
    parser.add_argument("--cache", type=Path, help="sqlite file of judge replies, shared between runs")
    parser.add_argument("--options", default="{}", help="benchmark options as a JSON object")
    parser.add_argument("--out", type=Path, help="result JSON (or, with --fetch-asset, where the asset goes)")
    parser.add_argument("--annotations-out", type=Path, help="per-question judgments JSON")
    parser.add_argument("--fetch-asset", choices=sorted(assets), help="fetch and validate one asset, then exit")
    parser.add_argument("--source", help='the asset\'s source as JSON: {"path": ...} or {"url": ...}')
    return parser


def require(parser: argparse.ArgumentParser, args: argparse.Namespace, names: Sequence[str]) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
