"""Cost guard for paid judge APIs: how many calls a run will make, how many tokens, and what they cost.

Before a run, ``python -m pipeline.budget --config workflow/config/paper.yaml``
prints per benchmark the judge calls of every (variant, method), minus those
already answered in the judge cache, the prompt and completion tokens they
carry and their cost in USD. Where a model's outputs exist
(``results/generations/``) the requests are built exactly as the benchmark
will send them; where they do not exist yet, from the prompt set with an
assumed response of :data:`ASSUMED_RESPONSE_WORDS` words (marked
``estimated``). Prompt tokens are counted with tiktoken when its encoding is
available (it downloads the encoding once) and as characters / 4 otherwise.
Completion tokens are counted twice: *expected*, each call at the
benchmark's expected judgment length (its module's
``EXPECTED_JUDGE_OUTPUT_TOKENS``, measured on real judgments where they exist,
source stated there; override with ``expected_output_tokens`` in the
benchmark's ``judge:`` block), and *worst case*, each call at its
``max_tokens``.

Prices: USD per 1M input / output tokens, :data:`DEFAULT_PRICES` (list prices
of the OpenAI models the suite's protocols name) extended or overridden by the
config's ``judge.prices`` (``{model: {input: x, output: y}}``); edit them when
prices change. An ``openai`` judge on OpenAI's own endpoint is paid; on another
endpoint (``base_url``, e.g. a vLLM server) it is free unless its model is
priced; ``offline`` and ``hf`` judges are free.

The guard in the evaluate step: with ``judge.max_budget_usd`` set, an evaluate
step whose expected spend (its uncached calls) exceeds the budget refuses to
start, and with ``judge.confirm: true`` every step that would spend anything
refuses, unless the environment has ``AAO_CONFIRM_SPEND=1``. The budget is per
evaluate step (one model on one benchmark), where a misconfiguration (wrong
judge, a full eval set instead of a subset) shows; ``--check`` applies the same
budget to the whole run's total. Benchmarks call :func:`guard` before judging;
for those that do not, the workflow runs ``python -m pipeline.budget --step ...``
first.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from evals.judges import JudgeReply, JudgeRequest, judge_identity
from evals.judges.base import Judge
from evals.judges.cache import stored

log = logging.getLogger(__name__)

CONFIRM_ENV = "AAO_CONFIRM_SPEND"
BUDGET_KEYS = ("max_budget_usd", "confirm", "prices", "expected_output_tokens")
# USD per 1M tokens (input, output): OpenAI list prices; override or extend with judge.prices in the config.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4-1106-preview": {"input": 10.0, "output": 30.0},
    "gpt-4-0125-preview": {"input": 10.0, "output": 30.0},
    "gpt-4-turbo": {"input": 10.0, "output": 30.0},
    "gpt-4-turbo-2024-04-09": {"input": 10.0, "output": 30.0},
    "gpt-4": {"input": 30.0, "output": 60.0},
    "gpt-4-0613": {"input": 30.0, "output": 60.0},
    "gpt-4-0314": {"input": 30.0, "output": 60.0},
    "gpt-4o": {"input": 2.5, "output": 10.0},
    "gpt-4o-2024-08-06": {"input": 2.5, "output": 10.0},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
}
TOKENS_PER_MESSAGE = 4  # chat formatting overhead per message, and once more for the reply's priming
CHARS_PER_TOKEN = 4
ASSUMED_RESPONSE_WORDS = 400
DEFAULT_CACHE = "cache/judge.sqlite"  # under the results directory, as the workflow's evaluate rule uses it


class BudgetError(RuntimeError):
    """A run would spend more than the configured budget, or needs an explicit confirmation."""


# --------------------------------------------------------------------------- judge settings


def backend_config(judge_config: Mapping[str, Any]) -> dict[str, Any]:
    """The judge config without the budget keys, as the judge backends take it."""
    return {k: v for k, v in judge_config.items() if k not in BUDGET_KEYS}


def budget_settings(judge_config: Mapping[str, Any]) -> dict[str, Any]:
    """Only the budget keys of a judge config."""
    return {k: v for k, v in judge_config.items() if k in BUDGET_KEYS}


def prices(judge_config: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {**DEFAULT_PRICES, **(judge_config.get("prices") or {})}


def price(judge_config: Mapping[str, Any]) -> dict[str, float] | None:
    """USD per 1M input/output tokens of the configured judge model, or None when it is not priced."""
    model = judge_config.get("model")
    return prices(judge_config).get(model) if isinstance(model, str) else None


def is_paid(judge_config: Mapping[str, Any]) -> bool:
    """OpenAI's own endpoint always; another endpoint only when its model is priced; local judges never."""
    if judge_config.get("backend") != "openai":
        return False
    return judge_config.get("base_url") is None or price(judge_config) is not None


def check_budget_settings(settings: Mapping[str, Any]) -> None:
    """Raise ValueError naming the key when a budget key has a value of the wrong type or range."""
    budget = settings.get("max_budget_usd")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0):
        raise ValueError("max_budget_usd: must be a number >= 0 (USD per evaluate step) or null")
    if "confirm" in settings and not isinstance(settings["confirm"], bool):
        raise ValueError("confirm: must be true or false")
    tokens = settings.get("expected_output_tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0):
        raise ValueError("expected_output_tokens: must be an integer >= 0 (tokens per judge reply)")
    for model, rate in (settings.get("prices") or {}).items():
        if not isinstance(rate, Mapping) or set(rate) != {"input", "output"}:
            raise ValueError(f"prices/{model}: must be {{input: USD per 1M tokens, output: USD per 1M tokens}}")
        if any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in rate.values()):
            raise ValueError(f"prices/{model}: input and output must be numbers >= 0")


def judge_name(judge_config: Mapping[str, Any]) -> str:
    """The judge's cache identity (part of every cache key), without building the judge."""
    return judge_identity(backend_config(judge_config))


# --------------------------------------------------------------------------- counting


@cache
def _encoding(model: str) -> Any:
    """tiktoken's encoding for ``model`` (cl100k_base when unknown), or None when it cannot be loaded."""
    try:
        import tiktoken

        try:
            return tiktoken.encoding_for_model(model)
        except KeyError:
            return tiktoken.get_encoding("cl100k_base")
    except Exception as exc:  # no network for the encoding file, no tiktoken: fall back to characters / 4
        log.info("tiktoken unavailable (%s: %s); counting tokens as characters / %d", type(exc).__name__, exc, 4)
        return None


def count_tokens(text: str, model: str | None) -> int:
    encoding = _encoding(model or "")
    if encoding is None:
        return -(-len(text) // CHARS_PER_TOKEN)
    return len(encoding.encode(text, disallowed_special=()))


def prompt_tokens(request: JudgeRequest, model: str | None) -> int:
    return sum(count_tokens(m["content"], model) + TOKENS_PER_MESSAGE for m in request.messages) + TOKENS_PER_MESSAGE


@dataclass
class Estimate:
    """Judge calls and their cost, expected and worst case; a cost is None for a paid judge without a price.

    ``output_tokens`` and ``cost_usd`` are expected (each call at the
    benchmark's expected judgment length), ``worst_output_tokens`` and
    ``worst_cost_usd`` the bound (each call at its ``max_tokens``).
    """

    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    worst_output_tokens: int = 0
    paid: bool = False
    cost_usd: float | None = 0.0
    worst_cost_usd: float | None = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def to_call(self) -> int:
        return self.calls - self.cached

    def add(self, other: Estimate) -> None:
        self.calls += other.calls
        self.cached += other.cached
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.worst_output_tokens += other.worst_output_tokens
        self.paid = self.paid or other.paid
        self.cost_usd = _sum(self.cost_usd, other.cost_usd)
        self.worst_cost_usd = _sum(self.worst_cost_usd, other.worst_cost_usd)
        self.notes += [n for n in other.notes if n not in self.notes]

    def unpriced(self, note: str) -> None:
        """Mark the costs unknown (a paid judge without a price, or inputs not there yet)."""
        self.cost_usd = self.worst_cost_usd = None
        self.notes.append(note)


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def estimate(
    judge_config: Mapping[str, Any],
    requests: Sequence[JudgeRequest],
    cache_path: str | Path | None,
    expected_output: int | None = None,
) -> Estimate:
    """Calls, cache hits, tokens and cost of the requests not yet in the cache.

    ``expected_output``: the expected completion tokens of one call (capped at
    its ``max_tokens``); None counts every call at its ``max_tokens``.
    """
    hits = stored(cache_path, judge_name(judge_config), requests)
    model = judge_config.get("model")
    todo = [r for r, hit in zip(requests, hits, strict=True) if not hit]
    worst = sum(r.max_tokens for r in todo)
    result = Estimate(
        calls=len(requests),
        cached=sum(hits),
        input_tokens=sum(prompt_tokens(r, model) for r in todo),
        output_tokens=worst if expected_output is None else sum(min(expected_output, r.max_tokens) for r in todo),
        worst_output_tokens=worst,
        paid=is_paid(judge_config),
    )
    if result.paid:
        rate = price(judge_config)
        if rate is None:
            result.unpriced(f"no price for judge model {model!r}: add it to judge.prices")
        else:
            result.cost_usd = (result.input_tokens * rate["input"] + result.output_tokens * rate["output"]) / 1e6
            result.worst_cost_usd = (result.input_tokens * rate["input"] + worst * rate["output"]) / 1e6
    return result


def expected_output_tokens(benchmark: str, judge_config: Mapping[str, Any], options: Mapping[str, Any]) -> int | None:
    """Expected completion tokens of one of the benchmark's judge calls: the config's, else the module's."""
    from evals import get_benchmark

    if judge_config.get("expected_output_tokens") is not None:
        return int(judge_config["expected_output_tokens"])
    module = get_benchmark(benchmark)
    if hasattr(module, "expected_judge_output_tokens"):
        return int(module.expected_judge_output_tokens(options))
    return getattr(module, "EXPECTED_JUDGE_OUTPUT_TOKENS", None)


# --------------------------------------------------------------------------- the guard


def refusal(estimate: Estimate, settings: Mapping[str, Any], what: str) -> str | None:
    """Why a spend needs confirmation, or None when it may go ahead without one."""
    if not estimate.paid or estimate.to_call == 0:
        return None
    budget = settings.get("max_budget_usd")
    cost = "unknown (no price)" if estimate.cost_usd is None else f"${estimate.cost_usd:.2f}"
    worst = "" if estimate.worst_cost_usd is None else f" (worst case ${estimate.worst_cost_usd:.2f})"
    spend = (
        f"{what}: {estimate.to_call} judge calls ({estimate.cached} of {estimate.calls} cached), "
        f"~{estimate.input_tokens} prompt + ~{estimate.output_tokens} completion tokens "
        f"(<= {estimate.worst_output_tokens}), expected cost {cost}{worst}"
    )
    if budget is not None and (estimate.cost_usd is None or estimate.cost_usd > budget):
        return f"{spend} exceeds judge.max_budget_usd = ${budget:.2f}"
    if settings.get("confirm"):
        return f"{spend}; judge.confirm is true"
    return None


def confirmed() -> bool:
    return os.environ.get(CONFIRM_ENV) == "1"


def check(found: Estimate, settings: Mapping[str, Any], what: str) -> None:
    """Raise BudgetError when ``found`` needs a confirmation that the environment does not give."""
    reason = refusal(found, settings, what)
    if reason is None:
        return
    if confirmed():
        log.warning("%s; going ahead because %s=1", reason, CONFIRM_ENV)
        return
    raise BudgetError(
        f"{reason}. Refusing to call the judge: set {CONFIRM_ENV}=1 to confirm this spend, or raise "
        "judge.max_budget_usd (or set judge.confirm: false) in the config. "
        "`python -m pipeline.budget --config <config>` shows the whole run."
    )


def guard(
    judge_config: Mapping[str, Any],
    requests: Sequence[JudgeRequest],
    cache_path: str | Path | None,
    what: str = "this evaluation",
    expected_output: int | None = None,
) -> Estimate:
    """Refuse (BudgetError) an expected spend over ``judge.max_budget_usd``, or any spend with ``judge.confirm``.

    ``judge_config`` is the judge's config with its budget keys; without
    ``max_budget_usd`` and ``confirm`` nothing is counted or refused.
    ``expected_output``: see :func:`estimate`. ``AAO_CONFIRM_SPEND=1`` confirms.
    """
    settings = budget_settings(judge_config)
    if settings.get("max_budget_usd") is None and not settings.get("confirm"):
        return Estimate()
    found = estimate(judge_config, requests, cache_path, expected_output)
    check(found, settings, what)
    return found


# --------------------------------------------------------------------------- request planners


class _Recorder(Judge):
    """Collects a benchmark's requests and answers with a neutral reply, so its own code builds them."""

    name = "budget-recorder"
    is_offline = True

    def __init__(self) -> None:
        self.requests: list[JudgeRequest] = []

    def complete(self, request: JudgeRequest) -> JudgeReply:
        self.requests.append(request)
        return JudgeReply(text="m", top_logprobs=[{"m": -0.69, "M": -0.69}], raw={})


def annotation_requests(pairs: Any) -> list[JudgeRequest]:
    """The requests AlpacaEval's own annotate() makes for a pair table (order swap and identical-output ties)."""
    import warnings

    from evals import alpaca_eval

    recorder = _Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("evals.alpaca_eval").disabled = True
        try:
            alpaca_eval.annotate(pairs, recorder, alpaca_eval.load_annotator())
        finally:
            logging.getLogger("evals.alpaca_eval").disabled = False
    return recorder.requests


Planner = Callable[..., list[JudgeRequest]]


def planner(benchmark: str) -> Planner | None:
    """The module's ``judge_requests(outputs, reference, options)``; one with ``ASSETS`` also takes ``assets=``."""
    from evals import get_benchmark

    return getattr(get_benchmark(benchmark), "judge_requests", None)


def grader_config(benchmark: str, judge_config: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The judge a benchmark will use (a benchmark may route to its own, e.g. harmless's classifier)."""
    from evals import get_benchmark

    module = get_benchmark(benchmark)
    if hasattr(module, "grader_judge_config"):
        chosen = module.grader_judge_config(judge_config, module.Options.from_mapping(options))
    else:
        chosen = backend_config(judge_config)
    return {**chosen, **budget_settings(judge_config)}


def step_estimate(
    benchmark: str,
    judge_config: Mapping[str, Any],
    outputs: Path,
    reference: Path,
    cache_path: str | Path | None,
    options: Mapping[str, Any] | None = None,
    assets: Mapping[str, Path] | None = None,
) -> tuple[Estimate, dict[str, Any]]:
    """The estimate of one evaluate step, and the judge config it is for.

    ``assets``: the benchmark's asset files by name (judge prompts, reference or
    baseline answers), as the evaluate step passes them; see :func:`asset_files`.
    """
    from evals import get_benchmark

    options = options or {}
    chosen = grader_config(benchmark, judge_config, options)
    plan = planner(benchmark)
    if plan is None:
        unknown = Estimate(paid=is_paid(chosen))
        note = f"{benchmark} cannot be estimated: its module has no judge_requests()"
        unknown.unpriced(note) if unknown.paid else unknown.notes.append(note)
        return unknown, chosen
    extra = {"assets": dict(assets or {})} if getattr(get_benchmark(benchmark), "ASSETS", None) else {}
    expected = expected_output_tokens(benchmark, chosen, options)
    return estimate(chosen, plan(outputs, reference, options, **extra), cache_path, expected), chosen


# --------------------------------------------------------------------------- the run table


def dataset_file(config: Mapping[str, Any], results: Path, name: str) -> Path:
    """Where the workflow writes a prepared data set (as workflow/rules/common.smk names it)."""
    suffix = "json" if config["datasets"][name]["kind"] == "alpaca_eval" else "jsonl"
    return results / "data" / f"{name}.{suffix}"


def asset_files(
    benchmark: str, results: Path, sources: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Path]:
    """Where the workflow keeps a benchmark's assets (as workflow/rules/eval.smk's ``asset_file`` names them).

    With the config's ``benchmarks.<name>.assets`` (``sources``) the suffix is
    the source's; without it (``--step``), the one file ``{name}.*`` found.
    """
    from evals import get_benchmark

    folder = results / "data" / "assets" / benchmark
    if sources is not None:
        return {
            name: folder / f"{name}{os.path.splitext(source.get('path') or source.get('url'))[1]}"
            for name, source in sources.items()
        }
    found = {}
    for name in getattr(get_benchmark(benchmark), "ASSETS", {}):
        matches = sorted(folder.glob(f"{name}.*"))
        if len(matches) == 1:
            found[name] = matches[0]
    return found


def _placeholder_outputs(benchmark: str, prompts: Path, out: Path) -> None:
    """The benchmark's outputs file with an assumed response to every prompt (turn)."""
    from evals import get_benchmark

    module = get_benchmark(benchmark)
    text = " ".join(["word"] * ASSUMED_RESPONSE_WORDS)
    responses: list[Any]
    if hasattr(module, "read_turns"):
        responses = [[text] * len(turns) for turns in module.read_turns(prompts)]
    else:
        responses = [text] * len(module.read_prompts(prompts))
    module.write_outputs(prompts, responses, "budget-placeholder", out)


@dataclass
class Row:
    benchmark: str
    judge: str
    models: int
    exact: int
    estimate: Estimate
    prompts_ready: bool = True
    expected_per_call: int | None = None  # expected completion tokens of one judge reply


def evaluations(config: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any], list[tuple[str, str]]]]:
    """``(row label, benchmark, settings, [(run, method), ...])`` for every benchmark of every experiment."""
    from suite.experiments import MAIN, experiment_benchmarks, experiment_names, runs

    by_experiment: dict[str, list[tuple[str, str]]] = {}
    for run in runs(config).values():
        by_experiment.setdefault(run.experiment, []).extend((run.name, method) for method in run.methods)
    return [
        (benchmark if experiment == MAIN else f"{experiment}/{benchmark}", benchmark, block, by_experiment[experiment])
        for experiment in experiment_names(config)
        for benchmark, block in experiment_benchmarks(config, experiment).items()
    ]


def plan_run(config: Mapping[str, Any], results: Path) -> list[Row]:
    """One row per benchmark of each experiment: its judge calls over every (run, method) of the config."""
    from evals import get_benchmark

    cache_path = results / DEFAULT_CACHE
    rows = []
    for label, benchmark, block, models_of in evaluations(config):
        module = get_benchmark(benchmark)
        options = block.get("options") or {}
        # the top-level judge with the benchmark's overrides, as workflow/rules/eval.smk passes it
        judge_config = {**(config.get("judge") or {"backend": "offline"}), **block.get("judge", {})}
        if getattr(module, "NEEDS_GENERATION", True) is False:
            rows.append(Row(label, "none", 0, 0, Estimate(notes=[f"{label}: no judge"])))
            continue
        chosen = grader_config(benchmark, judge_config, options)
        total, exact, models = Estimate(paid=is_paid(chosen)), 0, 0
        prompts = dataset_file(config, results, block["prompts"])
        assets = asset_files(benchmark, results, block.get("assets") or {})
        lacking = [str(path) for path in assets.values() if not path.is_file()]
        with tempfile.TemporaryDirectory() as tmp:
            placeholder = Path(tmp) / f"{benchmark}.json"
            for run, method in models_of:
                models += 1
                outputs = results / "generations" / run / method / f"{benchmark}.json"
                if outputs.is_file():
                    exact += 1
                elif prompts.is_file():
                    if not placeholder.exists():
                        _placeholder_outputs(benchmark, prompts, placeholder)
                    outputs = placeholder
                else:
                    continue
                if lacking:
                    continue
                found, _ = step_estimate(benchmark, judge_config, outputs, prompts, cache_path, options, assets)
                total.add(found)
        if lacking:
            _unknown(total, f"{label}: {', '.join(lacking)} not fetched yet: run `snakemake {lacking[0]}` first")
        elif not prompts.is_file() and exact < models:
            _unknown(total, f"{label}: {prompts} is not prepared yet: run `snakemake {prompts}` first")
        elif exact < models:
            total.notes.append(
                f"{label}: {models - exact} of {models} models have no outputs yet: "
                f"assumed {ASSUMED_RESPONSE_WORDS}-word responses"
            )
        name = judge_name(chosen) if chosen.get("backend") != "hf" else f"hf:{chosen.get('model')}"
        per_call = expected_output_tokens(benchmark, chosen, options)
        rows.append(Row(label, name, models, exact, total, prompts.is_file() and not lacking, per_call))
    return rows


def _unknown(total: Estimate, note: str) -> None:
    """Inputs are missing: a paid judge's cost is unknown, a free one's still zero."""
    if total.paid:
        total.unpriced(note)
    else:
        total.notes.append(note)


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


TABLE_HEADER = (
    "benchmark",
    "judge",
    "outputs",
    "calls",
    "cached",
    "to call",
    "prompt tok",
    "tok/reply",
    "compl tok",
    "worst compl tok",
    "USD expected",
    "USD worst",
)


def _cells(e: Estimate) -> tuple[str, ...]:
    return tuple(str(n) for n in (e.calls, e.cached, e.to_call, e.input_tokens))


def _outputs(e: Estimate) -> tuple[str, ...]:
    return str(e.output_tokens), str(e.worst_output_tokens), _money(e.cost_usd), _money(e.worst_cost_usd)


def format_table(rows: Sequence[Row], settings: Mapping[str, Any]) -> str:
    """The run's judge calls per benchmark with expected and worst-case completion tokens and cost."""
    lines = [TABLE_HEADER]
    total = Estimate()
    for row in rows:
        e = row.estimate
        total.add(e)
        missing = "" if row.exact == row.models else " (estimated)" if row.prompts_ready else " (unknown)"
        outputs = f"{row.exact}/{row.models}{missing}" if row.models else "-"
        per_call = "-" if not row.models else "max" if row.expected_per_call is None else str(row.expected_per_call)
        lines.append((row.benchmark, row.judge, outputs, *_cells(e), per_call, *_outputs(e)))
    lines.append(("TOTAL", "", "", *_cells(total), "", *_outputs(total)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADER))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    budget = settings.get("max_budget_usd")
    text.append("")
    text.append(
        f"judge.max_budget_usd: {'not set' if budget is None else f'${budget:.2f}'} "
        "(per evaluate step, compared with the expected cost)"
    )
    text.append(f"judge.confirm: {bool(settings.get('confirm'))}; confirm a spend with {CONFIRM_ENV}=1")
    text += [f"note: {n}" for row in rows for n in row.estimate.notes]
    return "\n".join(text)


def run_total(rows: Sequence[Row]) -> Estimate:
    total = Estimate()
    for row in rows:
        total.add(row.estimate)
    return total
