"""AlpacaEval 2 via alpaca_eval's own parts: fidelity to its annotator, the swap, the metrics, LC gating."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from evals import alpaca_eval as ae
from evals import benchmark_names, get_benchmark
from evals.judges import Judge, JudgeReply, JudgeRequest
from evals.judges.offline import OfflineJudge
from evals.results import IncompleteResultError
from suite.data import DataError

TOPICS = ("sleep", "cooking", "running", "saving money", "reading", "gardening", "painting", "chess")
REFERENCE = [
    {
        "instruction": f"Give two tips about {t}.",
        "output": f"Two tips about {t}: start small, and practise {t} every day.",
        "generator": "ref",
        "dataset": "test",
    }
    for t in TOPICS
]
MODEL_TEXTS = [
    REFERENCE[0]["output"],  # identical: a tie without a judge call
    "",  # empty
    "tips tips tips tips tips",  # repetitive
    "Tips about running: warm up first.",
    "Save a little money each week and track your spending on saving money.",
    "I like turtles.",
    "For gardening: water early, mulch well, and pick plants that suit your soil.",
    "Chess tips: learn openings.",
]
MODEL = [{**r, "output": text, "generator": "model"} for r, text in zip(REFERENCE, MODEL_TEXTS, strict=True)]


def _hash_logprobs(messages: list[dict[str, Any]]) -> dict[str, float]:
    """A pseudo-judge that is a pure function of the messages it is sent."""
    h = int(hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:8], 16) / 16**8
    p = 0.05 + 0.9 * h
    return {"m": math.log(p), "M": math.log(1 - p)}


class HashJudge(Judge):
    name = "hash"
    is_offline = True

    def complete(self, request: JudgeRequest) -> JudgeReply:
        return JudgeReply(text="m", top_logprobs=[_hash_logprobs(list(request.messages))], raw={})


class LongerJudge(Judge):
    """Always prefers whichever output it is shown that is longer."""

    name = "longer"
    is_offline = True

    def complete(self, request: JudgeRequest) -> JudgeReply:
        first_longer = len(request.payload["output_1"]) > len(request.payload["output_2"])
        strong, weak = (-0.001, -8.0) if first_longer else (-8.0, -0.001)
        return JudgeReply(text="m" if first_longer else "M", top_logprobs=[{"m": strong, "M": weak}], raw={})


class SilentJudge(Judge):
    """Answers without log-probs for the instructions it is told to, like a judge with logprobs off."""

    name = "silent"
    is_offline = True

    def __init__(self, silent_on: set[str]) -> None:
        self.silent_on = silent_on
        self.asked: list[str] = []

    def complete(self, request: JudgeRequest) -> JudgeReply:
        self.asked.append(request.payload["instruction"])
        if request.payload["instruction"] in self.silent_on:
            return JudgeReply(text="m", top_logprobs=None, raw={})
        return JudgeReply(text="m", top_logprobs=[{"m": -0.7, "M": -0.7}], raw={})


def test_offline_win_rate_is_alpaca_eval_definition() -> None:
    result, annotations = ae.evaluate(MODEL, REFERENCE, OfflineJudge())
    prefs = annotations["preference"]
    assert prefs.between(1, 2).all() and prefs.iloc[0] == 1.5
    # alpaca_eval: win rate = mean(preference - 1) * 100 (a tie, 1.5, counts half), its SE the SEM of that.
    assert result["win_rate"] == pytest.approx(((prefs - 1) * 100).mean())
    assert result["standard_error"] == pytest.approx(((prefs - 1) * 100).sem())
    assert result["n"] == len(MODEL) and result["n_unparsed"] == 0
    assert result["judge_calls"] == len(MODEL) - 1 and result["cache_hits"] == 0
    assert result["judge"] == "offline-heuristic-v1" and result["judge_is_offline"] is True
    assert result["template"].startswith("alpaca_eval_clf_gpt4_turbo@")
    assert result["decoding"] == {"max_tokens": 1, "temperature": 1, "top_logprobs": 5}
    assert list(annotations[["output_1", "output_2"]].iloc[3]) == [REFERENCE[3]["output"], MODEL_TEXTS[3]]
    assert set(annotations["index"]) == set(range(len(MODEL)))


def test_preferences_equal_alpaca_eval_annotator(monkeypatch: pytest.MonkeyPatch) -> None:
    """alpaca_eval's own PairwiseAnnotator, with the same pseudo-judge, gives exactly our preferences."""
    ae.upstream()  # alpaca_eval imported first with its pkg_resources warning silenced, as the suite does
    import alpaca_eval.annotators.base as alpaca_annotators_base
    from alpaca_eval import utils as alpaca_utils
    from alpaca_eval.annotators import PairwiseAnnotator

    def completions(prompts: list[str], **_: Any) -> dict[str, list[Any]]:
        tops = [_hash_logprobs(alpaca_utils.prompt_to_chatml(p.strip())) for p in prompts]
        content = [{"top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()]} for top in tops]
        return {
            "completions": ["m"] * len(prompts),
            "completions_all": [{"logprobs": {"content": [c]}} for c in content],
        }

    monkeypatch.setattr(alpaca_annotators_base, "get_fn_completions", lambda _: completions)
    annotator = PairwiseAnnotator(annotators_config=ae.ANNOTATOR, caching_path=None, is_avoid_reannotations=False)
    theirs = annotator.annotate_head2head(outputs_1=REFERENCE, outputs_2=MODEL)
    _, ours = ae.evaluate(MODEL, REFERENCE, HashJudge())
    expected = {row["instruction"]: row["preference"] for row in theirs}
    assert dict(zip(ours["instruction"], ours["preference"], strict=True)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("model_longer", "bound"), [(True, 99.0), (False, 1.0)])
def test_order_swap_is_undone(model_longer: bool, bound: float) -> None:
    def text(ref: str) -> str:
        return ref + " And one more thing to keep in mind." if model_longer else ref[:12]

    model = [{**r, "output": text(r["output"]), "generator": "model"} for r in REFERENCE]
    result, annotations = ae.evaluate(model, REFERENCE, LongerJudge())
    assert set(annotations[ae.SWITCH_COLUMN]) == {True, False}, "the test set must exercise both orders"
    assert (result["win_rate"] > bound) if model_longer else (result["win_rate"] < bound)


def test_unparsable_replies_are_asked_again_then_refused_unless_partial_is_allowed() -> None:
    silent = {REFERENCE[2]["instruction"], REFERENCE[5]["instruction"]}
    judge = SilentJudge(silent)
    with pytest.raises(IncompleteResultError) as info:
        ae.evaluate(MODEL, REFERENCE, judge)
    assert str(info.value).startswith("alpaca_eval: 2 of 8 items have no score: 2 judge reply unparsed (e.g. #2 ")
    assert "#5 'Give two tips about gardening.'" in str(info.value) and "allow_partial: true" in str(info.value)
    assert sorted(judge.asked).count(REFERENCE[2]["instruction"]) == ae.REPLY_ATTEMPTS

    result, annotations = ae.evaluate(MODEL, REFERENCE, SilentJudge(silent), options={"allow_partial": True})
    assert (result["n"], result["n_expected"], result["partial"]) == (6, 8, True)
    assert result["missing"] == {"judge reply unparsed": 2} and result["n_unparsed"] == 2
    assert result["win_rate"] == pytest.approx(50.0)  # the parsed pairs all got 1.5
    assert annotations["preference"].isna().sum() == 2  # the annotation file still lists every pair


class RefusingJudge(Judge):
    name = "refusing"
    is_offline = True

    def complete(self, request: JudgeRequest) -> JudgeReply:
        raise AssertionError("no judge call may be made")


def test_missing_outputs_are_refused_before_judging_unless_allowed() -> None:
    present = [m for i, m in enumerate(MODEL) if i not in (3, 6)]
    with pytest.raises(IncompleteResultError) as info:
        ae.evaluate(present, REFERENCE, RefusingJudge())
    message = str(info.value)
    assert message.startswith("alpaca_eval: 2 of 8 items have no score: 2 no model output (e.g. #3 ")
    assert "#6 'Give two tips about painting.'" in message and "allow_missing: true" in message

    result, annotations = ae.evaluate(present, REFERENCE, OfflineJudge(), options={"allow_missing": True})
    assert (result["n"], result["n_expected"], result["partial"]) == (6, 8, True)
    assert result["missing"] == {"no model output": 2}
    assert list(annotations["index"]) == [0, 1, 2, 4, 5, 7]  # positions in the eval set, LC's key
    # the same pairs judged as a six-instruction eval set give the same preferences, so the same win rate
    subset = [r for i, r in enumerate(REFERENCE) if i not in (3, 6)]
    alone, _ = ae.evaluate(present, subset, OfflineJudge())
    assert result["win_rate"] == pytest.approx(alone["win_rate"]) and alone["partial"] is False


def test_pairing_rejects_foreign_outputs_and_lists_the_unanswered() -> None:
    with pytest.raises(ValueError, match="no reference output"):
        ae.pair_outputs(REFERENCE[:-1], MODEL)
    pairs = ae.pair_outputs(REFERENCE, MODEL[:-1])
    assert ae.unanswered(REFERENCE, pairs) == [f"#7 {REFERENCE[7]['instruction']!r}"]


def test_a_foreign_file_is_named_by_file_record_and_field(tmp_path: Path) -> None:
    answers = tmp_path / "arena_answers.json"
    answers.write_text(json.dumps([{"question_id": "q1", "model_id": "m", "choices": [{"turns": ["hi"]}]}]))
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps(REFERENCE))
    args = ["--outputs", str(answers), "--reference", str(reference), "--judge", '{"backend": "offline"}']
    with pytest.raises(DataError) as info:
        ae.main([*args, "--out", str(tmp_path / "r.json")])
    assert str(info.value) == (
        f"{answers}: record 1: field 'instruction': missing; the record looks like a FastChat answer record "
        "(question_id, model_id, choices), not an alpaca_eval output record (instruction, output, generator)"
    )
    assert not (tmp_path / "r.json").exists()


def test_lc_is_null_with_a_reason_for_a_non_official_set() -> None:
    result, _ = ae.evaluate(MODEL, REFERENCE, OfflineJudge())
    assert result["lc"] is None and result["lc_standard_error"] is None
    assert "805" in result["lc_unavailable_reason"]


OFFICIAL_MISSING = f"{ae.OFFICIAL_FILE} is not in the HF cache"


def official_set(n: int = ae.OFFICIAL_SIZE) -> list[dict[str, str]]:
    return [
        {
            "instruction": f"Question {i}: explain item {i}.",
            "output": f"Item {i} is " + "x" * (i % 50),
            "generator": "gpt4",
        }
        for i in range(n)
    ]


def fake_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, official: list[dict[str, str]] | None, gamed: bool = True
) -> None:
    """Stand-ins for the hub files LC needs, in place of the HF cache."""
    ae.upstream()  # see test_preferences_equal_alpaca_eval_annotator
    from alpaca_eval.metrics import glm_winrate

    files: dict[str, Path] = {}
    if official is not None:
        files[ae.OFFICIAL_FILE] = tmp_path / ae.OFFICIAL_FILE
        files[ae.OFFICIAL_FILE].write_text(json.dumps(official))
    if not gamed:
        monkeypatch.setattr(ae, "_cached_hub_file", files.get)
        return
    df_gamed = pd.DataFrame(
        {
            "index": list(range(ae.OFFICIAL_SIZE)) * 2,
            "instruction_difficulty": [math.sin(i) for i in range(ae.OFFICIAL_SIZE)] * 2,
            "std_delta_len": [1.0] * ae.OFFICIAL_SIZE + [-1.0] * ae.OFFICIAL_SIZE,
            "preference": [0.8] * ae.OFFICIAL_SIZE + [0.2] * ae.OFFICIAL_SIZE,
            "not_gamed_baseline": False,
            "model": ["verbose"] * ae.OFFICIAL_SIZE + ["concise"] * ae.OFFICIAL_SIZE,
        }
    )
    files[ae.GAMED_FILE] = tmp_path / ae.GAMED_FILE
    df_gamed.to_csv(files[ae.GAMED_FILE], index=False)
    monkeypatch.setattr(ae, "_cached_hub_file", files.get)
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **kw: str(files[kw["filename"]]))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # sklearn deprecations inside alpaca_eval's GLM
def test_lc_is_computed_only_for_the_official_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = official_set()
    fake_hub(tmp_path, monkeypatch, reference)
    model = [{**r, "output": r["output"] + " More detail.", "generator": "model"} for r in reference]
    result, _ = ae.evaluate(model, reference, OfflineJudge())
    assert result["lc_unavailable_reason"] is None
    assert 0 <= result["lc"] <= 100 and result["lc_standard_error"] is not None
    # a leaderboard model with 803 of the 805 outputs: alpaca_eval scores it, LC included
    partial, _ = ae.evaluate(model[:400] + model[402:], reference, OfflineJudge(), options={"allow_missing": True})
    assert partial["lc_unavailable_reason"] is None and 0 <= partial["lc"] <= 100
    assert (partial["n"], partial["missing"]) == (803, {"no model output": 2})

    instructions = [r["instruction"] for r in reference]
    assert "differ" in ae.lc_unavailable_reason(instructions[::-1])
    fake_hub(tmp_path, monkeypatch, None)
    assert OFFICIAL_MISSING in ae.lc_unavailable_reason(instructions)
    fake_hub(tmp_path, monkeypatch, reference, gamed=False)
    assert f"{ae.GAMED_FILE} (LC's instruction difficulties) is not in the HF cache" in ae.lc_unavailable_reason(
        instructions
    )


def test_benchmark_registry_and_output_format(tmp_path: Path) -> None:
    assert "alpaca_eval" in benchmark_names()
    with pytest.raises(KeyError, match="alpaca_eval"):
        get_benchmark("alpacaeval")
    bench = get_benchmark("alpaca_eval")
    assert bench.COLUMNS == {"lc": "AlpacaEval2 LC", "win_rate": "AlpacaEval2 WR"}

    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(REFERENCE))
    assert bench.read_prompts(prompts)[0] == [{"role": "user", "content": REFERENCE[0]["instruction"]}]
    out = tmp_path / "outputs.json"
    bench.write_outputs(prompts, MODEL_TEXTS, "model", out)
    written = json.loads(out.read_text())
    assert written == [{k: r[k] for k in ("instruction", "output", "generator", "dataset")} for r in MODEL]
    with pytest.raises(ValueError, match="7 responses for 8 prompts"):
        bench.write_outputs(prompts, MODEL_TEXTS[:-1], "model", out)


def test_the_evaluate_job_stops_with_the_message_and_writes_no_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline import evaluate

    outputs, reference = tmp_path / "outputs.json", tmp_path / "reference.json"
    outputs.write_text(json.dumps(MODEL[:-1]))
    reference.write_text(json.dumps(REFERENCE))
    step = f'--outputs {outputs} --reference {reference} --judge \'{{"backend": "offline"}}\' --out {tmp_path}/r.json'
    with pytest.raises(SystemExit) as stopped:
        evaluate.main(["--step", "evals.alpaca_eval", step])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: evals.alpaca_eval: IncompleteResultError: alpaca_eval: 1 of 8 items have no score")
    assert "Traceback" not in err and not (tmp_path / "r.json").exists()
    evaluate.main(["--step", "evals.alpaca_eval", step + " --options '{\"allow_missing\": true}'"])
    assert json.loads((tmp_path / "r.json").read_text())["missing"] == {"no model output": 1}
