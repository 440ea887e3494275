"""Arena-Hard v0.1: verdict parsing, swapped games, battles, Bradley-Terry, bootstrap, retries, CLI, cache."""

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
from evals.judges import Judge, JudgeRequest
from suite import data
from suite.io import read_json, read_jsonl
from tests.openai_stub import StubServer
from tests.scripted_judge import ScriptedJudge
from tests.workflow_helpers import REPO

SMOKE = REPO / "workflow/resources/smoke"
QUESTIONS = SMOKE / "arena_hard_smoke_question.jsonl"
BASELINE = SMOKE / "arena_hard_smoke_baseline_answer.jsonl"
JUDGE_CONFIG = SMOKE / "arena_hard_smoke_judge_prompt.jsonl"
V01 = ah.PROTOCOLS["v0.1"]
KEY_ENV = "AAO_TEST_ARENA_HARD_KEY"


def questions() -> list[dict[str, Any]]:
    return read_jsonl(QUESTIONS)


def model_answers(text: Callable[[dict[str, Any]], str] = lambda q: "A model answer.") -> list[dict[str, Any]]:
    return [answer_record(q["question_id"], "model", [{"content": text(q)}]) for q in questions()]


def model_is(request: JudgeRequest, position: str) -> bool:
    """Whether the model's answer is shown in ``position`` (game 1 shows the baseline as A)."""
    return (request.payload["game"] == 2) == (position == "A")


def run(judge: Judge, answers: list[dict[str, Any]] | None = None, **options: Any) -> tuple[dict, list]:
    return ah.evaluate(
        answers or model_answers(),
        questions(),
        read_jsonl(BASELINE),
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
        ("Both are fine, but A is clearer. My final verdict is [[A>B]].", ("A>B", False)),
        ("[[B>>A]]", ("B>>A", False)),
        ("Tie: [[A=B]]", ("A=B", False)),
        ("First I thought [[A>B]]. Final verdict: [[A>B]]", ("A>B", False)),  # the same label twice
        ("Hmm [[A>B]] ... no, [[B>A]]", (None, False)),  # different labels: undecided, not asked again
        ("My verdict: A is better.", (None, True)),  # no label: ask again
        ("[[A>=B]]", (None, False)),  # a label that is none of the five
    ],
)
def test_verdict_parse(text: str, expected: tuple[str | None, bool]) -> None:
    assert ah.parse_verdict(text, re.compile(V01.verdict_pattern)) == expected


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


def test_a_reply_without_a_label_is_continued_then_missing() -> None:
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
    result, annotations = run(judge)
    continued = [r for r in judge.requests if len(r.messages) > 2]
    assert len(continued) == 2 and len(judge.requests) == 22 and result["judge_calls"] == 22
    assert [m["role"] for m in continued[0].messages] == ["system", "user", "assistant", "user"]
    assert continued[0].messages[2]["content"] == "Let me think about both answers."
    assert continued[0].messages[3]["content"] == V01.follow_up
    game = annotations[0]["games"][0]
    assert game["score"] == "B>A" and game["attempts"] == 2
    assert game["judgment"] == "\nLet me think about both answers.\n[[B>A]]"

    assert result["n_games_missing"] == 1 and result["win_rate"] is None and result["standard_error"] is None
    assert "1 of 20 games have no verdict after 2 attempts" in result["win_rate_unavailable_reason"]
    partial, _ = run(ScriptedJudge(reply), allow_partial=True)
    assert partial["partial"] is True and partial["n_battles"] == 19
    assert partial["win_rate"] == pytest.approx(100 * (1 + 18 / 2) / 19, abs=1e-3)


# --------------------------------------------------------------------------- config, protocol, CLI, cache


def test_judge_config_and_protocol_are_checked(tmp_path: Path) -> None:
    assert ah.load_judge_config(JUDGE_CONFIG, V01).template.startswith("arena_hard/v0.1@")
    config = json.loads(JUDGE_CONFIG.read_text())
    yaml_file = tmp_path / "judge_config.yaml"
    yaml_file.write_text(
        yaml.safe_dump({**config, "judge_model": "gpt-4-1106-preview", "baseline_model": "gpt-4-0314"})
    )
    assert ah.load_judge_config(yaml_file, V01).system_prompt == config["system_prompt"]
    yaml_file.write_text(yaml.safe_dump({**config, "judge_model": "gpt-4o"}))
    with pytest.raises(
        ValueError, match=re.escape("judge_model is 'gpt-4o' but protocol v0.1 has 'gpt-4-1106-preview'")
    ):
        ah.load_judge_config(yaml_file, V01)
    yaml_file.write_text(yaml.safe_dump({**config, "prompt_template": ["{question_1} {answer_1}"]}))
    with pytest.raises(ValueError, match="must use answer_1 and answer_2"):
        ah.load_judge_config(yaml_file, V01)
    with pytest.raises(ValueError, match=re.escape("protocol 'v2.0' is not implemented; available: v0.1")):
        run(ScriptedJudge(lambda r: "[[A=B]]"), protocol="v2.0")


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
        ah.parse_verdict(
            judge.complete(JudgeRequest((), 1, 0.0, None, "t", payload)).text, re.compile(V01.verdict_pattern)
        )[0]
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
