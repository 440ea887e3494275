"""Arena-Hard v0.1 and v2.0: verdict parsing, swapped games, battles, Bradley-Terry, bootstrap, retries, CLI, cache."""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from evals import arena_hard as ah
from evals import get_benchmark
from evals.conversation import answer_record
from evals.judges import CachedJudge, Judge, JudgeRequest
from evals.results import CONFLICTING, NO_VERDICT, IncompleteResultError
from suite import data
from suite.io import read_json, read_jsonl
from tests.openai_stub import StubServer
from tests.scripted_judge import ScriptedJudge
from tests.workflow_helpers import REPO, clean_checkout, job_counts, snakemake

SMOKE = REPO / "workflow/resources/smoke"
QUESTIONS = SMOKE / "arena_hard_smoke_question.jsonl"
BASELINE = SMOKE / "arena_hard_smoke_baseline_answer.jsonl"
JUDGE_CONFIG = SMOKE / "arena_hard_smoke_judge_prompt.jsonl"
V2_QUESTIONS = SMOKE / "arena_hard_v2_smoke_question.jsonl"
V2_BASELINES = (
    SMOKE / "arena_hard_v2_smoke_baseline_hard.jsonl",
    SMOKE / "arena_hard_v2_smoke_baseline_creative.jsonl",
)
V2_JUDGE_CONFIG = SMOKE / "arena_hard_v2_smoke_judge_config.yaml"
V2_SETTINGS = SMOKE / "arena_hard_v2_smoke_judge_settings.json"
V01 = ah.PROTOCOLS["v0.1"]
V20 = ah.PROTOCOLS["v2.0"]
KEY_ENV = "AAO_TEST_ARENA_HARD_KEY"


def questions() -> list[dict[str, Any]]:
    return read_jsonl(QUESTIONS)


def model_answers(text: Callable[[dict[str, Any]], str] = lambda q: "A model answer.") -> list[dict[str, Any]]:
    return [answer_record(q["question_id"], "model", [{"content": text(q)}]) for q in questions()]


def model_is(request: JudgeRequest, position: str) -> bool:
    """Whether the model's answer is shown in ``position`` (game 1 shows the baseline as A)."""
    return (request.payload["game"] == 2) == (position == "A")


def run(
    judge: Judge,
    answers: list[dict[str, Any]] | None = None,
    baseline: list[dict[str, Any]] | None = None,
    **options: Any,
) -> tuple[dict, list]:
    return ah.evaluate(
        answers or model_answers(),
        questions(),
        baseline or read_jsonl(BASELINE),
        judge,
        ah.load_judge_config(JUDGE_CONFIG, V01),
        {"bootstrap_rounds": 40, **options},
    )


def battles(wins: int, losses: int, ties: int, model: str = "m", baseline: str = "base") -> pd.DataFrame:
    winners = ["model_b"] * wins + ["model_a"] * losses + ["tie"] * ties
    return pd.DataFrame({"model_a": baseline, "model_b": model, "winner": winners})


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Both are fine, but A is clearer. My final verdict is [[A>B]].", ("A>B", None)),
        ("[[B>>A]]", ("B>>A", None)),
        ("Tie: [[A=B]]", ("A=B", None)),
        ("First I thought [[A>B]]. Final verdict: [[A>B]]", ("A>B", None)),  # the same label twice
        ("Hmm [[A>B]] ... no, [[B>A]]", (None, CONFLICTING)),  # different labels: undecided, not asked again
        ("My verdict: A is better.", (None, NO_VERDICT)),  # no label: asked again
        ("[[A>=B]]", (None, ah.UNKNOWN_LABEL)),  # a label that is none of the five
        ("[B>A]", (None, NO_VERDICT)),  # v0.1 has only the double-bracket regex
    ],
)
def test_verdict_parse_v01(text: str, expected: tuple[str | None, str | None]) -> None:
    assert ah.parse_verdict(text, V01) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hmm [[A>B]] ... no, [[B>A]]", ("B>A", None)),  # the last match counts
        ("final: [B>>A]", ("B>>A", None)),  # the second regex, single brackets
        ("[[A>B]] though [B>>A] was tempting", ("A>B", None)),  # the first regex that matches wins
        ("my verdict is [[a>b]]", ("A>B", None)),  # the judgment is upper-cased first
        ("[[A<B]]", ("B>A", None)),  # the mirrored forms of its score table
        ("[[B<<A]]", ("A>>B", None)),
        ("[[B=A]]", ("A=B", None)),
        ("My verdict: A is better.", (None, NO_VERDICT)),
        ("[[A]]", (None, ah.UNKNOWN_LABEL)),
    ],
)
def test_verdict_parse_v20(text: str, expected: tuple[str | None, str | None]) -> None:
    assert ah.parse_verdict(text, V20) == expected


# --------------------------------------------------------------------------- Bradley-Terry


def test_two_player_fit_is_the_tie_adjusted_win_share() -> None:
    """With two players the BT maximum-likelihood win probability is (wins + ties/2) / battles."""
    for wins, losses, ties in [(30, 10, 0), (10, 0, 10), (7, 11, 5), (1, 1, 0)]:
        ratings = ah.fit_bradley_terry(battles(wins, losses, ties), "base")
        share = (wins + ties / 2) / (wins + losses + ties)
        assert ratings["base"] == 1000
        assert ah.win_rate(ratings["m"]) == pytest.approx(100 * share, abs=1e-4)
        assert ratings["m"] - 1000 == pytest.approx(400 * math.log10(share / (1 - share)), abs=1e-2)


def test_symmetric_battles_give_fifty_and_one_sided_ones_the_extremes() -> None:
    assert ah.win_rate(ah.fit_bradley_terry(battles(12, 12, 6), "base")["m"]) == pytest.approx(50.0, abs=1e-6)
    assert ah.fit_bradley_terry(battles(9, 0, 0), "base")["m"] == math.inf
    assert ah.fit_bradley_terry(battles(0, 9, 0), "base")["m"] == -math.inf
    assert ah.win_rate(math.inf) == 100.0 and ah.win_rate(-math.inf) == 0.0
    scored = ah.score_battles(battles(20, 0, 0), "base", "m", rounds=20, seed=0)
    assert scored["win_rate"] == scored["win_rate_ci_lower"] == scored["win_rate_ci_upper"] == 100.0
    assert scored["elo"] is None and scored["standard_error"] == 0.0


def test_three_player_fit_recovers_known_strengths() -> None:
    """Counts exactly proportional to BT probabilities (strengths 1:2:4) are fitted exactly."""
    strength = {"base": 1.0, "b": 2.0, "c": 4.0}
    rows = []
    for x, y in [("base", "b"), ("base", "c"), ("b", "c")]:
        p = strength[x] / (strength[x] + strength[y])
        n = 60
        rows += [{"model_a": x, "model_b": y, "winner": "model_a"}] * round(n * p)
        rows += [{"model_a": x, "model_b": y, "winner": "model_b"}] * round(n * (1 - p))
    ratings = ah.fit_bradley_terry(pd.DataFrame(rows), "base")
    step = 400 * math.log10(2)
    assert ratings["b"] == pytest.approx(1000 + step, abs=0.5)
    assert ratings["c"] == pytest.approx(1000 + 2 * step, abs=0.5)


def test_bootstrap_interval_is_reproducible_and_brackets_the_estimate() -> None:
    b = battles(40, 20, 10)
    first = ah.score_battles(b, "base", "m", rounds=30, seed=42)
    again = ah.score_battles(b, "base", "m", rounds=30, seed=42)
    assert first == again
    assert first["win_rate"] == pytest.approx(100 * 45 / 70, abs=1e-3)
    assert first["win_rate_ci_lower"] < first["win_rate"] < first["win_rate_ci_upper"]
    assert 0 < first["standard_error"] < 10
    other = ah.score_battles(b, "base", "m", rounds=30, seed=7)
    assert other["win_rate"] == first["win_rate"] and other["win_rate_ci_lower"] != first["win_rate_ci_lower"]


# --------------------------------------------------------------------------- games and battles


def test_swapped_games_are_combined_into_battles() -> None:
    def reply(request: JudgeRequest) -> str:
        text = request.payload["question"]
        if "palindrome" in text:  # the model much better in both games
            return "[[B>>A]]" if model_is(request, "B") else "[[A>>B]]"
        if "tuple" in text:  # position bias: A wins both games
            return "[[A>B]]"
        if "vegetarian" in text:  # the baseline slightly better in both games
            return "[[A>B]]" if model_is(request, "B") else "[[B>A]]"
        return "[[A=B]]"

    result, annotations = run(ScriptedJudge(reply))
    # palindrome: 3 + 3 model wins; tuple: 1 baseline + 1 model win; vegetarian: 2 baseline wins; 7 prompts x 2 ties.
    wins, losses, ties = 6 + 1, 1 + 2, 14
    assert result["n_battles"] == wins + losses + ties
    assert result["win_rate"] == pytest.approx(100 * (wins + ties / 2) / (wins + losses + ties), abs=1e-3)
    assert result["verdict_counts"] == {"A>>B": 1, "A>B": 3, "A=B": 14, "B>A": 1, "B>>A": 1}
    assert result["n_games"] == 20 and result["n_games_missing"] == 0 and result["partial"] is False
    tuple_record = next(a for a in annotations if a["question_id"] == "550379cfa29d996583913e1d4f67b1e8")
    assert [g["score"] for g in tuple_record["games"]] == ["A>B", "A>B"]


def test_a_judge_that_always_prefers_position_a_gives_fifty() -> None:
    result, _ = run(ScriptedJudge(lambda r: "My final verdict is [[A>>B]]"))
    assert result["win_rate"] == pytest.approx(50.0, abs=1e-6)
    assert result["win_rate_ci_lower"] <= 50.0 <= result["win_rate_ci_upper"]
    assert result["position_a_share"] == 1.0


@pytest.mark.parametrize(("model_wins", "expected"), [(True, 100.0), (False, 0.0)])
def test_one_sided_judges_give_the_extremes(model_wins: bool, expected: float) -> None:
    judge = ScriptedJudge(lambda r: "[[A>>B]]" if model_is(r, "A") == model_wins else "[[B>>A]]")
    result, _ = run(judge)
    assert result["win_rate"] == expected and result["n_battles"] == 60


def test_each_prompt_is_judged_twice_with_positions_swapped() -> None:
    judge = ScriptedJudge(lambda r: "[[A=B]]")
    answers = model_answers(lambda q: f"Model answer to {q['question_id']}")
    baseline = {r["question_id"]: r["choices"][0]["turns"][0]["content"] for r in read_jsonl(BASELINE)}
    run(judge, answers)
    assert len(judge.requests) == 2 * len(questions())
    for request in judge.requests:
        qid = next(q["question_id"] for q in questions() if q["turns"][0]["content"] == request.payload["question"])
        mine, theirs = f"Model answer to {qid}", baseline[qid]
        first, second = (theirs, mine) if request.payload["game"] == 1 else (mine, theirs)
        user = request.messages[-1]["content"]
        assert user.index(first) < user.index(second)
        assert (request.payload["answer_a"], request.payload["answer_b"]) == (first, second)
        assert request.messages[0]["role"] == "system" and request.temperature == 0 and request.max_tokens == 4096


def test_a_retried_game_is_upstreams_conversation_and_a_prompt_without_verdict_is_refused(tmp_path: Path) -> None:
    first_question = questions()[0]["turns"][0]["content"]
    second_question = questions()[1]["turns"][0]["content"]

    def reply(request: JudgeRequest) -> str:
        question = request.payload["question"]
        if question == first_question and request.payload["game"] == 1:
            return "[[B>A]]" if len(request.messages) > 2 else "Let me think about both answers."
        if question == second_question and request.payload["game"] == 2:
            return "Still thinking."
        return "[[A=B]]"

    judge = ScriptedJudge(reply)
    with pytest.raises(IncompleteResultError) as info:
        run(judge)
    assert str(info.value).startswith(
        f"arena_hard: 1 of 10 items have no score: 1 no verdict label (e.g. {questions()[1]['question_id']})."
    )
    continued = [r for r in judge.requests if len(r.messages) > 2]
    assert len(continued) == 2 and len(judge.requests) == 22

    # The whole conversation of the retried game, built here from the judge config and arena-hard-auto's
    # gen_judgment.py (3071ef95): system, the rendered template, the reply, then its follow-up turn.
    config = json.loads(JUDGE_CONFIG.read_text())
    baseline = read_jsonl(BASELINE)[0]["choices"][0]["turns"][0]["content"]
    user = config["prompt_template"][0].format(question_1=first_question, answer_1=baseline, answer_2="A model answer.")
    assert list(continued[0].messages) == [
        {"role": "system", "content": config["system_prompt"]},
        {"role": "user", "content": user},
        {"role": "assistant", "content": "Let me think about both answers."},
        {"role": "user", "content": "continue your judgment and finish by outputting a final verdict label"},
    ]

    cache = tmp_path / "cache.sqlite"
    first = CachedJudge(ScriptedJudge(reply), cache)
    partial, annotations = run(first, allow_partial=True)
    assert (partial["n"], partial["n_expected"], partial["partial"]) == (9, 10, True)
    assert partial["missing"] == {"no verdict label": 1} and partial["n_games_missing"] == 1
    # the prompt without a verdict is left out whole (both games); one model win and 17 ties remain
    assert partial["n_battles"] == 18 and partial["win_rate"] == pytest.approx(100 * (1 + 17 / 2) / 18, abs=1e-3)
    game = annotations[0]["games"][0]
    assert game["score"] == "B>A" and game["attempts"] == 2
    assert game["judgment"] == "\nLet me think about both answers.\n[[B>A]]"
    missing = annotations[1]["games"][1]
    assert missing["score"] is None and missing["missing_reason"] == NO_VERDICT and missing["attempts"] == 2

    rerun = CachedJudge(ScriptedJudge(reply), cache)  # the continued game is replayed; the unanswered one re-asked
    run(rerun, allow_partial=True)
    assert (rerun.calls, first.calls) == (2, 22)


# --------------------------------------------------------------------------- config, protocol, CLI, cache


def test_judge_config_and_protocol_are_checked(tmp_path: Path) -> None:
    assert ah.load_judge_config(JUDGE_CONFIG, V01).template.startswith("arena_hard/v0.1@")
    config = json.loads(JUDGE_CONFIG.read_text())
    yaml_file = tmp_path / "judge_config.yaml"
    yaml_file.write_text(
        yaml.safe_dump({**config, "judge_model": "gpt-4-1106-preview", "baseline_model": "gpt-4-0314"})
    )
    assert ah.load_judge_config(yaml_file, V01).system_prompts == {"*": config["system_prompt"]}
    yaml_file.write_text(yaml.safe_dump({**config, "judge_model": "gpt-4o"}))
    with pytest.raises(
        ValueError, match=re.escape("judge_model is 'gpt-4o' but protocol v0.1 has 'gpt-4-1106-preview'")
    ):
        ah.load_judge_config(yaml_file, V01)
    yaml_file.write_text(yaml.safe_dump({**config, "prompt_template": ["{question_1} {answer_1}"]}))
    with pytest.raises(ValueError, match=re.escape("must use {answer_1} and {answer_2} (and {question_1}), got [")):
        ah.load_judge_config(yaml_file, V01)
    with pytest.raises(ValueError, match=re.escape("protocol 'v3.0' is not implemented; available: v0.1, v2.0")):
        run(ScriptedJudge(lambda r: "[[A=B]]"), protocol="v3.0")


def test_registry_outputs_and_question_validation(tmp_path: Path) -> None:
    bench = get_benchmark("arena_hard")
    assert bench.COLUMNS == {"win_rate": "Arena-Hard WR"} and bench.ERRORS == {"win_rate": "standard_error"}
    prompts = bench.read_prompts(QUESTIONS)
    assert prompts[0] == [{"role": "user", "content": questions()[0]["turns"][0]["content"]}]
    out = tmp_path / "answers.json"
    bench.write_outputs(QUESTIONS, [f"answer {i}" for i in range(10)], "tiny", out)
    written = read_json(out)
    assert [r["question_id"] for r in written] == [q["question_id"] for q in questions()]
    assert written[3]["choices"][0]["turns"] == [{"content": "answer 3"}] and written[3]["model_id"] == "tiny"

    normalised = tmp_path / "q.jsonl"
    assert data.prepare("arena_hard", {"format": "arena_hard", "path": str(QUESTIONS)}, normalised) == 10
    assert read_jsonl(normalised) == questions()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question_id": "x", "category": "c", "turns": [{"text": "hi"}]}) + "\n")
    with pytest.raises(data.DataError, match=re.escape("record 1: field 'turns[0].content': missing")):
        data.prepare("arena_hard", {"format": "arena_hard", "path": str(bad)}, normalised)


def cli_args(tmp_path: Path, judge: dict[str, Any], tag: str = "") -> list[str]:
    outputs = tmp_path / "answers.json"
    if not outputs.exists():
        ah.write_outputs(QUESTIONS, [f"My answer: {q['turns'][0]['content']}" for q in questions()], "model", outputs)
    return [
        *("--outputs", str(outputs), "--reference", str(QUESTIONS)),
        *("--baseline-answers", str(BASELINE), "--judge-config", str(JUDGE_CONFIG)),
        *("--judge", json.dumps(judge), "--cache", str(tmp_path / "cache.sqlite")),
        *("--options", json.dumps({"protocol": "v0.1", "bootstrap_rounds": 30})),
        *("--out", str(tmp_path / f"result{tag}.json"), "--annotations-out", str(tmp_path / f"ann{tag}.json")),
    ]


def test_cli_end_to_end_with_the_offline_judge(tmp_path: Path) -> None:
    ah.main(cli_args(tmp_path, {"backend": "offline"}))
    result = read_json(tmp_path / "result.json")
    assert result["judge"] == "offline-heuristic-v1" and result["judge_is_offline"] is True
    assert result["protocol"] == "v0.1" and result["baseline"] == "smoke-baseline"
    assert 0 <= result["win_rate"] <= 100 and result["bootstrap_rounds"] == 30
    assert result["win_rate_ci_lower"] <= result["win_rate"] <= result["win_rate_ci_upper"]
    assert result["n"] == 10 and result["n_games"] == 20 and result["n_games_missing"] == 0
    judgments = read_json(tmp_path / "ann.json")
    assert len(judgments) == 10 and all(len(j["games"]) == 2 for j in judgments)


def test_second_run_makes_no_judge_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"sk-test-{secrets.token_hex(8)}"
    monkeypatch.setenv(KEY_ENV, key)
    with StubServer(key, responder=lambda body: {"My final verdict is [[A>B]]": -0.01}) as stub:
        judge = {"backend": "openai", "model": "gpt-4-1106-preview", "base_url": stub.base_url, "api_key_env": KEY_ENV}
        ah.main(cli_args(tmp_path, {**judge, "initial_backoff_s": 0.01}))
        assert stub.requests == 20
        body = stub.state.bodies[0]
        assert body["temperature"] == 0 and body["max_tokens"] == 4096 and body["model"] == "gpt-4-1106-preview"
        ah.main(cli_args(tmp_path, {**judge, "initial_backoff_s": 0.01}, tag="2"))
        assert stub.requests == 20, "the second run must be answered from the cache"
    first, second = read_json(tmp_path / "result.json"), read_json(tmp_path / "result2.json")
    assert (first["judge_calls"], first["cache_hits"]) == (20, 0)
    assert (second["judge_calls"], second["cache_hits"]) == (0, 20)
    assert first["win_rate"] == second["win_rate"] == pytest.approx(50.0, abs=1e-6)  # always position A


def test_fetch_asset_checks_the_judge_config_against_the_protocol(tmp_path: Path) -> None:
    out = tmp_path / "assets" / "judge_config.jsonl"
    source = json.dumps({"path": str(JUDGE_CONFIG)})
    ah.main(
        ["--fetch-asset", "judge_config", "--source", source, "--options", '{"protocol": "v0.1"}', "--out", str(out)]
    )
    assert out.read_bytes() == JUDGE_CONFIG.read_bytes()
    wrong = tmp_path / "judge_config.yaml"
    wrong.write_text(yaml.safe_dump({**json.loads(JUDGE_CONFIG.read_text()), "bench_name": "arena-hard-v2.0"}))
    with pytest.raises(ValueError, match=re.escape("bench_name is 'arena-hard-v2.0'")):
        ah.main(["--fetch-asset", "judge_config", "--source", json.dumps({"path": str(wrong)}), "--out", str(out)])
    baseline_out = tmp_path / "assets" / "baseline_answers.jsonl"
    ah.main(
        [
            "--fetch-asset",
            "baseline_answers",
            "--source",
            json.dumps({"path": str(BASELINE)}),
            "--out",
            str(baseline_out),
        ]
    )
    assert read_jsonl(baseline_out) == read_jsonl(BASELINE)


def test_offline_verdicts_mirror_when_positions_swap() -> None:
    from evals.judges.offline import OfflineJudge, verdict

    mirror = {"A>>B": "B>>A", "A>B": "B>A", "A=B": "A=B", "B>A": "A>B", "B>>A": "A>>B"}
    for margin in (-0.6, -0.25, -0.1, -0.05, 0.0, 0.05, 0.1, 0.25, 0.6):
        assert verdict(-margin) == mirror[verdict(margin)]
    judge = OfflineJudge()
    good, bad = "Plan a cheap vegetarian dinner: lentils, rice and a shopping list.", "dinner dinner dinner"
    question = questions()[2]["turns"][0]["content"]
    labels = [
        ah.parse_verdict(judge.complete(JudgeRequest((), 1, 0.0, None, "t", payload)).text, V01)[0]
        for payload in (
            {"task": "pairwise_verdict", "question": question, "answer_a": good, "answer_b": bad},
            {"task": "pairwise_verdict", "question": question, "answer_a": bad, "answer_b": good},
        )
    ]
    assert labels == ["A>>B", "B>>A"]


def test_judge_requests_are_the_first_attempt_requests_of_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the cost guard counts is exactly what main() sends: both games of every prompt."""
    args = cli_args(tmp_path, {"backend": "offline"})
    counting = ScriptedJudge(lambda r: "[[A=B]]")
    monkeypatch.setattr(ah, "make_judge", lambda config, cache: counting)
    ah.main(args)
    assets = {"baseline_answers": BASELINE, "judge_config": JUDGE_CONFIG}
    planned = ah.judge_requests(tmp_path / "answers.json", QUESTIONS, {"protocol": "v0.1"}, assets)
    assert planned == counting.requests and len(planned) == 2 * len(questions())
    assert [r.payload["game"] for r in planned] == [1, 2] * len(questions())
    with pytest.raises(ValueError, match="judge_config"):
        ah.judge_requests(tmp_path / "answers.json", QUESTIONS, {}, {"baseline_answers": BASELINE})


# --------------------------------------------------------------------------- v2.0 and files of either version


def v2_questions() -> list[dict[str, Any]]:
    return read_jsonl(V2_QUESTIONS)


def v2_run(judge: Judge, text: Callable[[dict[str, Any]], str] = lambda q: "A model answer.", **options: Any) -> Any:
    answers = [ah.uid_answer(q["uid"], "model", q["prompt"], text(q)) for q in v2_questions()]
    return ah.evaluate(
        answers,
        v2_questions(),
        [*read_jsonl(V2_BASELINES[0]), *read_jsonl(V2_BASELINES[1])],
        judge,
        ah.load_judge_config(V2_JUDGE_CONFIG, V20, V2_SETTINGS),
        {"protocol": "v2.0", "bootstrap_rounds": 30, **options},
    )


def test_v20_judges_each_category_against_its_baseline_with_its_system_prompt() -> None:
    settings = json.loads(V2_SETTINGS.read_text())
    template = yaml.safe_load(V2_JUDGE_CONFIG.read_text())["prompt_template"]
    baseline_text = {
        (r["model"], r["uid"]): r["messages"][-1]["content"]["answer"]
        for path in V2_BASELINES
        for r in read_jsonl(path)
    }
    judge = ScriptedJudge(lambda r: "[[A=B]]")
    result, annotations = v2_run(judge, text=lambda q: f"Mine: {q['uid']}")
    assert len(judge.requests) == 2 * len(v2_questions())
    for request in judge.requests:
        question = next(q for q in v2_questions() if q["prompt"] == request.payload["question"])
        baseline = settings[question["category"]]["baseline"]
        theirs, mine = baseline_text[(baseline, question["uid"])], f"Mine: {question['uid']}"
        a, b = (theirs, mine) if request.payload["game"] == 1 else (mine, theirs)
        assert list(request.messages) == [
            {"role": "system", "content": settings[question["category"]]["system_prompt"]},
            {"role": "user", "content": template.format(QUESTION=question["prompt"], ANSWER_A=a, ANSWER_B=b)},
        ]
        assert (request.temperature, request.max_tokens) == (0.0, 16000)
    assert {(a["category"], a["baseline"]) for a in annotations} == {
        ("hard_prompt", "smoke-baseline-hard"),
        ("creative_writing", "smoke-baseline-creative"),
    }
    assert result["protocol"] == "v2.0" and result["protocol_source"].endswith(
        "196f6b826783b3da7310e361a805fa36f0be83f3"
    )
    assert result["template"].startswith("arena_hard/v2.0@") and result["protocol_judge"] == "gpt-4.1"


def test_v20_scores_each_category_with_the_same_bradley_terry_and_reports_hard_prompts() -> None:
    def reply(request: JudgeRequest) -> str:
        creative = request.payload["question"].startswith(("Write a four-line", "Describe a busy"))
        model_wins = not creative  # the model wins every hard prompt game, ties every creative one
        if not model_wins:
            return "Verdict: [[A=B]]"
        return "[B>A]" if model_is(request, "B") else "[A>B]"  # single brackets: v2.0's second regex

    result, _ = v2_run(ScriptedJudge(reply))
    hard, creative = result["category_scores"]["hard_prompt"], result["category_scores"]["creative_writing"]
    assert hard["win_rate"] == 100.0 and hard["n_battles"] == 8 and hard["baseline"] == "smoke-baseline-hard"
    assert creative["win_rate"] == pytest.approx(50.0, abs=1e-6) and creative["n_battles"] == 4
    assert result["win_rate_category"] == "hard_prompt" and result["win_rate"] == hard["win_rate"]
    assert result["baseline"] == "smoke-baseline-hard" and result["n"] == result["n_expected"] == 6
    assert result["n_battles"] == 8 + 4  # every scored battle; each category's are in category_scores

    def mixed(request: JudgeRequest) -> str:  # hard prompts: 3 model wins, 1 loss, 4 ties over 8 games
        index = [q["prompt"] for q in v2_questions()].index(request.payload["question"])
        outcome = {(0, 1): "win", (0, 2): "win", (1, 1): "win", (1, 2): "loss"}.get((index, request.payload["game"]))
        if outcome is None:
            return "[[A=B]]"
        model_first = request.payload["game"] == 2
        return "[[A>B]]" if (outcome == "win") == model_first else "[[B>A]]"

    scored, _ = v2_run(ScriptedJudge(mixed))
    share = (3 + 4 / 2) / 8  # two-player Bradley-Terry = the tie-adjusted win share
    assert scored["category_scores"]["hard_prompt"]["win_rate"] == pytest.approx(100 * share, abs=1e-3)


def test_v20_reads_upstreams_judge_utils_source(tmp_path: Path) -> None:
    """utils/judge_utils.py is parsed, never run: a prompt constant referenced from JUDGE_SETTINGS is resolved."""
    source = tmp_path / "judge_utils.py"
    source.write_text(
        'HARD = "Judge the two answers. End with [[A>B]] or the like."\n'
        "JUDGE_SETTINGS = {\n"
        '    "hard_prompt": {"baseline": "o3-mini-2025-01-31", "system_prompt": HARD},\n'
        '    "coding": {"baseline": "o3-mini-2025-01-31", "system_prompt": HARD},\n'
        '    "math": {"baseline": "o3-mini-2025-01-31", "system_prompt": HARD},\n'
        '    "creative_writing": {"baseline": "gemini-2.0-flash-001", "system_prompt": "Judge the writing."},\n'
        '    "arena-hard-v0.1": {"baseline": "gpt-4-0314", "system_prompt": HARD},\n'
        "}\n"
        'raise SystemExit("this file must not be executed")\n'
    )
    prompts, baselines = ah.load_judge_settings(source, V20)
    assert prompts["coding"] == "Judge the two answers. End with [[A>B]] or the like."
    assert baselines == ah.V20_BASELINES and prompts["creative_writing"] == "Judge the writing."


def test_a_file_of_one_version_under_the_other_names_both_versions(tmp_path: Path) -> None:
    v2_under_v01 = re.escape("'hard_prompt' is an Arena-Hard v2.0 question category, but the protocol is v0.1")
    with pytest.raises(data.DataError, match=v2_under_v01):
        ah.parse_questions(v2_questions(), str(V2_QUESTIONS), V01)
    v01_under_v2 = re.escape("'arena-hard-v0.1' is an Arena-Hard v0.1 question category, but the protocol is v2.0")
    with pytest.raises(data.DataError, match=v01_under_v2):
        ah.parse_questions(questions(), str(QUESTIONS), V20)
    with pytest.raises(
        ValueError, match=re.escape("this is the judge config of Arena-Hard v2.0, but the protocol is v0.1")
    ):
        ah.load_judge_config(V2_JUDGE_CONFIG, V01)
    with pytest.raises(
        ValueError,
        match=re.escape("are not protocol v2.0's (lmarena/arena-hard-auto@196f6b82") + ".*they are Arena-Hard v0.1's",
    ):
        ah.load_judge_config(JUDGE_CONFIG, V20, V2_SETTINGS)
    v01_template = {
        **yaml.safe_load(V2_JUDGE_CONFIG.read_text()),
        "prompt_template": "{question_1} {answer_1} {answer_2}",
    }
    (tmp_path / "v01_template.yaml").write_text(yaml.safe_dump(v01_template))
    fields = re.escape("got ['answer_1', 'answer_2', 'question_1'] (Arena-Hard v0.1's fields)")
    with pytest.raises(ValueError, match=fields):
        ah.load_judge_config(tmp_path / "v01_template.yaml", V20, V2_SETTINGS)
    with pytest.raises(
        ValueError, match=re.escape("judge_settings is a v2.0 asset; protocol v0.1 takes judge_config only")
    ):
        ah.load_judge_config(JUDGE_CONFIG, V01, V2_SETTINGS)
    o3 = [ah.uid_answer(q["question_id"], "o3-mini-2025-01-31", "q", "an answer") for q in questions()]
    with pytest.raises(
        ValueError, match=re.escape("'o3-mini-2025-01-31' are Arena-Hard v2.0's baseline, but the protocol is v0.1")
    ):
        run(ScriptedJudge(lambda r: "[[A=B]]"), baseline=o3)
    gpt4 = [{**r, "model": "gpt-4-0314"} for r in read_jsonl(V2_BASELINES[0])]
    with pytest.raises(
        ValueError, match=re.escape("'gpt-4-0314' are Arena-Hard v0.1's baseline, but the protocol is v2.0")
    ):
        ah.evaluate(
            [ah.uid_answer(q["uid"], "model", q["prompt"], "x") for q in v2_questions()],
            v2_questions(),
            gpt4,
            ScriptedJudge(lambda r: "[[A=B]]"),
            ah.load_judge_config(V2_JUDGE_CONFIG, V20, V2_SETTINGS),
            {"protocol": "v2.0"},
        )


def test_foreign_and_unnormalised_files_are_named_by_file_record_and_field(tmp_path: Path) -> None:
    alpaca = tmp_path / "answers.json"  # where cli_args looks for the model's answers
    alpaca.write_text(json.dumps([{"instruction": "Say hi.", "output": "hi", "generator": "m"}]))
    with pytest.raises(data.DataError) as info:
        ah.main(cli_args(tmp_path, {"backend": "offline"}))
    assert str(info.value) == (
        f"{alpaca}: record 1: field 'question_id': missing; the record looks like an alpaca_eval output record "
        f"(instruction, output, generator), not {ah.ANSWER}"
    )
    broken = tmp_path / "baseline.jsonl"
    record = json.loads(V2_BASELINES[0].read_text().splitlines()[0])
    record["messages"][1]["content"] = "a plain string, not {answer: ...}"
    broken.write_text(json.dumps(record) + "\n")
    with pytest.raises(data.DataError, match=re.escape(f"{broken}: record 1: field 'messages[1].content.answer'")):
        ah.checked_answers(broken)
    raw = tmp_path / "question.jsonl"  # arena-hard-auto's current layout, straight from its repository
    raw.write_text(V2_QUESTIONS.read_text())
    assert [q.question_id for q in ah.parse_questions(ah.read_questions(raw), str(raw), V20)] == [
        q["uid"] for q in v2_questions()
    ]
    raw.write_text(json.dumps({"uid": "u1", "category": "hard_prompt"}) + "\n")
    with pytest.raises(data.DataError, match=re.escape(f"{raw}: record 1: field 'prompt': missing")):
        ah.read_questions(raw)


def test_v20_cli_writes_and_reads_arena_hard_autos_answer_layout(tmp_path: Path) -> None:
    outputs = tmp_path / "answers.json"
    ah.write_outputs(V2_QUESTIONS, [f"answer {i}" for i in range(6)], "tiny", outputs)
    written = read_json(outputs)
    assert written[2]["uid"] == v2_questions()[2]["uid"] and written[2]["model"] == "tiny"
    assert written[2]["messages"] == [
        {"role": "user", "content": v2_questions()[2]["prompt"]},
        {"role": "assistant", "content": {"answer": "answer 2"}},
    ]
    args = [
        *("--outputs", str(outputs), "--reference", str(V2_QUESTIONS)),
        *("--baseline-answers", str(V2_BASELINES[0]), "--second-baseline-answers", str(V2_BASELINES[1])),
        *("--judge-config", str(V2_JUDGE_CONFIG), "--judge-settings", str(V2_SETTINGS)),
        *("--judge", '{"backend": "offline"}', "--options", '{"protocol": "v2.0", "bootstrap_rounds": 20}'),
        *("--out", str(tmp_path / "result.json"), "--annotations-out", str(tmp_path / "ann.json")),
    ]
    ah.main(args)
    result = read_json(tmp_path / "result.json")
    assert result["protocol"] == "v2.0" and result["n"] == 6 and result["partial"] is False
    assert set(result["category_scores"]) == {"hard_prompt", "creative_writing"}
    with pytest.raises(SystemExit):  # v2.0 needs its judge settings
        ah.main([a for a in args if a not in ("--judge-settings", str(V2_SETTINGS))])
    planned = ah.judge_requests(
        outputs,
        V2_QUESTIONS,
        {"protocol": "v2.0"},
        {
            "baseline_answers": V2_BASELINES[0],
            "second_baseline_answers": V2_BASELINES[1],
            "judge_config": V2_JUDGE_CONFIG,
            "judge_settings": V2_SETTINGS,
        },
    )
    assert len(planned) == 12 and all(r.max_tokens == 16000 for r in planned)


def test_a_config_that_selects_v20_plans_its_assets_and_steps(tmp_path: Path) -> None:
    checkout = clean_checkout(tmp_path / "clone")
    config = yaml.safe_load((checkout / "workflow/config/config.yaml").read_text())
    config["datasets"]["arena_hard"]["path"] = "workflow/resources/smoke/arena_hard_v2_smoke_question.jsonl"
    config["benchmarks"]["arena_hard"] = {
        "prompts": "arena_hard",
        "generation": {"temperature": 0.0},
        "options": {"protocol": "v2.0"},
        "assets": {
            "baseline_answers": {"path": "workflow/resources/smoke/arena_hard_v2_smoke_baseline_hard.jsonl"},
            "second_baseline_answers": {"path": "workflow/resources/smoke/arena_hard_v2_smoke_baseline_creative.jsonl"},
            "judge_config": {"path": "workflow/resources/smoke/arena_hard_v2_smoke_judge_config.yaml"},
            "judge_settings": {"path": "workflow/resources/smoke/arena_hard_v2_smoke_judge_settings.json"},
        },
    }
    path = checkout / "v2.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(checkout, "-n", "--configfile", str(path), "--printshellcmds")
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    models = len(config["variants"]) * len(config["methods"])
    assert counts["benchmark_asset"] == 4 + 2  # Arena-Hard v2.0's four assets, MT-Bench's two
    assert counts["evaluate"] == counts["generate"] == models
    for flag, asset in [
        ("--second-baseline-answers", "second_baseline_answers.jsonl"),
        ("--judge-settings", "judge_settings.json"),
    ]:
        assert f"{flag} results/data/assets/arena_hard/{asset}" in run.stdout
    assert "--fetch-asset judge_settings" in run.stdout and '"protocol": "v2.0"' in run.stdout
    print("v2.0 dry run job counts:", counts, "total", sum(counts.values()))


def test_a_v20_baseline_file_need_answer_only_its_categories() -> None:
    creative = {q["uid"] for q in v2_questions() if q["category"] == "creative_writing"}
    only_creative = [r for r in read_jsonl(V2_BASELINES[1]) if r["uid"] in creative]
    answers = [ah.uid_answer(q["uid"], "model", q["prompt"], "x") for q in v2_questions()]
    config = ah.load_judge_config(V2_JUDGE_CONFIG, V20, V2_SETTINGS)
    judge = ScriptedJudge(lambda r: "[[A=B]]")
    baselines = [*read_jsonl(V2_BASELINES[0]), *only_creative]
    result, _ = ah.evaluate(answers, v2_questions(), baselines, judge, config, {"protocol": "v2.0"})
    assert result["n"] == 6 and len(judge.requests) == 12
    with pytest.raises(ValueError, match=re.escape("no baseline answers by ['smoke-baseline-creative']")):
        ah.evaluate(answers, v2_questions(), read_jsonl(V2_BASELINES[0]), judge, config, {"protocol": "v2.0"})
