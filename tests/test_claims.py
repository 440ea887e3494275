"""The paper's claims: each verdict flips correctly on constructed intervals, and the claims table reads them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline import claims
from pipeline.claims import CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, SUPPORTED, gain_everywhere, gain_up_to, within
from pipeline.published import load_published
from pipeline.tables import COMPARISON_COLUMNS
from suite.stats import Interval
from tests.workflow_helpers import REPO

PUBLISHED = REPO / "workflow/resources/published.yaml"


def iv(low: float, high: float) -> Interval:
    return Interval((low + high) / 2, low, high, 100)


@pytest.mark.parametrize(
    ("intervals", "expected", "setting"),
    [
        ({"a": iv(1, 3), "b": iv(0.5, 9)}, SUPPORTED, "a"),
        ({"a": iv(1, 3), "b": iv(-0.5, 9)}, INCONCLUSIVE, "a"),
        ({"a": iv(1, 3), "b": iv(-4, -0.1)}, CONTRADICTED, "b"),
    ],
)
def test_gain_everywhere(intervals: dict[str, Interval], expected: str, setting: str) -> None:
    verdict = gain_everywhere(intervals)
    assert verdict.verdict == expected and verdict.setting == setting


def test_gain_everywhere_downwards_mirrors() -> None:
    assert gain_everywhere({"a": iv(-3, -1)}, "lower").verdict == SUPPORTED
    assert gain_everywhere({"a": iv(-3, 1)}, "lower").verdict == INCONCLUSIVE
    assert gain_everywhere({"a": iv(1, 3)}, "lower").verdict == CONTRADICTED


@pytest.mark.parametrize(
    ("largest", "expected"),
    [
        (iv(5, 12), SUPPORTED),  # holds 8.9, excludes 0
        (iv(-1, 12), INCONCLUSIVE),  # holds 8.9 and 0
        (iv(1, 5), CONTRADICTED),  # our largest gain is clearly smaller
        (iv(10, 20), CONTRADICTED),  # clearly larger than reported
    ],
)
def test_gain_up_to_rests_on_the_largest_gain(largest: Interval, expected: str) -> None:
    verdict = gain_up_to({"small": iv(-1, 1), "large": largest}, 8.9)
    assert verdict.verdict == expected and verdict.setting == "large"


@pytest.mark.parametrize(
    ("intervals", "bound", "expected"),
    [
        ({"a": iv(-0.2, 0.3), "b": iv(-0.4, 0.1)}, "both", SUPPORTED),
        ({"a": iv(-0.2, 0.3), "b": iv(0.2, 0.7)}, "both", INCONCLUSIVE),
        ({"a": iv(-0.2, 0.3), "b": iv(-0.9, -0.6)}, "both", CONTRADICTED),
        ({"a": iv(-40, 5)}, "upper", SUPPORTED),  # much shorter is not "markedly longer"
        ({"a": iv(5, 15)}, "upper", INCONCLUSIVE),
        ({"a": iv(12, 20)}, "upper", CONTRADICTED),
    ],
)
def test_within(intervals: dict[str, Interval], bound: str, expected: str) -> None:
    margin = 0.5 if bound == "both" else 10.0
    assert within(intervals, margin, bound).verdict == expected


def comparison(setting: str, benchmark: str, low: float, high: float, method: str = "aao") -> dict:
    return {"setting": setting, "method": method, "control": "dpo", "seeds": 1, "control_seeds": 1,
            "benchmark": benchmark, "metric": "m", "label": "l", "unit": "points", "estimate": (low + high) / 2,
            "low": low, "high": high, "n_items": 50, "unpaired_low": low - 5, "unpaired_high": high + 5}  # fmt: skip


def test_the_claims_table_checks_every_published_claim() -> None:
    main = pd.DataFrame(
        [
            comparison("mistral-base", "alpaca_eval", 2.0, 12.0),
            comparison("llama-base", "alpaca_eval", 1.0, 4.0),
            comparison("llama-base", "alpaca_eval", -9.0, -8.0, method="simpo"),  # not the treatment: ignored
            comparison("mistral-base", "arena_hard", 1.0, 5.0),
            comparison("mistral-base", "mt_bench", -0.1, 0.2),
            comparison("mistral-base", "length/alpaca_eval", 12.0, 30.0),
            comparison("mistral-base", "squeezing", -8.0, -2.0),
        ],
        columns=COMPARISON_COLUMNS,
    )
    table, tidy = claims.claims_table(load_published(PUBLISHED), {"main": main}, "cpu", "dpo", "aao")
    verdicts = dict(zip(tidy["id"], tidy["verdict"], strict=True))
    assert verdicts == {
        "alpaca_eval_every_setting": SUPPORTED,
        "alpaca_eval_up_to": SUPPORTED,  # largest gain (mistral-base, 2 to 12) holds 8.9
        "arena_hard_up_to": CONTRADICTED,  # 1 to 5 excludes 15.0
        "mt_bench_small": SUPPORTED,
        "harmless_improves": NOT_MEASURED,  # no hh experiment's comparisons given
        "length_not_longer": CONTRADICTED,
        "squeezing_eased": SUPPORTED,
    }
    weakest = tidy.set_index("id").loc["alpaca_eval_every_setting"]
    assert weakest["setting"] == "llama-base" and weakest["low"] == 1.0 and weakest["n_settings"] == 2
    markdown = table.to_markdown()
    assert "| AAO beats DPO on AlpacaEval 2 in every setting | +2.50 | [+1.00, +4.00] | supported |" in markdown
    assert "no harmless comparison in experiment hh" in markdown
    assert "CPU scale" in markdown and "princeton-nlp" not in markdown


def test_a_harmless_loss_in_the_hh_experiment_contradicts(tmp_path: Path) -> None:
    hh = pd.DataFrame([comparison("llama-base", "harmless", -30.0, -5.0)], columns=COMPARISON_COLUMNS)
    main = pd.DataFrame(columns=COMPARISON_COLUMNS)
    paths = []
    for name, frame in (("main", main), ("hh", hh)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(f"{name}={tmp_path / f'{name}.csv'}")
    claims.main(["--comparisons", *paths, "--published", str(PUBLISHED), "--scale", "paper",
                 "--prefix", str(tmp_path / "claims")])  # fmt: skip
    tidy = pd.read_csv(tmp_path / "claims.csv").set_index("id")
    assert tidy.loc["harmless_improves", "verdict"] == CONTRADICTED
    assert tidy.loc["alpaca_eval_every_setting", "verdict"] == NOT_MEASURED
    assert {p.suffix for p in tmp_path.glob("claims.*")} == {".md", ".tex", ".html", ".csv"}
