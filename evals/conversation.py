"""What MT-Bench and Arena-Hard share: question/answer records, conversations, asset files, the CLI frame.

Both benchmarks come from the FastChat family of formats:

* questions (JSON lines, validated by :mod:`suite.data`): ``question_id``,
  ``category`` and ``turns`` (MT-Bench: strings; Arena-Hard: ``{"content": str}``);
* answers: ``{"question_id", "answer_id", "model_id", "choices": [{"index": 0,
  "turns": [...]}]}``, turns again as strings (FastChat) or ``{"content"}``
  objects (arena-hard-auto). The suite writes model answers as a JSON list of
  such records (the workflow's generation files are ``.json``) and reads
  reference or baseline answers from JSON lines, as the benchmarks ship them.

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
from pathlib import Path
from typing import Any

from evals.judges import CachedJudge, Judge
from suite.data import DataError, fetch_url
from suite.io import copy_plain, plain_suffix, read_json, read_jsonl

Message = dict[str, str]


# --------------------------------------------------------------------------- records


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``.json`` list or a ``.jsonl`` file."""
    path = Path(path)
    records = read_json(path) if plain_suffix(path) == ".json" else read_jsonl(path)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path}: expected a list of JSON objects")
    return records


def turn_text(turn: Any) -> str:
    """A turn as text: FastChat stores strings, arena-hard-auto ``{"content": str}`` objects."""
    if isinstance(turn, str):
        return turn
    if isinstance(turn, Mapping) and isinstance(turn.get("content"), str):
        return turn["content"]
    raise ValueError(f"a turn must be a string or an object with a 'content' string, got {turn!r}")


def question_turns(question: Mapping[str, Any]) -> list[str]:
    return [turn_text(t) for t in question["turns"]]


def answer_turns(answer: Mapping[str, Any]) -> list[str]:
    """The answer's turns (its first choice, as both benchmarks judge only that one)."""
    return [turn_text(t) for t in answer["choices"][0]["turns"]]


def answers_by_question(records: Sequence[Mapping[str, Any]], origin: str) -> dict[Any, Mapping[str, Any]]:
    """Answer records keyed by question id; a malformed or duplicated record is an error naming ``origin``."""
    answers: dict[Any, Mapping[str, Any]] = {}
    for number, record in enumerate(records, start=1):
        try:
            qid = record["question_id"]
            answer_turns(record)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ValueError(f"{origin}: answer {number} is not a FastChat-style answer record: {exc}") from None
        if qid in answers:
            raise ValueError(f"{origin}: answer {number} repeats question_id {qid!r}")
        answers[qid] = record
    return answers


def answer_id(model_id: str, question_id: Any, turns: Sequence[str]) -> str:
    """A deterministic answer id (FastChat draws a random one), so reruns write identical files."""
    material = json.dumps([model_id, question_id, list(turns)], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()[:22]


def answer_record(question_id: Any, model_id: str, turns: Sequence[Any]) -> dict[str, Any]:
    texts = [turn_text(t) for t in turns]
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
