"""Arena-Hard-Auto: pairwise judging against a baseline, Bradley-Terry win rate with a bootstrap interval.

Implemented from the published v0.1 protocol (arena-hard-auto is not on PyPI):

* every prompt is judged twice, positions swapped: game 1 shows the baseline
  as assistant A and the model as B, game 2 the other way round;
* the judge (v0.1: gpt-4-1106-preview, greedy, at most 4096 tokens) answers
  with one of ``[[A>>B]]``, ``[[A>B]]``, ``[[A=B]]``, ``[[B>A]]``, ``[[B>>A]]``,
  found with the config's regex; a reply without a label is continued
  (the reply and a request for the final verdict are appended, at most
  ``judgment_attempts`` replies in all) and the labels are read from all
  replies together; two different labels make the game undecided;
* each decided game is a battle between the baseline and the model, a strong
  verdict (``>>``) counting as three battles, a tie as half a win each;
* Bradley-Terry ratings on the Elo scale (400 points per factor 10 in odds,
  the baseline anchored at 1000) by logistic regression on the battles,
  unregularised; the win rate against the baseline is the fitted probability
  of beating it, in %; the 95% interval comes from the 2.5th and 97.5th
  percentiles of the model's rating over 100 bootstrap resamples of the
  battles, mapped to win rates the same way. ``standard_error`` is the
  standard deviation of the bootstrap win rates.

The judge's system prompt and template are a file: arena-hard-auto's
``config/judge_config.yaml`` on the cluster (downloaded from a pinned commit),
or a JSON-lines file holding one record with the same keys at CPU scale. A
game without a verdict is counted (``n_games_missing``); arena-hard-auto
silently drops it, here the win rate is None with a reason unless the option
``allow_partial`` is set (then ``partial: true``).

The protocol is versioned (option ``protocol``): everything that differs
between versions lives in :data:`PROTOCOLS`.
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
    answer_record,
    answer_turns,
    answers_by_question,
    check_options,
    evaluation_parser,
    fetch_asset,
    openai_messages,
    question_turns,
    read_records,
    require,
    template_id,
    usage,
)
from evals.judges import Judge, JudgeRequest, complete_all, make_judge
from suite.io import read_jsonl, write_json

log = logging.getLogger(__name__)

NAME = "arena_hard"
COLUMNS = {"win_rate": "Arena-Hard WR"}
ERRORS = {"win_rate": "standard_error"}
ASSETS = {
    "baseline_answers": "the baseline model's answers (arena-hard answer records, JSON lines)",
    "judge_config": "judge system prompt and template: arena-hard-auto's judge_config.yaml, or one JSON-lines record",
}
LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
SCALE, BASE, INIT_RATING = 400.0, 10.0, 1000.0
ELO_CLIP = 4000.0  # a one-sided (infinite) rating is clipped this far from the anchor for percentiles (odds 1e10)


@dataclass(frozen=True)
class Protocol:
    """One version of the Arena-Hard protocol: its judge, baseline, decoding, parsing and scoring settings."""

    version: str
    bench_name: str
    judge_model: str
    baseline_model: str
    judge_temperature: float
    judge_max_tokens: int
    judgment_attempts: int
    verdict_pattern: str
    strong_weight: int
    bootstrap_rounds: int
    follow_up: str
    generation: Mapping[str, Any]  # what the prompts are answered with (the workflow's benchmark decoding)


PROTOCOLS: dict[str, Protocol] = {
    "v0.1": Protocol(
        version="v0.1",
        bench_name="arena-hard-v0.1",
        judge_model="gpt-4-1106-preview",
        baseline_model="gpt-4-0314",
        judge_temperature=0.0,
        judge_max_tokens=4096,
        judgment_attempts=2,
        verdict_pattern=r"\[\[([AB<>=]+)\]\]",
        strong_weight=3,
        bootstrap_rounds=100,
        follow_up="Continue your judgment, then end it with your final verdict label.",
        generation={"temperature": 0.0, "max_new_tokens": 4096},
    ),
    # "v2.0": 750 prompts (hard prompts plus creative writing), newer judges and baselines, and changed
    # question/answer files and judge configs. Add it here as its own Protocol (and its own prompt set and
    # assets in the config) once implemented; nothing in v0.1's settings carries over unchecked.
}
OPTIONS: dict[str, Any] = {"protocol": "v0.1", "allow_partial": False, "bootstrap_rounds": None, "bootstrap_seed": 42}


def protocol(version: str) -> Protocol:
    if version not in PROTOCOLS:
        raise ValueError(f"{NAME}: protocol {version!r} is not implemented; available: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[version]


# --------------------------------------------------------------------------- prompts and outputs


def read_questions(path: str | Path) -> list[dict[str, Any]]:
    """Arena-Hard prompts (a ``question.jsonl`` normalised by ``suite.data arena_hard``)."""
    return read_jsonl(path)


def read_prompts(path: str | Path) -> list[list[dict[str, str]]]:
    """One single-turn conversation per prompt."""
    return [[{"role": "user", "content": question_turns(q)[0]}] for q in read_questions(path)]


def write_outputs(prompts_path: str | Path, responses: Sequence[str], generator: str, out: str | Path) -> None:
    """arena-hard-auto's model-answer records (a JSON list), turns as ``{"content": ...}``."""
    questions = read_questions(prompts_path)
    if len(questions) != len(responses):
        raise ValueError(f"{len(responses)} responses for {len(questions)} prompts in {prompts_path}")
    write_json(
        out,
        [
            answer_record(q["question_id"], generator, [{"content": text}])
            for q, text in zip(questions, responses, strict=True)
        ],
    )


# --------------------------------------------------------------------------- the judge config


@dataclass(frozen=True)
class JudgeConfig:
    """The judge prompt: a system prompt, one or more user templates and the verdict regex."""

    system_prompt: str
    prompt_templates: tuple[str, ...]
    pattern: re.Pattern[str]
    template: str  # versioned id for the cache


PROTOCOL_KEYS = {  # judge_config.yaml key -> Protocol attribute; present keys must agree with the protocol
    "bench_name": "bench_name",
    "judge_model": "judge_model",
    "baseline_model": "baseline_model",
    "temperature": "judge_temperature",
    "max_tokens": "judge_max_tokens",
    "number_of_judgment_attempts": "judgment_attempts",
    "regex_pattern": "verdict_pattern",
}


def load_judge_config(path: str | Path, proto: Protocol) -> JudgeConfig:
    """Read a judge config (``.yaml``, or ``.jsonl``/``.json`` with one record) and check it fits ``proto``."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    else:
        records = read_records(path)
        if len(records) != 1:
            raise ValueError(f"{path}: expected exactly one judge config record, got {len(records)}")
        config = records[0]
    if not isinstance(config, Mapping):
        raise ValueError(f"{path}: expected a mapping of judge settings")
    for key, attribute in PROTOCOL_KEYS.items():
        if key in config and config[key] != getattr(proto, attribute):
            raise ValueError(
                f"{path}: {key} is {config[key]!r} but protocol {proto.version} has {getattr(proto, attribute)!r}"
            )
    if config.get("pairwise") is False or config.get("baseline") is False or config.get("reference"):
        raise ValueError(f"{path}: only the pairwise, baseline-based, reference-free setting is supported")
    templates = config.get("prompt_template")
    templates = [templates] if isinstance(templates, str) else templates
    if (
        not isinstance(config.get("system_prompt"), str)
        or not templates
        or not all(isinstance(t, str) for t in templates)
    ):
        raise ValueError(f"{path}: needs a 'system_prompt' string and a 'prompt_template' string or list of strings")
    for text in templates:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        if not fields <= {"question_1", "answer_1", "answer_2"} or not {"answer_1", "answer_2"} <= fields:
            raise ValueError(f"{path}: a prompt template must use answer_1 and answer_2 (and question_1), got {fields}")
    return JudgeConfig(
        system_prompt=config["system_prompt"],
        prompt_templates=tuple(templates),
        pattern=re.compile(proto.verdict_pattern),
        template=template_id(f"arena_hard/{proto.version}", config["system_prompt"], *templates),
    )


def parse_verdict(judgment: str, pattern: re.Pattern[str]) -> tuple[str | None, bool]:
    """The verdict label of a judgment and whether to ask again (no label at all), as arena-hard does.

    One distinct label: that label (None if it is not one of the five).
    Several different labels: undecided, not asked again.
    """
    matches = [m for m in pattern.findall(judgment) if m != ""]
    if not matches:
        return None, True
    if len(set(matches)) > 1:
        return None, False
    label = matches[0].strip("\n")
    return (label if label in LABELS else None), False


# --------------------------------------------------------------------------- judging


@dataclass
class Game:
    """One judged pairing of a prompt: ``game`` 1 shows the baseline as A, game 2 the model as A."""

    question_id: Any
    game: int
    messages: tuple[dict[str, str], ...]
    payload: dict[str, Any]
    replies: list[str] = field(default_factory=list)
    verdict: str | None = None

    def request(self, config: JudgeConfig, proto: Protocol) -> JudgeRequest:
        """The conversation so far: each earlier reply followed by the request to finish with a verdict."""
        history: list[dict[str, str]] = []
        for reply in self.replies:
            history += [{"role": "assistant", "content": reply}, {"role": "user", "content": proto.follow_up}]
        return JudgeRequest(
            messages=self.messages + tuple(history),
            max_tokens=proto.judge_max_tokens,
            temperature=proto.judge_temperature,
            top_logprobs=None,
            template=config.template,
            payload=self.payload,
        )

    @property
    def judgment(self) -> str:
        """All replies as arena-hard concatenates them."""
        return "".join("\n" + reply for reply in self.replies)


def build_games(
    questions: Sequence[Mapping[str, Any]],
    answers: Mapping[Any, str],
    baseline: Mapping[Any, str],
    config: JudgeConfig,
) -> list[Game]:
    games = []
    for q in questions:
        qid, text = q["question_id"], question_turns(q)[0]
        for game, (a, b) in enumerate(((baseline[qid], answers[qid]), (answers[qid], baseline[qid])), start=1):
            prompts = [t.format(question_1=text, answer_1=a, answer_2=b) for t in config.prompt_templates]
            games.append(
                Game(
                    question_id=qid,
                    game=game,
                    messages=openai_messages(config.system_prompt, prompts),
                    payload={"task": "pairwise_verdict", "question": text, "answer_a": a, "answer_b": b, "game": game},
                )
            )
    return games


def judge_all(judge: Judge, games: Sequence[Game], config: JudgeConfig, proto: Protocol) -> int:
    """Judge every game, continuing those without a label; returns the number of requests made."""
    pending = list(games)
    n_requests = 0
    for attempt in range(proto.judgment_attempts):
        if not pending:
            break
        replies = complete_all(
            judge, [g.request(config, proto) for g in pending], desc=f"arena_hard judge (attempt {attempt + 1})"
        )
        n_requests += len(pending)
        again = []
        for game, reply in zip(pending, replies, strict=True):
            game.replies.append(reply.text)
            game.verdict, retry = parse_verdict(game.judgment, config.pattern)
            if retry:
                again.append(game)
        pending = again
    return n_requests


# --------------------------------------------------------------------------- battles and Bradley-Terry


def battles_from_games(games: Sequence[Game], baseline: str, model: str, strong_weight: int) -> pd.DataFrame:
    """Battles (``model_a`` baseline, ``model_b`` model, ``winner``); strong verdicts count ``strong_weight`` times.

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
        row = {"question_id": g.question_id, "model_a": baseline, "model_b": model}
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


def prepare(
    model_answers: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    baseline_answers: Sequence[Mapping[str, Any]],
    config: JudgeConfig,
    proto: Protocol,
    judge: Judge | None = None,
) -> tuple[dict[Any, str], str, str, list[Game]]:
    """The model's answers, the model and baseline names, and the games to judge (both orders per prompt)."""
    qids = [q["question_id"] for q in questions]
    answers = _single_turn(answers_by_question(model_answers, "model answers"), qids, "model answers")
    baseline = _single_turn(answers_by_question(baseline_answers, "baseline answers"), qids, "baseline answers")
    model_name = _model_id(model_answers, "model answers")
    baseline_name = _model_id(baseline_answers, "baseline answers")
    if baseline_name == model_name:
        raise ValueError(f"the model and the baseline are both called {model_name!r}")
    if baseline_name != proto.baseline_model:
        log.warning("baseline %r is not protocol %s's %r", baseline_name, proto.version, proto.baseline_model)
    if judge is not None and not judge.is_offline and judge.name.split(":", 1)[-1] != proto.judge_model:
        log.warning("judge %s is not protocol %s's %s", judge.name, proto.version, proto.judge_model)
    return answers, model_name, baseline_name, build_games(questions, answers, baseline, config)


def evaluate(
    model_answers: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    baseline_answers: Sequence[Mapping[str, Any]],
    judge: Judge,
    config: JudgeConfig,
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Judge every prompt twice against the baseline; returns the result record and the judgments."""
    opts = check_options(options or {}, OPTIONS, NAME)
    proto = protocol(opts["protocol"])
    rounds = int(opts["bootstrap_rounds"] or proto.bootstrap_rounds)
    answers, model_name, baseline_name, games = prepare(
        model_answers, questions, baseline_answers, config, proto, judge
    )
    n_requests = judge_all(judge, games, config, proto)
    battles = battles_from_games(games, baseline_name, model_name, proto.strong_weight)
    missing = [g for g in games if g.verdict is None]
    result: dict[str, Any] = {
        "benchmark": NAME,
        "protocol": proto.version,
        "generator": model_name,
        "baseline": baseline_name,
        "n": len(questions),
        "n_games": len(games),
        "n_games_missing": len(missing),
        "n_battles": len(battles),
        "partial": False,
        **_counts(games),
        "win_rate": None,
        "win_rate_ci_lower": None,
        "win_rate_ci_upper": None,
        "standard_error": None,
        "elo": None,
        "elo_ci": None,
        "win_rate_unavailable_reason": None,
    }
    if missing and not opts["allow_partial"]:
        where = ", ".join(f"{g.question_id} game {g.game}" for g in missing[:10]) + (
            " ..." if len(missing) > 10 else ""
        )
        result["win_rate_unavailable_reason"] = (
            f"{len(missing)} of {len(games)} games have no verdict after {proto.judgment_attempts} attempts "
            f"({where}); set the option allow_partial to score the rest (arena-hard v0.1 drops them)"
        )
    elif battles.empty:
        result["win_rate_unavailable_reason"] = f"none of the {len(games)} games has a verdict"
    else:
        result.update(score_battles(battles, baseline_name, model_name, rounds, int(opts["bootstrap_seed"])))
        if missing:
            result["partial"] = True
            result["partial_note"] = f"partial: {len(missing)} of {len(games)} games without a verdict left out"
    result.update(
        {
            "bootstrap_rounds": rounds,
            "bootstrap_seed": int(opts["bootstrap_seed"]),
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
    annotations = _judgments(games, model_name, judge.name)
    return result, annotations


def _single_turn(records: Mapping[Any, Mapping[str, Any]], qids: Sequence[Any], origin: str) -> dict[Any, str]:
    lacking = [q for q in qids if q not in records]
    if lacking:
        raise ValueError(f"{origin}: no answer for {len(lacking)} prompts, e.g. {lacking[:3]}")
    extra = sorted(set(records) - set(qids), key=str)
    if extra and origin == "model answers":
        raise ValueError(f"{origin}: answers for prompts not in the question file, e.g. {extra[:3]}")
    texts = {}
    for qid in qids:
        turns = answer_turns(records[qid])
        if len(turns) != 1:
            raise ValueError(f"{origin}: the answer to {qid} has {len(turns)} turns; Arena-Hard prompts have one")
        texts[qid] = turns[0]
    return texts


def _model_id(records: Sequence[Mapping[str, Any]], origin: str) -> str:
    names = {str(r.get("model_id")) for r in records}
    if len(names) != 1:
        raise ValueError(f"{origin}: expected one model_id, got {sorted(names)}")
    return names.pop()


def _judgments(games: Sequence[Game], model: str, judge_name: str) -> list[dict[str, Any]]:
    """arena-hard-auto's judgment records: one per prompt, its two games in order."""
    by_question: dict[Any, dict[str, Any]] = {}
    for g in games:
        record = by_question.setdefault(
            g.question_id, {"question_id": g.question_id, "model": model, "judge": judge_name, "games": []}
        )
        record["games"].append(
            {
                "user_prompt": g.messages[-1]["content"],
                "judgment": g.judgment,
                "score": g.verdict,
                "attempts": len(g.replies),
            }
        )
    return list(by_question.values())


# --------------------------------------------------------------------------- entry point


def _validate_asset(name: str, path: Path, proto: Protocol) -> None:
    if name == "judge_config":
        load_judge_config(path, proto)
    else:
        records = read_records(path)
        answers_by_question(records, str(path))
        _model_id(records, str(path))


def load_inputs(
    outputs: str | Path, questions: str | Path, baseline_answers: str | Path, judge_config: str | Path, proto: Protocol
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], JudgeConfig]:
    """The model answers, questions, baseline answers and judge config from their files."""
    return (
        read_records(outputs),
        read_questions(questions),
        read_records(baseline_answers),
        load_judge_config(judge_config, proto),
    )


def judge_requests(
    outputs_path: str | Path,
    prompts_path: str | Path,
    options: Mapping[str, Any] | None = None,
    assets: Mapping[str, str | Path] | None = None,
) -> list[JudgeRequest]:
    """The first-attempt judge requests for an outputs file, two games per prompt (used by :mod:`evals.budget`).

    ``assets`` holds the files ``main`` takes as flags: ``baseline_answers`` and ``judge_config``.
    """
    assets = assets or {}
    lacking = [name for name in ASSETS if name not in assets]
    if lacking:
        raise ValueError(f"{NAME}: judge_requests needs the assets {', '.join(lacking)}")
    proto = protocol(check_options(options or {}, OPTIONS, NAME)["protocol"])
    answers, questions, baseline, config = load_inputs(
        outputs_path, prompts_path, assets["baseline_answers"], assets["judge_config"], proto
    )
    _, _, _, games = prepare(answers, questions, baseline, config, proto)
    return [g.request(config, proto) for g in games]


def main(argv: Sequence[str] | None = None) -> None:
    parser = evaluation_parser("python -m evals.arena_hard", __doc__, ASSETS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = json.loads(args.options)
    proto = protocol(check_options(options, OPTIONS, NAME)["protocol"])

    if args.fetch_asset:
        require(parser, args, ["source", "out"])
        name = args.fetch_asset
        path = fetch_asset(json.loads(args.source), args.out, lambda p: _validate_asset(name, p, proto))
        log.info("wrote %s asset %s to %s", NAME, name, path)
        return
    require(parser, args, ["outputs", "questions", "judge", "out", "baseline_answers", "judge_config"])
    judge = make_judge(json.loads(args.judge), args.cache)
    answers, questions, baseline, config = load_inputs(
        args.outputs, args.questions, args.baseline_answers, args.judge_config, proto
    )
    result, annotations = evaluate(answers, questions, baseline, judge, config, options)
    log.info("judge %s: %d calls, %d cache hits", judge.name, result["judge_calls"], result["cache_hits"])
    if args.annotations_out is not None:
        write_json(args.annotations_out, annotations)
    write_json(args.out, result)


if __name__ == "__main__":
    main()


# --------------------------------------------------------------------------- per-item outcomes (suite/tables.py)


def item_scores(annotations_path: str | Path) -> pd.Series:
    """The model's battles against the baseline, indexed by ``(question_id, battle)``: 100 won, 50 tie, 0 lost.

    Why battles and not one number per question: with two players the
    Bradley-Terry win rate is exactly the share of battles won (ties half),
    and a question contributes 2 to 6 battles (a strong verdict counts
    ``strong_weight`` times). A per-question mean would weight every question
    equally and no longer be the reported win rate. So the outcome of a
    question is its battles; the paired bootstrap (``suite.stats``) resamples
    questions (the first index level) and recomputes the pooled share, which
    is the win rate on each resample. Games without a verdict give no battle,
    as in the result.
    """
    from suite.annotations import annotation_records

    proto = protocol(OPTIONS["protocol"])
    records = annotation_records(annotations_path, ["question_id", "games"])
    games = []
    for number, record in enumerate(records, start=1):
        for game, judged in enumerate(record["games"], start=1):
            verdict = judged.get("score") if isinstance(judged, dict) else None
            if verdict is not None and verdict not in LABELS:
                raise ValueError(f"{annotations_path}: record {number}: field 'games[{game - 1}].score' is {verdict!r}")
            games.append(Game(question_id=record["question_id"], game=game, messages=(), payload={}, verdict=verdict))
    battles = battles_from_games(games, "baseline", "model", proto.strong_weight)
    score = battles["winner"].map({"model_b": 100.0, "tie": 50.0, "model_a": 0.0})
    battle = battles.groupby("question_id", sort=False).cumcount()
    return pd.Series(
        score.to_numpy(), index=pd.MultiIndex.from_arrays([battles["question_id"], battle], names=["item", "battle"])
    )
