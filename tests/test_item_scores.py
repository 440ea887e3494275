"""Per-item outcomes (each benchmark's ``item_scores``): their mean is the benchmark's own score, ids are stable."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from evals import alpaca_eval as ae
from evals import arena_hard as ah
from evals import get_benchmark
from evals import harmless as hl
from evals import mt_bench as mt
from evals.conversation import answer_record
from evals.judges import Judge, JudgeReply, JudgeRequest
from suite.io import read_json, read_jsonl, write_json
from tests.scripted_judge import ScriptedJudge
from tests.workflow_helpers import REPO

SMOKE = REPO / "workflow/resources/smoke"


def _digest(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


class SoftJudge(Judge):
    """AlpacaEval log-probs that are a pure function of the instruction: continuous preferences."""

    name = "soft"
    is_offline = True

    def complete(self, request: JudgeRequest) -> JudgeReply:
        p = 0.05 + 0.9 * _digest(request.payload["instruction"])
        return JudgeReply(text="m", top_logprobs=[{"m": math.log(p), "M": math.log(1 - p)}], raw={})


def test_alpaca_eval_outcomes_average_to_the_win_rate(tmp_path: Path) -> None:
    reference = read_json(SMOKE / "alpaca_eval_smoke.json")
    model = [
        {**r, "output": f"My answer {i}." if i != 2 else r["output"], "generator": "m"} for i, r in enumerate(reference)
    ]
    result, annotations = ae.evaluate(model, reference, SoftJudge())
    path = tmp_path / "alpaca_eval.annotations.json"
    ae.write_annotations(path, annotations)

    scores = get_benchmark("alpaca_eval").item_scores(path)
    assert scores.mean() == pytest.approx(result["win_rate"], abs=1e-9)
    assert len(scores) == result["n"] == len(reference)
    assert list(scores.index) == list(range(len(reference))), "items are indexed by their place in the eval set"
    assert scores.loc[2] == 50.0, "an output identical to the reference is a tie"


def test_alpaca_eval_leaves_out_unparsed_preferences(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_json(
        path, [{"index": 0, "preference": 2.0}, {"index": 1, "preference": None}, {"index": 2, "preference": 1.25}]
    )
    assert ae.item_scores(path).to_dict() == {0: 100.0, 2: 25.0}


def test_hh_helpful_shares_alpaca_evals_outcomes() -> None:
    assert get_benchmark("hh_helpful").item_scores is ae.item_scores


def _arena_run(reply: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    questions = read_jsonl(SMOKE / "arena_hard_smoke_question.jsonl")
    answers = [answer_record(q["question_id"], "model", [{"content": "An answer."}]) for q in questions]
    return ah.evaluate(
        answers,
        questions,
        read_jsonl(SMOKE / "arena_hard_smoke_baseline_answer.jsonl"),
        ScriptedJudge(reply),
        ah.load_judge_config(SMOKE / "arena_hard_smoke_judge_prompt.jsonl", ah.PROTOCOLS["v0.1"]),
        {"bootstrap_rounds": 5, "allow_partial": True},
    )


def _model_is_a(request: JudgeRequest) -> bool:
    return request.payload["game"] == 2


def test_arena_hard_battles_pool_to_the_bradley_terry_win_rate(tmp_path: Path) -> None:
    """Strong verdicts make questions unequal in weight: the pooled battles still give the fitted win rate."""
    labels = ["[[B>>A]]", "[[A>B]]", "[[A=B]]", "[[B>A]]", "[[A>>B]]", "no label"]

    def reply(request: JudgeRequest) -> str:
        return labels[int(_digest(request.payload["question"] + str(request.payload["game"])) * len(labels))]

    result, annotations = _arena_run(reply)
    path = tmp_path / "arena_hard.annotations.json"
    write_json(path, annotations)
    scores = ah.item_scores(path)
    assert scores.mean() == pytest.approx(result["win_rate"], abs=1e-4)
    assert len(scores) == result["n_battles"]
    assert scores.index.names == ["item", "battle"]
    counts = scores.groupby(level=0).size()
    assert counts.max() > counts.min(), "the case must mix strong and weak verdicts"


def test_arena_hard_battles_of_one_question_by_hand(tmp_path: Path) -> None:
    # game 1 shows the baseline as A: B>>A is a strong model win (3 battles); game 2 shows the model as A: A=B a tie.
    # q2's game 2 has no verdict: the result leaves the prompt out, and so do its outcomes.
    path = tmp_path / "a.json"
    write_json(path, [{"question_id": "q1", "games": [{"score": "B>>A"}, {"score": "A=B"}]},
                      {"question_id": "q2", "games": [{"score": "B>A"}, {"score": None}]},
                      {"question_id": "q3", "games": [{"score": "A>>B"}, {"score": "A>B"}]}])  # fmt: skip
    scores = ah.item_scores(path)
    assert scores.loc["q1"].tolist() == [100.0, 100.0, 100.0, 50.0]
    assert "q2" not in scores.index.get_level_values(0), "a prompt with a game left without a verdict is left out"
    assert scores.loc["q3"].tolist() == [0.0, 0.0, 0.0, 100.0], "game 2 shows the model as A: A>B is a model win"


def test_mt_bench_outcomes_are_question_means_over_complete_questions(tmp_path: Path) -> None:
    questions = read_jsonl(SMOKE / "mt_bench_smoke_question.jsonl")
    answers = [mt.answer_record(q["question_id"], "m", [f"About {t}" for t in q["turns"]]) for q in questions]
    unrated = (questions[1]["question_id"], 2)

    def reply(request: JudgeRequest) -> str:
        key = (request.payload["question_id"], request.payload["turn"])
        return "no rating" if key == unrated else f"Rating: [[{1 + int(9 * _digest(str(key)))}]]"

    result, annotations = mt.evaluate(
        answers,
        questions,
        ScriptedJudge(reply),
        mt.load_prompts(SMOKE / "mt_bench_smoke_judge_prompts.jsonl"),
        mt.read_reference_answers(SMOKE / "mt_bench_smoke_reference_answer.jsonl"),
        {"allow_partial": True, "judge_attempts": 1},
    )
    path = tmp_path / "mt_bench.annotations.json"
    write_json(path, annotations)
    scores = mt.item_scores(path)
    assert scores.mean() == pytest.approx(result["score"])
    assert unrated[0] not in scores.index and len(scores) == len(questions) - 1 == result["n"]
    first = [a["score"] for a in annotations if a["question_id"] == questions[0]["question_id"]]
    assert scores.loc[questions[0]["question_id"]] == pytest.approx(sum(first) / len(first))


def test_harmless_outcomes_average_to_the_rate(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    replies = [f"Reply {i}." for i in range(20)]
    hl.write_outputs(SMOKE / "hh_test_smoke.jsonl", replies, "m", outputs)
    items = hl.read_items(outputs, SMOKE / "hh_test_smoke.jsonl")
    verdict = {
        reply: ["Verdict: [[HARMLESS]]", "Verdict: [[HARMFUL]]", "unsure"][i % 3] for i, reply in enumerate(replies)
    }
    result, annotations = hl.evaluate(
        items, ScriptedJudge(lambda r: verdict[r.payload["response"]]), hl.Options(retries=0, allow_partial=True)
    )
    path = tmp_path / "harmless.annotations.json"
    path.write_text(json.dumps(annotations))
    scores = hl.item_scores(path)
    assert scores.mean() == pytest.approx(result["harmless_rate"])
    assert len(scores) == result["n"] < len(items)
    assert set(scores.index) == {i.id for i in items if verdict[i.response] != "unsure"}


@pytest.mark.parametrize(
    ("module", "records", "message"),
    [
        (ae, [{"index": 0}], "record 1: field 'preference' is missing"),
        (hl, [{"id": "a", "verdict": "harmless"}, {"id": "b", "verdict": "maybe"}], "record 2: field 'verdict'"),
        (mt, [{"question_id": 1, "score": 3}], "record 1: field 'turn' is missing"),
        (ah, [{"question_id": 1, "games": [{"score": "A>>>B"}]}], "record 1: field 'games[0].score'"),
    ],
)
def test_malformed_annotations_name_the_file_record_and_field(
    tmp_path: Path, module: Any, records: list[dict[str, Any]], message: str
) -> None:
    path = tmp_path / "bad.annotations.json"
    write_json(path, records)
    with pytest.raises(ValueError, match=re.escape(f"bad.annotations.json: {message}")):
        module.item_scores(path)


def test_capability_has_no_per_item_outcomes() -> None:
    with pytest.raises(NotImplementedError):
        get_benchmark("capability").item_scores(Path("x"))


def test_every_benchmark_module_defines_item_scores() -> None:
    from evals import benchmark_names

    for name in benchmark_names():
        assert callable(get_benchmark(name).item_scores), name
