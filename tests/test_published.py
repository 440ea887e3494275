"""Published numbers are data with provenance: a number without a source stops the workflow at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.published import PublishedError, load_published
from tests.workflow_helpers import REPO, clean_checkout, snakemake

PUBLISHED = REPO / "workflow/resources/published.yaml"


def shipped() -> dict[str, Any]:
    return yaml.safe_load(PUBLISHED.read_text())


def test_the_shipped_file_names_a_source_and_model_for_every_number() -> None:
    published = load_published(PUBLISHED)
    assert {(r.setting, r.method) for r in published.results} == {
        (s, m) for s in ("mistral-base", "mistral-instruct", "llama-base", "llama-instruct") for m in ("dpo", "simpo")
    }
    llama = published.result("llama-base", "dpo")
    assert llama is not None and llama.base_model == "meta-llama/Meta-Llama-3-8B"
    assert llama.values == {"alpaca_eval/lc": 18.2, "alpaca_eval/win_rate": 15.5, "arena_hard/win_rate": 15.9}
    assert published.settings["llama-base"].model == "meta-llama/Llama-3.1-8B"
    assert published.unavailable_reason("llama-base", "aao", "arena_hard")
    assert published.unavailable_reason("llama-base", "aao", "harmless") is None, "only Table 1's benchmarks"
    assert {c.id for c in published.claims} >= {"alpaca_eval_up_to", "arena_hard_up_to", "squeezing_eased"}


def broken(edit: Any) -> dict[str, Any]:
    data = shipped()
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["results"][2].pop("source"), r"results\[2\] \(mistral-instruct/dpo\): field 'source' is missing"),
        (lambda d: d["results"][0].update(source="blog"), r"results\[0\] \(mistral-base/dpo\): field 'source': 'blog'"),
        (lambda d: d["results"][1].pop("base_model"), r"results\[1\] \(mistral-base/simpo\): field 'base_model'"),
        (
            lambda d: d["results"][0]["values"].update({"alpaca_eval/lcc": 1.0}),
            r"results\[0\] \(mistral-base/dpo\): field 'values/alpaca_eval/lcc'",
        ),
        (
            lambda d: d["results"][0]["values"].update({"alpaca_eval/lc": "15"}),
            r"results\[0\] \(mistral-base/dpo\): field 'values/alpaca_eval/lc': '15' is not",
        ),
        (lambda d: d["sources"]["simpo-readme-v0.1"].pop("commit"), r"sources/simpo-readme-v0.1: field 'commit'"),
        (lambda d: d["claims"][0].update(kind="vibes"), r"claims\[0\] \(alpaca_eval_every_setting\): field 'kind'"),
        (lambda d: d["claims"][1].pop("value"), r"claims\[1\] \(alpaca_eval_up_to\): field 'value' is missing"),
        (lambda d: d["unavailable"][0].pop("source"), r"unavailable\[0\]: field 'source' is missing"),
        (lambda d: d["unavailable"][0].update(benchmarks=["alpaca"]), r"unavailable\[0\]: field 'benchmarks'"),
        (lambda d: d["results"].append(d["results"][0]), r"results\[8\]: a second entry for mistral-base/dpo"),
    ],
)
def test_a_malformed_entry_names_the_file_entry_and_field(tmp_path: Path, edit: Any, message: str) -> None:
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(broken(edit)))
    with pytest.raises(PublishedError, match=rf"published\.yaml: {message}"):
        load_published(path)


def test_the_workflow_refuses_to_start_on_a_number_without_a_source(tmp_path: Path) -> None:
    work = clean_checkout(tmp_path)
    (work / "workflow/resources/published.yaml").write_text(
        yaml.safe_dump(broken(lambda d: d["results"][4].pop("source")))
    )
    run = snakemake(work, "-n")
    assert run.returncode != 0
    assert "published.yaml: results[4] (llama-base/dpo): field 'source' is missing" in run.stdout + run.stderr
    assert [p.name for p in (work / "results").iterdir()] == ["README.md"], "nothing ran"
