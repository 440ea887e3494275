"""The cost guard: calls minus cache hits, tokens, cost, the refusal above budget and the confirmation."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals import arena_hard as ah
from evals import budget
from evals import harmless as hl
from evals import mt_bench as mt
from evals.judges import AskPolicy, CachedJudge, Judge, JudgeReply, JudgeRequest, ask
from evals.judges.offline import OfflineJudge
from evals.judges.openai_compat import OpenAIConfig, OpenAIJudge
from pipeline import budget as budget_cli
from suite.data import prepare

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "workflow/resources/smoke"
PAID = {"backend": "openai", "model": "gpt-4-1106-preview"}


@pytest.fixture(autouse=True)
def chars_per_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count tokens as characters / 4 whether or not tiktoken's encoding is downloadable here."""
    monkeypatch.setattr(budget, "_encoding", lambda model: None)
    monkeypatch.delenv(budget.CONFIRM_ENV, raising=False)


def requests(n: int, words: int = 10) -> list[JudgeRequest]:
    return [
        JudgeRequest(
            messages=({"role": "user", "content": f"question {i} " + "word " * words},),
            max_tokens=7,
            temperature=0.0,
            top_logprobs=None,
            template="t@1",
        )
        for i in range(n)
    ]


class NamedJudge(Judge):
    """Stands in for a paid judge of a given name, to fill the cache."""

    is_offline = False

    def __init__(self, name: str) -> None:
        self.name = name

    def complete(self, request: JudgeRequest) -> JudgeReply:
        return JudgeReply(text="ok", top_logprobs=None, raw={})


def fill(cache: Path, todo: list[JudgeRequest]) -> None:
    """Answer requests through the paid judge's cache, as an earlier run would have."""
    filler = CachedJudge(NamedJudge(budget.judge_name(PAID)), cache)
    for request in todo:
        ask(filler, request, AskPolicy())


def expected_tokens(request: JudgeRequest) -> int:
    per_message = budget.TOKENS_PER_MESSAGE
    return sum(-(-len(m["content"]) // 4) + per_message for m in request.messages) + per_message


def test_counts_calls_minus_cache_hits_and_prices_them(tmp_path: Path) -> None:
    todo = requests(10)
    cache = tmp_path / "judge.sqlite"
    fill(cache, todo[:4])
    found = budget.estimate(PAID, todo, cache)
    assert (found.calls, found.cached, found.to_call) == (10, 4, 6)
    assert found.input_tokens == sum(expected_tokens(r) for r in todo[4:])
    assert found.output_tokens == found.worst_output_tokens == 6 * 7  # no expectation given: the bound
    assert found.paid and found.cost_usd == pytest.approx((found.input_tokens * 10 + 6 * 7 * 30) / 1e6)
    # The cache of another judge (or template) does not count.
    assert budget.estimate({**PAID, "model": "gpt-4o"}, todo, cache).cached == 0
    assert budget.estimate(PAID, todo, tmp_path / "missing.sqlite").cached == 0


def test_expected_spend_prices_each_call_at_the_expected_reply_length_worst_case_at_max_tokens() -> None:
    todo = requests(10)  # max_tokens 7 each
    found = budget.estimate(PAID, todo, None, expected_output=3)
    inputs = sum(expected_tokens(r) for r in todo)
    assert (found.output_tokens, found.worst_output_tokens) == (10 * 3, 10 * 7)
    assert found.cost_usd == pytest.approx((inputs * 10 + 30 * 30) / 1e6)  # gpt-4-1106-preview: $10 / $30 per 1M
    assert found.worst_cost_usd == pytest.approx((inputs * 10 + 70 * 30) / 1e6)
    assert budget.estimate(PAID, todo, None, expected_output=50).output_tokens == 10 * 7  # never above max_tokens


def test_the_guard_compares_the_expected_cost_with_the_budget() -> None:
    todo = requests(50, words=400)
    found = budget.estimate(PAID, todo, None, expected_output=2)
    assert found.cost_usd is not None and found.worst_cost_usd is not None
    between = (found.cost_usd + found.worst_cost_usd) / 2
    assert budget.guard({**PAID, "max_budget_usd": between}, todo, None, expected_output=2).cost_usd == found.cost_usd
    with pytest.raises(budget.BudgetError) as refused:
        budget.guard({**PAID, "max_budget_usd": found.cost_usd / 2}, todo, None, expected_output=2)
    message = str(refused.value)
    assert f"expected cost ${found.cost_usd:.2f} (worst case ${found.worst_cost_usd:.2f})" in message


def test_expected_reply_lengths_come_from_the_benchmark_unless_the_config_says(tmp_path: Path) -> None:
    assert budget.expected_output_tokens("alpaca_eval", PAID, {}) == 1  # the annotator's one token
    assert budget.expected_output_tokens("mt_bench", PAID, {}) == 207  # measured on real GPT-4 judgments
    assert budget.expected_output_tokens("arena_hard", PAID, {"protocol": "v0.1"}) == 600
    assert budget.expected_output_tokens("arena_hard", PAID, {"protocol": "v2.0"}) == 600
    assert budget.expected_output_tokens("harmless", PAID, {}) == 60
    assert budget.expected_output_tokens("hh_helpful", PAID, {}) == 1
    assert budget.expected_output_tokens("mt_bench", {**PAID, "expected_output_tokens": 120}, {}) == 120


def test_judge_names_match_the_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AAO_TEST_BUDGET_KEY", "sk-test")
    config = {**PAID, "api_key_env": "AAO_TEST_BUDGET_KEY"}
    for extra in ({}, {"base_url": "http://vllm:8000/v1"}):
        judge = OpenAIJudge(OpenAIConfig.from_mapping({k: v for k, v in {**config, **extra}.items() if k != "backend"}))
        assert budget.judge_name({**config, **extra}) == judge.cache_identity
    assert budget.judge_name(config) == "openai:gpt-4-1106-preview"
    assert budget.judge_name({"backend": "offline"}) == OfflineJudge.name


def test_who_pays() -> None:
    assert budget.is_paid(PAID)
    assert not budget.is_paid({"backend": "offline"})
    assert not budget.is_paid({"backend": "hf", "model": "x"})
    assert not budget.is_paid({**PAID, "model": "llama-70b", "base_url": "http://vllm:8000/v1"}), "self-hosted"
    assert budget.is_paid(
        {**PAID, "model": "llama-70b", "base_url": "http://x/v1", "prices": {"llama-70b": {"input": 1, "output": 1}}}
    )
    assert budget.price({**PAID, "prices": {"gpt-4-1106-preview": {"input": 1.0, "output": 2.0}}}) == {
        "input": 1.0,
        "output": 2.0,
    }


def test_refuses_above_budget_and_passes_with_the_env_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    todo = requests(50, words=400)
    cost = budget.estimate(PAID, todo, None).cost_usd
    assert cost is not None and cost > 0.01
    with pytest.raises(budget.BudgetError) as refused:
        budget.guard({**PAID, "max_budget_usd": 0.01}, todo, None, what="alpaca_eval on x.json")
    message = str(refused.value)
    assert f"${cost:.2f}" in message and "judge.max_budget_usd = $0.01" in message
    assert "50 judge calls" in message and "AAO_CONFIRM_SPEND=1" in message and "alpaca_eval on x.json" in message
    assert budget.guard({**PAID, "max_budget_usd": 100.0}, todo, None).cost_usd == pytest.approx(cost)
    monkeypatch.setenv(budget.CONFIRM_ENV, "1")
    assert budget.guard({**PAID, "max_budget_usd": 0.01}, todo, None).cost_usd == pytest.approx(cost)


def test_confirm_needs_the_env_for_any_spend_but_not_for_cached_or_free_calls(tmp_path: Path) -> None:
    todo = requests(3)
    with pytest.raises(budget.BudgetError, match=r"judge\.confirm is true"):
        budget.guard({**PAID, "confirm": True}, todo, None)
    cache = tmp_path / "judge.sqlite"
    fill(cache, todo)
    assert budget.guard({**PAID, "confirm": True}, todo, cache).to_call == 0
    assert budget.guard({"backend": "offline", "confirm": True, "max_budget_usd": 0}, todo, None).paid is False
    # No switch, no guard.
    assert budget.guard(PAID, requests(5000, words=1000), None).calls == 0


def test_unpriced_paid_model_is_refused_under_a_budget() -> None:
    with pytest.raises(budget.BudgetError, match="unknown"):
        budget.guard({**PAID, "model": "gpt-9", "max_budget_usd": 1000.0}, requests(2), None)


def test_backend_config_strips_the_budget_keys() -> None:
    config = {**PAID, "max_budget_usd": 5, "confirm": True, "prices": {}}
    assert budget.backend_config(config) == PAID
    assert budget.budget_settings(config) == {"max_budget_usd": 5, "confirm": True, "prices": {}}


# --------------------------------------------------------------------------- the run table and the step check


def small_config(judge: dict[str, Any]) -> dict[str, Any]:
    config = yaml.safe_load((REPO / "workflow/config/config.yaml").read_text())
    config["variants"] = {"llama-base": config["variants"]["llama-base"]}
    config["methods"] = {"dpo": config["methods"]["dpo"]}
    config["experiments"] = {}
    config["benchmarks"] = {k: copy.deepcopy(config["benchmarks"][k]) for k in ("alpaca_eval", "harmless")}
    config["benchmarks"]["capability"] = {  # optional at CPU scale: a judge-free benchmark in the table
        "options": {"tasks": ["aao_smoke_mc"], "include_path": "workflow/resources/smoke/lm_eval"}
    }
    config["datasets"] = {k: v for k, v in config["datasets"].items() if "onpolicy" not in v}
    config["judge"] = judge
    return config


@pytest.fixture
def results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    (results / "data").mkdir(parents=True)
    shutil.copy(SMOKE / "alpaca_eval_smoke.json", results / "data/alpaca_eval.json")
    prepare("preference", {"format": "hh", "path": str(SMOKE / "hh_test_smoke.jsonl"), "name": "hh_test"},
            results / "data/hh_test.jsonl")  # fmt: skip
    return results


def write_config(tmp_path: Path, judge: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(small_config(judge)))
    return path


def test_experiment_branches_are_planned_too(tmp_path: Path, results: Path) -> None:
    config = small_config(PAID)
    hh = yaml.safe_load((REPO / "workflow/config/config.yaml").read_text())["experiments"]["hh"]
    config["experiments"] = {"hh": {**hh, "methods": ["dpo"], "seeds": None}}  # one model: one seed
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    rows = {row.benchmark: row for row in budget.plan_run(budget_cli.load_config(path), results)}
    assert rows["hh/harmless"].models == rows["hh/hh_helpful"].models == 1
    assert rows["hh/harmless"].estimate.calls == rows["hh/hh_helpful"].estimate.calls == 20


def test_cli_table_estimates_then_counts_exactly(tmp_path: Path, results: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path, {**PAID, "max_budget_usd": 1.0})
    assert budget_cli.main(["--config", str(config), "--results", str(results)]) == 0
    table = capsys.readouterr().out
    assert all(word in table for word in ("alpaca_eval", "harmless", "capability", "TOTAL", "(estimated)"))
    rows = {row.benchmark: row for row in budget.plan_run(budget_cli.load_config(config), results)}
    assert (rows["alpaca_eval"].estimate.calls, rows["alpaca_eval"].exact) == (24, 0)
    assert rows["harmless"].estimate.calls == 20 and rows["capability"].estimate.calls == 0
    total = budget.run_total(list(rows.values()))
    assert total.calls == 44 and total.cost_usd is not None and total.worst_cost_usd is not None
    assert 0 < total.cost_usd < total.worst_cost_usd
    total_line = next(line for line in table.splitlines() if line.startswith("TOTAL"))
    assert total_line.split()[-2:] == [f"{total.cost_usd:.2f}", f"{total.worst_cost_usd:.2f}"]
    assert "USD expected" in table and "USD worst" in table
    assert "judge.max_budget_usd: $1.00 (per evaluate step, compared with the expected cost)" in table

    # With real outputs the requests are exact; a cached run leaves nothing to call.
    outputs = results / "generations/llama-base/dpo/harmless.json"
    outputs.parent.mkdir(parents=True)
    hl.write_outputs(results / "data/hh_test.jsonl", ["I can't help with that."] * 20, "llama-base-dpo", outputs)
    fill(results / budget.DEFAULT_CACHE, hl.judge_requests(outputs, results / "data/hh_test.jsonl")[:15])
    rows = budget.plan_run(budget_cli.load_config(config), results)
    harmless = next(r for r in rows if r.benchmark == "harmless")
    assert (harmless.exact, harmless.estimate.calls, harmless.estimate.cached) == (1, 20, 15)

    # --check applies the budget to the run total.
    tight = write_config(tmp_path, {**PAID, "max_budget_usd": 0.0001})
    assert budget_cli.main(["--config", str(tight), "--results", str(results), "--check"]) == 3
    assert "refused" in capsys.readouterr().err


def test_step_check_refuses_before_the_judge_is_called(
    tmp_path: Path, results: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = tmp_path / "alpaca_outputs.json"
    reference = json.loads((results / "data/alpaca_eval.json").read_text())
    outputs.write_text(json.dumps([{**r, "output": "An answer. " * 50, "generator": "m"} for r in reference]))
    argv = ["--step", "--benchmark", "alpaca_eval", "--outputs", str(outputs)]
    argv += ["--reference", str(results / "data/alpaca_eval.json"), "--cache", str(tmp_path / "c.sqlite")]
    assert budget_cli.main([*argv, "--judge", json.dumps(PAID)]) == 0, "no switch: never refuses"
    assert budget_cli.main([*argv, "--judge", json.dumps({**PAID, "max_budget_usd": 0.001})]) == 3
    err = capsys.readouterr().err
    assert "alpaca_eval" in err and "24 judge calls" in err and "judge.max_budget_usd" in err
    monkeypatch.setenv(budget.CONFIRM_ENV, "1")
    assert budget_cli.main([*argv, "--judge", json.dumps({**PAID, "max_budget_usd": 0.001})]) == 0


def test_harmless_main_checks_the_budget_before_judging(tmp_path: Path, results: Path) -> None:
    outputs = tmp_path / "outputs.json"
    hl.write_outputs(results / "data/hh_test.jsonl", ["No."] * 20, "gen", outputs)
    judge = {**PAID, "api_key_env": "AAO_TEST_UNSET_KEY", "max_budget_usd": 0.0001}
    with pytest.raises(budget.BudgetError, match="20 judge calls"):  # refused before the judge (and its key) is needed
        hl.main(["--outputs", str(outputs), "--judge", json.dumps(judge), "--out", str(tmp_path / "r.json")])
    assert not (tmp_path / "r.json").exists()


def test_asset_benchmarks_are_estimated_from_their_asset_files(
    tmp_path: Path, results: Path, capsys: pytest.CaptureFixture
) -> None:
    """MT-Bench and Arena-Hard: the table and the step check read the assets where the workflow keeps them."""
    config = small_config(PAID)
    full = yaml.safe_load((REPO / "workflow/config/config.yaml").read_text())
    config["benchmarks"] = {k: copy.deepcopy(full["benchmarks"][k]) for k in ("mt_bench", "arena_hard")}
    config_path = tmp_path / "assets.yaml"
    config_path.write_text(yaml.safe_dump(config))
    for name in ("mt_bench", "arena_hard"):
        source = {**full["datasets"][name], "path": str(REPO / full["datasets"][name]["path"])}
        prepare(name, {k: v for k, v in source.items() if k != "kind"}, results / f"data/{name}.jsonl")
    rows = {r.benchmark: r for r in budget.plan_run(budget_cli.load_config(config_path), results)}
    assert all(r.estimate.calls == 0 and r.estimate.cost_usd is None for r in rows.values())
    assert "not fetched yet" in rows["mt_bench"].estimate.notes[0]

    assets = {}
    for benchmark, block in config["benchmarks"].items():
        assets[benchmark] = budget.asset_files(benchmark, results, block["assets"])
        for name, path in assets[benchmark].items():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / block["assets"][name]["path"], path)
    assert budget_cli.main(["--config", str(config_path), "--results", str(results)]) == 0
    assert "cannot be estimated" not in capsys.readouterr().out
    rows = {r.benchmark: r for r in budget.plan_run(budget_cli.load_config(config_path), results)}
    questions = {name: len((results / f"data/{name}.jsonl").read_text().splitlines()) for name in rows}
    assert rows["arena_hard"].estimate.calls == 2 * questions["arena_hard"]  # two games per prompt
    assert rows["mt_bench"].estimate.calls == 2 * questions["mt_bench"]  # two turns per question
    assert all(r.estimate.cost_usd is not None and r.estimate.cost_usd > 0 for r in rows.values())

    # With real outputs the step check counts exactly the module's requests, assets found under --results.
    outputs = tmp_path / "mt_outputs.json"
    prompts = results / "data/mt_bench.jsonl"
    mt.write_outputs(prompts, [["An answer."] * len(t) for t in mt.read_turns(prompts)], "m", outputs)
    expected = mt.judge_requests(outputs, prompts, {}, assets["mt_bench"])
    found, _ = budget.step_estimate("mt_bench", PAID, outputs, prompts, None, {}, assets["mt_bench"])
    assert found.calls == len(expected) and found.input_tokens == sum(expected_tokens(r) for r in expected)
    argv = ["--step", "--benchmark", "mt_bench", "--outputs", str(outputs), "--reference", str(prompts)]
    argv += ["--results", str(results), "--judge", json.dumps({**PAID, "max_budget_usd": 1e-6})]
    assert budget_cli.main(argv) == 3
    assert f"{len(expected)} judge calls" in capsys.readouterr().err
    ah_outputs = tmp_path / "ah_outputs.json"
    ah_prompts = results / "data/arena_hard.jsonl"
    ah.write_outputs(ah_prompts, ["An answer."] * questions["arena_hard"], "m", ah_outputs)
    options = config["benchmarks"]["arena_hard"]["options"]
    expected = ah.judge_requests(ah_outputs, ah_prompts, options, assets["arena_hard"])
    found, _ = budget.step_estimate("arena_hard", PAID, ah_outputs, ah_prompts, None, options, assets["arena_hard"])
    assert found.calls == len(expected) == 2 * questions["arena_hard"]
