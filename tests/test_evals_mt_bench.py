"""MT-Bench: FastChat's parse and prompts, multi-turn generation, reference answers, scores, CLI, cache, DAG."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
import secrets
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from evals import get_benchmark
from evals import mt_bench as mt
from evals.judges import CachedJudge, Judge, JudgeRequest
from evals.results import IncompleteResultError
from pipeline.generate import main as generate_main
from suite import data
from suite.generation import converse, generate_responses
from suite.io import read_json, read_jsonl
from tests.openai_stub import StubServer
from tests.scripted_judge import ScriptedJudge
from tests.workflow_helpers import REPO, clean_checkout, snakemake

SMOKE = REPO / "workflow/resources/smoke"
QUESTIONS = SMOKE / "mt_bench_smoke_question.jsonl"
PROMPTS = SMOKE / "mt_bench_smoke_judge_prompts.jsonl"
REFERENCES = SMOKE / "mt_bench_smoke_reference_answer.jsonl"
KEY_ENV = "AAO_TEST_MT_BENCH_KEY"


def questions() -> list[dict[str, Any]]:
    return read_jsonl(QUESTIONS)


def model_answers(generator: str = "model") -> list[dict[str, Any]]:
    return [
        mt.answer_record(q["question_id"], generator, [f"About {t.lower()}" for t in q["turns"]]) for q in questions()
    ]


def by_item(table: dict[tuple[int, int], str]) -> Callable[[JudgeRequest], str]:
    return lambda r: table[(r.payload["question_id"], r.payload["turn"])]


def run(judge: Judge, **options: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return mt.evaluate(
        model_answers(),
        questions(),
        judge,
        mt.load_prompts(PROMPTS),
        mt.read_reference_answers(REFERENCES),
        options,
    )


# --------------------------------------------------------------------------- parsing


@pytest.fixture(scope="module")
def fastchat_common() -> Any:
    """FastChat's judging module, imported for real (the suite reads its constants from source)."""
    import warnings

    with warnings.catch_warnings():  # its regexes are not raw strings
        warnings.simplefilter("ignore")
        from fastchat.llm_judge import common
    return common


def test_constants_read_from_source_equal_fastchats(fastchat_common: Any) -> None:
    assert mt.NEED_REF_CATS == fastchat_common.NEED_REF_CATS
    assert mt.temperature_config == fastchat_common.temperature_config
    assert mt.one_score_pattern.pattern == fastchat_common.one_score_pattern.pattern
    assert mt.one_score_pattern_backup.pattern == fastchat_common.one_score_pattern_backup.pattern


def test_judge_prompts_load_as_fastchat_loads_them(fastchat_common: Any) -> None:
    assert mt.load_prompts(PROMPTS) == fastchat_common.load_judge_prompts(str(PROMPTS))


def fastchat_parse(common: Any, text: str) -> float:
    """FastChat's run_judge_single parse, verbatim in behaviour: -1 when nothing matches."""
    match = re.search(common.one_score_pattern, text) or re.search(common.one_score_pattern_backup, text)
    return ast.literal_eval(match.groups()[0]) if match else -1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is fine. Rating: [[7]]", 7.0),
        ("Rating: [[7.5]]", 7.5),
        ("Rating: [[8.]]", 8.0),
        ("Rating: [[10]]", 10.0),
        ("No double brackets. Rating: [6]", 6.0),  # FastChat's fallback pattern
        ("Rating: [[3]], or on reflection [[9]]", 3.0),  # two ratings: FastChat takes the first
        ("See [4]. Rating: [[9]]", 9.0),  # a double-bracket rating wins over an earlier [x]
        ("Rating: 8/10", None),  # no brackets at all
        ("", None),
    ],
)
def test_rating_parse_matches_fastchat(fastchat_common: Any, text: str, expected: float | None) -> None:
    assert mt.parse_rating(text) == expected
    theirs = fastchat_parse(fastchat_common, text)
    assert (theirs == -1) if expected is None else (theirs == expected)


@pytest.mark.parametrize("text", ["Rating: [[0]]", "Rating: [[11]]", "Published in [2023]."])
def test_out_of_range_ratings_are_unparseable_not_scores(fastchat_common: Any, text: str) -> None:
    """FastChat would keep these (the fallback even reads a year as a rating); here they are re-asked."""
    assert fastchat_parse(fastchat_common, text) != -1
    assert mt.parse_rating(text) is None


# --------------------------------------------------------------------------- generation


def test_turn_two_is_generated_after_turn_one_with_its_answer() -> None:
    calls: list[tuple[list[list[dict[str, str]]], list[dict[str, Any]]]] = []

    def respond(conversations: Sequence[Any], decodings: Sequence[Any]) -> list[str]:
        calls.append(([list(c) for c in conversations], list(decodings)))
        return [f"answer {len(c)} to {c[-1]['content']}" for c in conversations]

    turns = [["q1 first", "q1 second"], ["q2 only"], ["q3 first", "q3 second"]]
    decodings = [{"temperature": 0.7}, {"temperature": 0.0}, {"temperature": 0.1}]
    answers = converse(respond, turns, decodings)

    assert len(calls) == 2
    first, second = calls
    assert first[0] == [[{"role": "user", "content": t[0]}] for t in turns]
    assert first[1] == decodings
    # Turn 2: only the two-turn prompts, each with its own first answer in the conversation.
    assert second[0] == [
        [
            {"role": "user", "content": "q1 first"},
            {"role": "assistant", "content": "answer 1 to q1 first"},
            {"role": "user", "content": "q1 second"},
        ],
        [
            {"role": "user", "content": "q3 first"},
            {"role": "assistant", "content": "answer 1 to q3 first"},
            {"role": "user", "content": "q3 second"},
        ],
    ]
    assert second[1] == [decodings[0], decodings[2]]
    assert answers == [
        ["answer 1 to q1 first", "answer 3 to q1 second"],
        ["answer 1 to q2 only"],
        ["answer 1 to q3 first", "answer 3 to q3 second"],
    ]


def test_category_temperatures_are_fastchats() -> None:
    decodings = mt.prompt_decodings(QUESTIONS, {"temperature": 0.9, "max_new_tokens": 7})
    for q, decoding in zip(questions(), decodings, strict=True):
        assert decoding == {"temperature": mt.temperature_config[q["category"]], "max_new_tokens": 7}
    assert {d["temperature"] for d in decodings} == {0.0, 0.1, 0.7}
    assert mt.category_temperature("not-a-category") == 0.7  # gen_model_answer's default


def test_generate_cli_answers_both_turns(tiny_model_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "questions.jsonl"
    chosen = [q for q in questions() if q["category"] in ("math", "writing", "extraction")]
    prompts.write_text("".join(json.dumps(q) + "\n" for q in chosen))
    out = tmp_path / "mt_bench.json"
    decoding = {"temperature": 0.9, "max_new_tokens": 5}
    generate_main(
        [
            *("--model", str(tiny_model_dir), "--task", "mt_bench", str(prompts), json.dumps(decoding), str(out)),
            *("--generator", "tiny-dpo", "--batch-size", "2", "--seed", "0"),
        ]
    )
    records = read_json(out)
    assert [r["question_id"] for r in records] == [q["question_id"] for q in chosen]
    assert all(r["model_id"] == "tiny-dpo" and len(r["choices"][0]["turns"]) == 2 for r in records)
    assert [r["temperature"] for r in records] == [mt.temperature_config[q["category"]] for q in chosen]

    # The greedy (temperature 0) categories reproduce single-turn generation on the same conversations.
    greedy = {"temperature": 0.0, "max_new_tokens": 5}
    for q, r in zip(chosen, records, strict=True):
        if mt.temperature_config[q["category"]] > 0:
            continue
        first, second = r["choices"][0]["turns"]
        one = [{"role": "user", "content": q["turns"][0]}]
        two = [*one, {"role": "assistant", "content": first}, {"role": "user", "content": q["turns"][1]}]
        assert generate_responses(tiny_model_dir, [one, two], greedy, batch_size=1, seed=0) == [first, second]


def test_write_outputs_needs_one_answer_per_turn(tmp_path: Path) -> None:
    bench = get_benchmark("mt_bench")
    assert bench.COLUMNS == {"score": "MT-Bench"} and bench.ERRORS == {"score": "score_standard_error"}
    assert bench.read_prompts(QUESTIONS)[0] == [{"role": "user", "content": questions()[0]["turns"][0]}]
    with pytest.raises(ValueError, match="one answer per turn"):
        bench.write_outputs(QUESTIONS, [["only one"]] * len(questions()), "m", tmp_path / "o.json")
    with pytest.raises(ValueError, match="7 responses for 8 questions"):
        bench.write_outputs(QUESTIONS, [["a", "b"]] * 7, "m", tmp_path / "o.json")


# --------------------------------------------------------------------------- judge prompts and references


def test_reference_answers_are_used_for_the_reference_categories_only() -> None:
    references = mt.read_reference_answers(REFERENCES)
    answers = {a["question_id"]: a["choices"][0]["turns"] for a in model_answers()}
    judgments = mt.build_judgments(questions(), answers, mt.load_prompts(PROMPTS), references)
    assert len(judgments) == 2 * len(questions())
    assert [j.turn for j in judgments] == [1] * 8 + [2] * 8  # FastChat judges all first turns, then all second
    for j in judgments:
        user = j.messages[-1]["content"]
        needs_reference = j.category in ("math", "reasoning", "coding")
        assert needs_reference == (j.category in mt.NEED_REF_CATS)
        expected = {(False, 1): "single-v1", (True, 1): "single-math-v1"}.get((needs_reference, j.turn))
        expected = expected or ("single-math-v1-multi-turn" if needs_reference else "single-v1-multi-turn")
        assert j.prompt_name == expected
        if needs_reference:
            for k in range(j.turn):
                assert references[j.question_id][k] in user
            assert j.payload["reference"] == references[j.question_id][j.turn - 1]
        else:
            assert "Reference" not in user and j.payload["reference"] is None
        if j.turn == 2:  # the whole conversation is shown
            assert answers[j.question_id][0] in user and answers[j.question_id][1] in user
        assert j.messages[0]["role"] == "system"

    del references[4]
    with pytest.raises(ValueError, match=r"question 4 \(math\).*reference answers have none"):
        mt.build_judgments(questions(), answers, mt.load_prompts(PROMPTS), references)


def test_judge_prompt_file_is_checked(tmp_path: Path) -> None:
    records = [json.loads(line) for line in PROMPTS.read_text().splitlines()]
    bad = tmp_path / "prompts.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in records[:3]))
    with pytest.raises(ValueError, match="'single-math-v1-multi-turn' is missing"):
        mt.load_prompts(bad)
    broken = [dict(r) for r in records]
    broken[1]["prompt_template"] = broken[1]["prompt_template"].replace("{ref_answer_1}", "")
    bad.write_text("".join(json.dumps(r) + "\n" for r in broken))
    with pytest.raises(ValueError, match="'single-math-v1' uses fields"):
        mt.load_prompts(bad)


# --------------------------------------------------------------------------- scores and retries


def test_per_turn_and_overall_scores() -> None:
    ratings = {(q["question_id"], t): 1 + (q["question_id"] * 3 + t * 5) % 10 for q in questions() for t in (1, 2)}
    judge = ScriptedJudge(by_item({k: f"Rating: [[{v}]]" for k, v in ratings.items()}))
    result, annotations = run(judge)

    turn = {t: [ratings[(q["question_id"], t)] for q in questions()] for t in (1, 2)}
    per_question = [(ratings[(q["question_id"], 1)] + ratings[(q["question_id"], 2)]) / 2 for q in questions()]
    for t in (1, 2):
        assert result[f"score_turn_{t}"] == pytest.approx(statistics.mean(turn[t]))
        assert result[f"score_turn_{t}_standard_error"] == pytest.approx(statistics.stdev(turn[t]) / math.sqrt(8))
        assert result[f"n_turn_{t}"] == 8
    assert result["score"] == pytest.approx(statistics.mean(per_question))
    assert result["score"] == pytest.approx(statistics.mean(turn[1] + turn[2]))  # FastChat's pooled mean
    assert result["score_standard_error"] == pytest.approx(statistics.stdev(per_question) / math.sqrt(8))
    assert result["n"] == 8 and result["n_missing"] == 0 and result["partial"] is False
    assert result["score_unavailable_reason"] is None
    assert result["judge_calls"] == 16 and len(judge.requests) == 16
    assert {r.temperature for r in judge.requests} == {0.0} and {r.max_tokens for r in judge.requests} == {2048}
    assert [a["score"] for a in annotations] == [ratings[(a["question_id"], a["turn"])] for a in annotations]


def test_unparseable_judgments_are_retried_then_missing() -> None:
    def reply(request: JudgeRequest) -> str:
        key = (request.payload["question_id"], request.payload["turn"])
        if key == (2, 1):  # parseable only when asked again
            return "Rating: [[4]]" if request.temperature > 0 else "I cannot decide."
        if key == (5, 2):  # never parseable
            return "Rating: excellent"
        return "Rating: [[8]]"

    judge = ScriptedJudge(reply)
    with pytest.raises(IncompleteResultError) as info:
        run(judge)
    assert str(info.value).startswith("mt_bench: 1 of 8 items have no score: 1 judge reply unparsed (e.g. 5).")
    retried = [r for r in judge.requests if r.payload["question_id"] in (2, 5) and r.temperature > 0]
    assert sorted((r.payload["question_id"], r.template.rsplit("#", 1)[-1]) for r in retried) == [
        (2, "retry1"),
        (5, "retry1"),
        (5, "retry2"),
    ]
    assert all(r.temperature == 0.7 for r in retried)
    assert len(judge.requests) == 16 + 3

    partial, annotations = run(ScriptedJudge(reply), allow_partial=True)
    assert (partial["n"], partial["n_expected"], partial["partial"]) == (7, 8, True)  # questions with every turn rated
    assert partial["missing"] == {"judge reply unparsed": 1} and partial["judge_calls"] == 19
    assert partial["n_missing"] == 1 and partial["missing_judgments"] == [{"question_id": 5, "turn": 2}]
    assert "1 of 16 judgments missing" in partial["partial_note"]
    assert partial["score_turn_1"] == pytest.approx((7 * 8 + 4) / 8) and partial["n_turn_1"] == 8
    assert partial["score_turn_2"] == pytest.approx(8.0) and partial["n_turn_2"] == 7
    assert partial["score"] == pytest.approx((6 * 8 + (4 + 8) / 2) / 7)
    note = next(a for a in annotations if (a["question_id"], a["turn"]) == (5, 2))
    assert note["score"] is None and len(note["attempts"]) == 3


def test_a_retried_judgment_is_replayed_from_the_cache(tmp_path: Path) -> None:
    """The unparsed first reply is kept beside the retry that parsed, so a rerun costs nothing and agrees."""

    def reply(request: JudgeRequest) -> str:
        return "Rating: [[4]]" if request.temperature > 0 else "I cannot decide."

    first = CachedJudge(ScriptedJudge(reply), tmp_path / "cache.sqlite")
    result, annotations = run(first)
    assert first.calls == 32 and result["score"] == pytest.approx(4.0)
    rerun = CachedJudge(ScriptedJudge(reply), tmp_path / "cache.sqlite")
    again, replayed = run(rerun)
    assert (rerun.calls, rerun.hits) == (0, 32) and again["score"] == result["score"]
    assert [a["attempts"] for a in replayed] == [a["attempts"] for a in annotations]


def test_foreign_files_are_named_by_file_record_and_field(tmp_path: Path) -> None:
    arena = tmp_path / "answers.json"  # where cli_args looks for the model's answers
    arena.write_text(json.dumps([{"uid": "u1", "model": "m", "messages": [], "metadata": {}}]))
    with pytest.raises(data.DataError) as info:
        mt.main(cli_args(tmp_path, {"backend": "offline"}))
    assert str(info.value) == (
        f"{arena}: record 1: field 'question_id': missing; the record looks like an arena-hard-auto answer record "
        "(uid, model, messages), not a FastChat answer record (question_id, model_id, choices)"
    )
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "Say hi.", "output": "hi", "generator": "m"}]))
    arena.unlink()
    args = cli_args(tmp_path, {"backend": "offline"})
    args[args.index(str(QUESTIONS))] = str(alpaca)
    with pytest.raises(data.DataError, match=re.escape(f"{alpaca}: record 1: field 'question_id': missing")):
        mt.main(args)
    assert not (tmp_path / "result.json").exists()


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown option\\(s\\) \\['allow_partiall'\\]"):
        run(ScriptedJudge(lambda r: "[[5]]"), allow_partiall=True)


# --------------------------------------------------------------------------- command line, cache, workflow


def cli_args(tmp_path: Path, judge: dict[str, Any], tag: str = "") -> list[str]:
    outputs = tmp_path / "answers.json"
    if not outputs.exists():
        mt.write_outputs(QUESTIONS, [[f"About {t}" for t in q["turns"]] for q in questions()], "model", outputs)
    return [
        *("--outputs", str(outputs), "--reference", str(QUESTIONS)),
        *("--judge-prompts", str(PROMPTS), "--reference-answers", str(REFERENCES)),
        *("--judge", json.dumps(judge), "--cache", str(tmp_path / "cache.sqlite")),
        *("--out", str(tmp_path / f"result{tag}.json"), "--annotations-out", str(tmp_path / f"ann{tag}.json")),
    ]


def test_cli_end_to_end_with_the_offline_judge(tmp_path: Path) -> None:
    mt.main(cli_args(tmp_path, {"backend": "offline"}))
    result = read_json(tmp_path / "result.json")
    assert result["judge"] == "offline-heuristic-v1" and result["judge_is_offline"] is True
    assert 1 <= result["score"] <= 10 and result["n"] == 8 and result["n_missing"] == 0
    assert set(result["judge_prompts"]) == set(mt.JUDGE_PROMPTS.values())
    assert len(read_json(tmp_path / "ann.json")) == 16


def test_second_run_makes_no_judge_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"sk-test-{secrets.token_hex(8)}"
    monkeypatch.setenv(KEY_ENV, key)
    with StubServer(key, responder=lambda body: {"The answer is helpful. Rating: [[7]]": -0.01}) as stub:
        judge = {"backend": "openai", "model": "gpt-4", "base_url": stub.base_url, "api_key_env": KEY_ENV}
        mt.main(cli_args(tmp_path, {**judge, "initial_backoff_s": 0.01}))
        assert stub.requests == 16
        body = stub.state.bodies[0]
        assert body["temperature"] == 0 and body["max_tokens"] == 2048 and "logprobs" not in body
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        mt.main(cli_args(tmp_path, {**judge, "initial_backoff_s": 0.01}, tag="2"))
        assert stub.requests == 16, "the second run must be answered from the cache"
    first, second = read_json(tmp_path / "result.json"), read_json(tmp_path / "result2.json")
    assert (first["judge_calls"], first["cache_hits"]) == (16, 0)
    assert (second["judge_calls"], second["cache_hits"]) == (0, 16)
    assert first["score"] == second["score"] == 7.0


def test_fetch_asset_validates_and_copies(tmp_path: Path) -> None:
    out = tmp_path / "assets" / "judge_prompts.jsonl"
    mt.main(["--fetch-asset", "judge_prompts", "--source", json.dumps({"path": str(PROMPTS)}), "--out", str(out)])
    assert out.read_bytes() == PROMPTS.read_bytes()
    with pytest.raises(ValueError, match="field 'name': missing; the record looks like a FastChat answer record"):
        mt.main(
            ["--fetch-asset", "judge_prompts", "--source", json.dumps({"path": str(REFERENCES)}), "--out", str(out)]
        )
    assert out.read_bytes() == PROMPTS.read_bytes(), "a rejected asset must not replace the copy"


def test_question_files_are_validated_and_url_sources_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "mt_bench.jsonl"
    assert data.prepare("mt_bench", {"format": "mt_bench", "path": str(QUESTIONS)}, out) == 8
    assert read_jsonl(out) == questions()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question_id": 1, "category": "math", "turns": ["a", "b", "c"]}) + "\n")
    with pytest.raises(data.DataError, match="record 1: field 'turns': MT-Bench questions have one or two turns"):
        data.prepare("mt_bench", {"format": "mt_bench", "path": str(bad)}, out)
    bad.write_text("".join(json.dumps({"question_id": 1, "category": "math", "turns": ["a"]}) + "\n" for _ in "ab"))
    with pytest.raises(data.DataError, match="record 2: field 'question_id': duplicate of record 1"):
        data.prepare("mt_bench", {"format": "mt_bench", "path": str(bad)}, out)

    # A URL source reads the cached download (no network here); without one it says where it looked.
    monkeypatch.setenv("AAO_SUITE_CACHE", str(tmp_path / "cache"))
    url = "https://example.invalid/pinned/question.jsonl"
    with pytest.raises(data.DataError, match="not downloaded yet"):
        data.fetch_url(url, download=False)
    path = data.download_cache_dir() / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:16] / "question.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(QUESTIONS.read_bytes())
    assert data.prepare("mt_bench", {"format": "mt_bench", "url": url}, out) == 8
    with pytest.raises(data.DataError, match="'url' must be an http"):
        data.prepare("mt_bench", {"format": "mt_bench", "url": "ftp://x"}, out)


def test_dry_run_has_generate_and_evaluate_jobs_for_both_new_benchmarks(tmp_path: Path) -> None:
    work = clean_checkout(tmp_path)
    run_ = snakemake(work, "-n", "-p")
    assert run_.returncode == 0, run_.stderr[-3000:]
    for bench in ("mt_bench", "arena_hard"):
        assert f"--task {bench} " in run_.stdout
        assert f"--step evals.{bench} '--outputs" in run_.stdout
        assert f"-m pipeline.evaluate --step evals.{bench} '--fetch-asset" in run_.stdout
    paper = snakemake(work, "-n", "-p", "--configfile", "workflow/config/paper.yaml")
    assert paper.returncode == 0, paper.stderr[-3000:]
    assert "raw.githubusercontent.com/lm-sys/FastChat/" in paper.stdout
    assert '"model": "gpt-4-0613"' in paper.stdout  # MT-Bench's own judge


def test_judge_requests_are_the_first_attempt_requests_of_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the cost guard counts is exactly what main() sends: every turn, reference prompts included."""
    args = cli_args(tmp_path, {"backend": "offline"})
    counting = ScriptedJudge(lambda r: "[[5]]")
    monkeypatch.setattr(mt, "make_judge", lambda config, cache: counting)
    mt.main(args)
    assets = {"judge_prompts": PROMPTS, "reference_answers": REFERENCES}
    planned = mt.judge_requests(tmp_path / "answers.json", QUESTIONS, {}, assets)
    assert planned == counting.requests and len(planned) == 16
    names = {r.template.split("@")[0] for r in planned}
    assert names == {f"mt_bench/{name}" for name in mt.JUDGE_PROMPTS.values()}
    with pytest.raises(ValueError, match="judge_prompts"):
        mt.judge_requests(tmp_path / "answers.json", QUESTIONS, {}, {})
