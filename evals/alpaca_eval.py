"""AlpacaEval 2, evaluated with alpaca_eval's own parts and any judge backend.

What comes from the installed alpaca_eval package, read at run time: the
``weighted_alpaca_eval_gpt4_turbo`` annotator config (prompt template,
decoding, parser and its arguments), the template rendering
(``utils.make_prompts``, ``utils.prompt_to_chatml``), the seeded output-order
swap (``processors.RandomSwitchTwoColumnsProcessor``, seed 0, undone by
``3 - preference`` as alpaca_eval's pairwise annotator does), the log-prob
parser and the metrics (``get_winrate``, ``get_length_controlled_winrate``).
What is ours: pairing outputs with the reference, sending the requests through
a :class:`~evals.judges.Judge` (cached, retried, or the offline stand-in), and
refusing to report a length-controlled win rate unless it can be the official
one.

Preferences follow alpaca_eval: 1 = reference (``output_1``) wins,
2 = model (``output_2``) wins, 1.5 = tie, values in between from log-probs.

Completeness (:mod:`evals.results`): a judge reply that does not parse into
a preference is asked again (:data:`REPLY_ATTEMPTS` in all, never cached),
then counted missing (``judge reply unparsed``); a reference instruction
without a model output counts as ``no model output``. Either is an error
unless its option allows it: ``allow_partial`` for unparsed replies,
``allow_missing`` for absent outputs (alpaca_eval itself scores whatever
outputs there are, e.g. a leaderboard model with 803 of the 805). The LC win
rate is still computed over the outputs present when the eval set is the
official one, as alpaca_eval does.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from evals.conversation import check_options, usage
from evals.judges import AskPolicy, Judge, JudgeReply, JudgeRequest, complete_all, make_judge
from evals.records import numbered, read_records, require
from evals.results import NO_OUTPUT, UNPARSED, completeness, require_complete
from suite.io import atomic_path, read_json, write_json


@functools.cache
def upstream() -> SimpleNamespace:
    """alpaca_eval's modules, imported on first use: a generation job reads prompts and writes outputs through
    this module without judging, and importing alpaca_eval costs about 2 s of every such process."""
    with warnings.catch_warnings():  # alpaca_eval imports pkg_resources, which warns on every import
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        from alpaca_eval import completion_parsers, constants, metrics, utils
        from alpaca_eval.processors import RandomSwitchTwoColumnsProcessor
    return SimpleNamespace(
        completion_parsers=completion_parsers,
        constants=constants,
        metrics=metrics,
        utils=utils,
        RandomSwitchTwoColumnsProcessor=RandomSwitchTwoColumnsProcessor,
    )


log = logging.getLogger(__name__)

NAME = "alpaca_eval"
COLUMNS = {"lc": "AlpacaEval2 LC", "win_rate": "AlpacaEval2 WR"}
ERRORS = {"lc": "lc_standard_error", "win_rate": "standard_error"}  # result key of each column's standard error

ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
ANNOTATION_SEED = 0  # alpaca_eval's PairwiseAnnotator default, passed on to its order-swap processor
SWITCH_COLUMN = "is_switched_outputs"
GLM_NAME = "length_controlled_v1"
HUB_REPO = "tatsu-lab/alpaca_eval"
OFFICIAL_FILE = "alpaca_eval_gpt4_baseline.json"
GAMED_FILE = "df_gamed.csv"
OFFICIAL_SIZE = 805
OPTIONS: dict[str, Any] = {"allow_partial": False, "allow_missing": False}
REPLY_ATTEMPTS = 3  # asks per pair before an unparsed reply counts as missing
EXPECTED_JUDGE_OUTPUT_TOKENS = 1  # the annotator asks for one token (max_tokens 1) and reads its log-probs
OUTPUTS = "an alpaca_eval output record (instruction, output, generator)"


# --------------------------------------------------------------------------- prompts and outputs


def read_prompts(path: str | Path) -> list[list[dict[str, str]]]:
    """One single-turn conversation per AlpacaEval instruction."""
    return [[{"role": "user", "content": record["instruction"]}] for record in read_outputs(path)]


def read_outputs(path: str | Path) -> list[dict[str, Any]]:
    """alpaca_eval output records (model outputs or the reference), each checked; instructions unique."""
    return check_outputs(read_records(path), str(path))


def check_outputs(records: Sequence[Mapping[str, Any]], origin: str) -> list[dict[str, Any]]:
    """The records, checked to be alpaca_eval outputs with unique instructions (alpaca_eval joins on them)."""
    seen: dict[str, int] = {}
    for where, record in numbered(list(records), origin):
        instruction = require(record, "instruction", where, OUTPUTS)
        require(record, "output", where, OUTPUTS)
        require(record, "generator", where, OUTPUTS)
        if instruction in seen:
            raise where.error("instruction", f"repeats record {seen[instruction]}'s instruction")
        seen[instruction] = where.number
    return [dict(r) for r in records]


def write_outputs(prompts_path: str | Path, responses: Sequence[str], generator: str, out: str | Path) -> None:
    """alpaca_eval's model-outputs format: a JSON list of {instruction, output, generator, dataset}."""
    records = read_json(prompts_path)
    if len(records) != len(responses):
        raise ValueError(f"{len(responses)} responses for {len(records)} prompts in {prompts_path}")
    write_json(
        out,
        [
            {
                "instruction": r["instruction"],
                "output": text,
                "generator": generator,
                "dataset": r.get("dataset"),
            }
            for r, text in zip(records, responses, strict=True)
        ],
    )


# --------------------------------------------------------------------------- the annotator


@dataclass(frozen=True)
class Annotator:
    """The parts of an alpaca_eval annotator config this module uses."""

    name: str
    template_text: str
    template_id: str
    decoding: dict[str, Any]
    parser_kwargs: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        """The identifiers the judge answers with: first for ``output_1`` as shown, then for ``output_2``."""
        first = self.parser_kwargs["numerator_token"]
        return [first, *(t for t in self.parser_kwargs["denominator_tokens"] if t != first)]


def load_annotator(name: str = ANNOTATOR) -> Annotator:
    """Read an annotator config shipped with alpaca_eval; only log-prob-parsed configs are supported."""
    config = upstream().utils.load_configs(name, relative_to=upstream().constants.EVALUATORS_CONFIG_DIR)[name]
    if config["fn_completion_parser"] != "logprob_parser":
        raise ValueError(f"annotator {name} uses {config['fn_completion_parser']}, only logprob_parser is supported")
    template_text = (upstream().constants.EVALUATORS_CONFIG_DIR / config["prompt_template"]).read_text()
    digest = hashlib.sha256(template_text.encode()).hexdigest()[:12]
    kwargs = config["completions_kwargs"]
    return Annotator(
        name=name,
        template_text=template_text,
        template_id=f"{Path(config['prompt_template']).parent.name}@{digest}",
        decoding={k: kwargs[k] for k in ("max_tokens", "temperature", "top_logprobs")},
        parser_kwargs=dict(config["completion_parser_kwargs"]),
    )


def _requests(shown: pd.DataFrame, annotator: Annotator, benchmark: str) -> list[JudgeRequest]:
    """Render each shown pair with alpaca_eval's template and chat-ML conversion."""
    prompts, _ = upstream().utils.make_prompts(shown, template=annotator.template_text, batch_size=1)
    return [
        JudgeRequest(
            messages=tuple(upstream().utils.prompt_to_chatml(prompt.strip())),
            max_tokens=annotator.decoding["max_tokens"],
            temperature=annotator.decoding["temperature"],
            top_logprobs=annotator.decoding["top_logprobs"],
            template=annotator.template_id,
            payload={
                "task": "pairwise_logprob",
                "labels": annotator.labels,
                "instruction": row.instruction,
                "output_1": row.output_1,
                "output_2": row.output_2,
            },
            item=f"{benchmark} instruction {item_id(row.index, row.instruction)}",
        )
        for prompt, row in zip(prompts, shown.itertuples(), strict=True)
    ]


def item_id(index: int, instruction: str) -> str:
    """How an instruction is named in messages: its position in the eval set and its start."""
    return f"#{index} {instruction[:40]!r}"


def parse_preference(reply: JudgeReply, annotator: Annotator) -> float:
    """alpaca_eval's logprob_parser on a reply; NaN (as alpaca_eval) when it cannot be parsed."""
    completion = {
        "logprobs": {
            "content": [
                {"top_logprobs": [{"token": t, "logprob": lp} for t, lp in position.items()]}
                for position in reply.top_logprobs or []
            ]
        }
    }
    try:
        parsed = upstream().completion_parsers.logprob_parser(completion, **annotator.parser_kwargs)
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        log.warning("cannot parse judge reply %r: %s", reply.text, exc)
        return math.nan
    return float(parsed[0]) if len(parsed) == 1 else math.nan


def _flip_preference(df: pd.DataFrame) -> pd.DataFrame:
    """Undo the order swap on a preference, as alpaca_eval's pairwise annotator does (3 - x)."""
    if df.empty or "preference" not in df.columns:
        return df
    return df.assign(preference=3 - df["preference"])


def annotate(pairs: pd.DataFrame, judge: Judge, annotator: Annotator, benchmark: str = NAME) -> pd.DataFrame:
    """Judge every pair, showing the two outputs in alpaca_eval's seeded random order.

    Identical outputs get 1.5 without a judge call, as in alpaca_eval.
    ``is_switched_outputs`` records which pairs the judge saw swapped. A
    reply that does not parse is asked again (:data:`REPLY_ATTEMPTS`); one
    that never parses leaves the preference NaN.
    """
    swap = upstream().RandomSwitchTwoColumnsProcessor(
        two_columns_to_switch=["output_1", "output_2"],
        fn_replace_if_switch=_flip_preference,
        random_seed_columns=["instruction"],
        _switch_column=SWITCH_COLUMN,
        seed=ANNOTATION_SEED,
    )
    shown = swap.preprocess(pairs)
    to_judge = shown[shown["output_1"] != shown["output_2"]]
    policy = AskPolicy(accept=lambda reply: not math.isnan(parse_preference(reply, annotator)), attempts=REPLY_ATTEMPTS)
    exchanges = complete_all(judge, _requests(to_judge, annotator, benchmark), desc=f"{benchmark} judge", policy=policy)
    replies = [e.reply for e in exchanges]
    shown["preference"] = 1.5
    shown.loc[to_judge.index, "preference"] = [
        parse_preference(e.reply, annotator) if e.accepted else math.nan for e in exchanges
    ]
    switched = shown[SWITCH_COLUMN]
    annotated = swap.postprocess(shown)
    annotated[SWITCH_COLUMN] = switched
    annotated["annotator"] = judge.name
    annotated["preference_raw_completion"] = pd.Series([r.raw for r in replies], index=to_judge.index)
    return annotated


# --------------------------------------------------------------------------- pairing and metrics


def pair_outputs(reference: Sequence[Mapping[str, Any]], model_outputs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per model output with its reference answer, matched by instruction, in reference order.

    ``index`` is the instruction's position in the reference (for the
    official set, LC's difficulty key). A model output for an instruction
    the reference lacks is an error; reference instructions without a model
    output are left out (:func:`unanswered` lists them).
    """
    outputs = {o["instruction"]: o for o in check_outputs(model_outputs, "model outputs")}
    known = {r["instruction"] for r in check_outputs(reference, "reference outputs")}
    foreign = [i for i in outputs if i not in known]
    if foreign:
        raise ValueError(f"{len(foreign)} model outputs have no reference output, e.g. {foreign[0][:80]!r}")
    rows = [
        {
            "instruction": ref["instruction"],
            "output_1": ref["output"],
            "generator_1": ref["generator"],
            "output_2": outputs[ref["instruction"]]["output"],
            "generator_2": outputs[ref["instruction"]]["generator"],
            "dataset": outputs[ref["instruction"]].get("dataset") or ref.get("dataset"),
            "index": position,
        }
        for position, ref in enumerate(reference)
        if ref["instruction"] in outputs
    ]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


PAIR_COLUMNS = ["instruction", "output_1", "generator_1", "output_2", "generator_2", "dataset", "index"]


def unanswered(reference: Sequence[Mapping[str, Any]], pairs: pd.DataFrame) -> list[str]:
    """The reference instructions without a model output, named as in messages."""
    answered = set(pairs["index"])
    return [item_id(i, r["instruction"]) for i, r in enumerate(reference) if i not in answered]


def judge_requests(
    outputs_path: str | Path, reference_path: str | Path, options: Mapping[str, Any] | None = None
) -> list[JudgeRequest]:
    """The judge calls an evaluation makes (for the cost estimate of :mod:`evals.budget`)."""
    from evals.budget import annotation_requests

    return annotation_requests(pair_outputs(read_outputs(reference_path), read_outputs(outputs_path)))


def _cached_hub_file(filename: str) -> Path | None:
    """Path of an alpaca_eval hub dataset file if it is already in the HF cache (never downloads)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        HUB_REPO, filename, cache_dir=upstream().constants.DEFAULT_CACHE_DIR, repo_type="dataset"
    )
    return Path(found) if isinstance(found, str) else None


def lc_unavailable_reason(instructions: Sequence[str]) -> str | None:
    """Why the length-controlled win rate cannot be the official one, or None when it can be computed."""
    fetch = "fetch it with `python -m evals.alpaca_eval --fetch-lc-assets`"
    if len(instructions) != OFFICIAL_SIZE:
        return f"LC needs the official {OFFICIAL_SIZE}-instruction set; this eval set has {len(instructions)}"
    official = _cached_hub_file(OFFICIAL_FILE)
    if official is None:
        return f"{HUB_REPO}/{OFFICIAL_FILE} is not in the HF cache, so the eval set cannot be checked; {fetch}"
    official_instructions = [record["instruction"] for record in read_json(official)]
    if list(instructions) != official_instructions:
        return "the eval set's instructions (in order) differ from the official AlpacaEval set"
    if _cached_hub_file(GAMED_FILE) is None:
        return f"{HUB_REPO}/{GAMED_FILE} (LC's instruction difficulties) is not in the HF cache; {fetch}"
    return None


def fetch_lc_assets() -> list[Path]:
    """Download what LC needs into the HF cache (a login-node step on the cluster)."""
    from huggingface_hub import hf_hub_download

    return [
        Path(hf_hub_download(HUB_REPO, f, repo_type="dataset", cache_dir=upstream().constants.DEFAULT_CACHE_DIR))
        for f in (OFFICIAL_FILE, GAMED_FILE)
    ]


def _number(value: Any) -> float | int | None:
    """A JSON-safe number: numpy scalars unwrapped, NaN as null."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def lc_metrics(annotations: pd.DataFrame, lc_reason: str | None) -> dict[str, Any]:
    """alpaca_eval's LC win rate over the scored pairs when it can be the official one, else None with the reason."""
    result = {"lc": None, "lc_standard_error": None, "lc_unavailable_reason": lc_reason}
    if lc_reason is None:
        valid = annotations[annotations["preference"].notna()]
        lc = upstream().metrics.get_length_controlled_winrate(valid, glm_name=GLM_NAME, save_weights_dir=None)
        result.update(lc=_number(lc["length_controlled_winrate"]), lc_standard_error=_number(lc["lc_standard_error"]))
    return result


def evaluate(
    model_outputs: Sequence[Mapping[str, Any]],
    reference: Sequence[Mapping[str, Any]],
    judge: Judge,
    annotator: Annotator | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Judge model outputs against the reference; returns the result record and the annotations.

    Absent outputs are refused before any judge call unless ``allow_missing``.
    """
    opts = check_options(options or {}, OPTIONS, NAME)
    annotator = annotator or load_annotator()
    pairs = pair_outputs(reference, model_outputs)
    no_output = unanswered(reference, pairs)
    require_complete(NAME, len(reference), {NO_OUTPUT: no_output}, opts["allow_missing"], "allow_missing")
    annotated = annotate(pairs, judge, annotator)
    lc_reason = lc_unavailable_reason([r["instruction"] for r in reference])
    result = summarise(pairs, annotated, judge, annotator, NAME, len(reference), no_output, opts["allow_partial"])
    return {**result, **lc_metrics(annotated, lc_reason), "options": opts}, annotated


def unparsed(annotated: pd.DataFrame) -> list[str]:
    """The judged pairs whose preference could not be parsed, named as in messages."""
    lost = annotated[annotated["preference"].isna()]
    return [item_id(i, text) for i, text in zip(lost["index"], lost["instruction"], strict=True)]


def summarise(
    pairs: pd.DataFrame,
    annotated: pd.DataFrame,
    judge: Judge,
    annotator: Annotator,
    benchmark: str,
    n_expected: int,
    no_output: Sequence[str],
    allow_partial: bool,
) -> dict[str, Any]:
    """The result record of annotated pairs: win rate, completeness, lengths and the judge's identity and usage.

    Unparsed replies are refused (:class:`~evals.results.IncompleteResultError`) unless ``allow_partial``.
    """
    missing = {NO_OUTPUT: list(no_output), UNPARSED: unparsed(annotated)}
    require_complete(benchmark, n_expected, {UNPARSED: missing[UNPARSED]}, allow_partial)
    valid = annotated[annotated["preference"].notna()].copy()
    if valid.empty:
        raise ValueError(f"{benchmark}: there is nothing to score (no pair has a preference)")
    n_requests = int(annotated["preference_raw_completion"].notna().sum())
    return {
        "benchmark": benchmark,
        "generator": str(pairs["generator_2"].iloc[0]),
        "reference_generator": str(pairs["generator_1"].iloc[0]),
        **completeness(n_expected, missing),
        "n_unparsed": len(missing[UNPARSED]),
        **{k: _number(v) for k, v in upstream().metrics.get_winrate(valid).items()},
        "avg_length": _number(pairs["output_2"].str.len().mean()),
        "judge": judge.name,
        "judge_is_offline": judge.is_offline,
        "annotator_config": annotator.name,
        "template": annotator.template_id,
        "decoding": annotator.decoding,
        **usage(judge, n_requests),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- entry point


def write_annotations(path: str | Path, annotations: pd.DataFrame) -> None:
    """alpaca_eval's annotations.json layout (a list of records), written atomically."""
    with atomic_path(path) as tmp:
        annotations.to_json(tmp, orient="records", indent=2, force_ascii=False)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.alpaca_eval", description=__doc__)
    parser.add_argument("--outputs", type=Path, help="model outputs (alpaca_eval format)")
    parser.add_argument("--reference", type=Path, help="reference outputs (alpaca_eval format)")
    parser.add_argument("--judge", help='judge config as JSON, e.g. \'{"backend": "offline"}\'')
    parser.add_argument("--cache", type=Path, help="sqlite file of judge replies, shared between runs")
    parser.add_argument("--options", default="{}", help="options as JSON: allow_partial, allow_missing (OPTIONS)")
    parser.add_argument("--out", type=Path, help="result JSON")
    parser.add_argument("--annotations-out", type=Path, help="per-instruction annotations JSON")
    parser.add_argument("--fetch-lc-assets", action="store_true", help="download LC's hub files and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.fetch_lc_assets:
        for path in fetch_lc_assets():
            log.info("cached %s", path)
        return
    missing = [f"--{k}" for k in ("outputs", "reference", "judge", "out") if getattr(args, k) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")

    options = check_options(json.loads(args.options), OPTIONS, NAME)
    outputs, reference = read_outputs(args.outputs), read_outputs(args.reference)
    judge = make_judge(json.loads(args.judge), args.cache)
    result, annotations = evaluate(outputs, reference, judge, options=options)
    log.info("judge %s: %d calls, %d cache hits", judge.name, result["judge_calls"], result["cache_hits"])
    if args.annotations_out is not None:
        write_annotations(args.annotations_out, annotations)
    write_json(args.out, result)


if __name__ == "__main__":
    main()


# --------------------------------------------------------------------------- per-item outcomes (pipeline/tables.py)


def item_scores(annotations_path: str | Path) -> pd.Series:
    """Each instruction's outcome in %, indexed by its position in the eval set (``index``).

    The outcome is ``(preference - 1) * 100``: 100 a model win, 0 a reference
    win, 50 a tie, values between from the judge's log-probs; a legacy
    preference 0 counts as a tie and unparsed (NaN) rows are left out, as
    alpaca_eval's ``get_winrate`` does, so the mean is the reported win rate.
    """
    from suite.annotations import annotation_records

    records = annotation_records(annotations_path, ["index", "preference"])
    preference = pd.Series([r["preference"] for r in records], index=[r["index"] for r in records], dtype=float)
    preference = preference.replace({0.0: 1.5})
    return ((preference[preference.between(1, 2)] - 1) * 100).rename_axis("item")
