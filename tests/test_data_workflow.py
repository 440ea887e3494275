"""The data stage in the real workflow: editing a source file reruns exactly what depends on it, and the
prepare step's manifest (with its skip counts) is written and printed in the rule's log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from suite.io import read_json
from tests.workflow_helpers import clean_checkout, job_counts, snakemake

SMOKE = "workflow/resources/smoke"
TARGETS = (
    "results/models/tokenizer",  # trained on ultrachat, ultrafeedback, hh and alpaca_eval
    "results/data/hh_test.jsonl",
    "results/data/assets/mt_bench/judge_prompts.jsonl",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = clean_checkout(tmp_path_factory.mktemp("data-dag"))
    run = snakemake(work, *TARGETS, "--cores", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return work


def scheduled(work: Path) -> tuple[dict[str, int], list[str]]:
    """What a dry run of the targets would run: jobs per rule, and the files its data jobs would write (--out)."""
    run = snakemake(work, *TARGETS, "-n", "--printshellcmds")
    assert run.returncode == 0, run.stderr
    if "Nothing to be done" in run.stdout:
        return {}, []
    counts = job_counts(run.stdout)
    counts.pop("total")
    return counts, re.findall(r"--out (results/data/[^\s']+)", run.stdout)  # an asset's ARGS is quoted


def edit_and_expect(work: Path, name: str, jobs: dict[str, int], prepared: list[str]) -> None:
    """Edit a source file (one blank line more): a dry run schedules exactly ``jobs``; then bring all up to date."""
    path = work / SMOKE / name
    path.write_text(path.read_text() + "\n")
    assert scheduled(work) == (jobs, prepared), name
    run = snakemake(work, *TARGETS, "--cores", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert scheduled(work) == ({}, [])


def test_editing_a_source_file_reruns_exactly_what_depends_on_it(built: Path) -> None:
    assert scheduled(built) == ({}, [])
    edit_and_expect(built, "hh_test_smoke.jsonl", {"prepare_data": 1}, ["results/data/hh_test.jsonl"])
    edit_and_expect(
        built, "ultrachat_smoke.jsonl", {"prepare_data": 1, "tokenizer": 1}, ["results/data/ultrachat.jsonl"]
    )
    edit_and_expect(
        built, "alpaca_eval_smoke.json", {"prepare_data_json": 1, "tokenizer": 1}, ["results/data/alpaca_eval.json"]
    )
    asset = "results/data/assets/mt_bench/judge_prompts.jsonl"
    edit_and_expect(built, "mt_bench_smoke_judge_prompts.jsonl", {"benchmark_asset": 1}, [asset])


def test_the_manifest_is_a_rule_output_and_its_counts_are_in_the_log(built: Path) -> None:
    manifest = read_json(built / "results/data/hh.manifest.json")
    assert manifest["on_invalid"] == "skip"
    assert (manifest["read"], manifest["kept"], sum(manifest["skipped"].values())) == (85, 83, 2)
    log = (built / "results/logs/prepare_data/hh.log").read_text()
    assert "hh: read 85, kept 83" in log and "skipped (on_invalid: skip)" in log
    for example in manifest["examples"]:
        assert example in log
    assert read_json(built / "results/data/alpaca_eval.manifest.json")["kept"] == 24  # the JSON-list dataset too


def test_paper_mistral_instruct_trains_on_its_published_on_policy_set(tmp_path: Path) -> None:
    work = clean_checkout(tmp_path)
    run = snakemake(work, "-n", "--configfile", "workflow/config/paper.yaml", "--printshellcmds")
    assert run.returncode == 0, run.stderr
    data = set(
        re.findall(
            r"-m pipeline\.train --method \S+ .*?--data (\S+) .*?--out results/train/mistral-instruct/", run.stdout
        )
    )
    assert data == {"results/data/mistral_instruct_ultrafeedback.jsonl"}
    prepare = re.search(
        r"pipeline\.data preference --source '(\{[^']*\})'.*--out results/data/mistral_instruct_", run.stdout
    )
    assert prepare and json.loads(prepare.group(1))["hub"]["id"] == "princeton-nlp/mistral-instruct-ultrafeedback"
