"""The DAG itself: the paper-scale dry run, the Slurm profile, bad data, and the CPU-scale run end to end."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from suite.methods import method_names
from suite.provenance import identity
from tests import browser
from tests.workflow_helpers import REPO, clean_checkout, job_counts, snakemake


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_checkout(tmp_path_factory.mktemp("clone"))


def test_paper_dag_has_every_stage(checkout: Path) -> None:
    run = snakemake(checkout, "-n", "--configfile", "workflow/config/paper.yaml")
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    paper = yaml.safe_load((REPO / "workflow/config/paper.yaml").read_text())
    n_variants, n_methods = len(paper["variants"]), len(paper["methods"])
    n_generated = sum("prompts" in b for b in paper["benchmarks"].values())  # capability reads the model only
    n_base = sum("sft" in v for v in paper["variants"].values())
    n_hh = len(paper["experiments"]["hh"]["variants"])  # the HH branch trains every method from these
    n_runs = n_variants + n_hh
    assert n_variants == 4 and n_base == 2 and n_hh == 2
    assert counts["init_hub_model"] == n_variants
    assert counts["sft"] == n_base
    own_rules = {"tis_dpo": "train_tis_dpo", "rto": "train_rto"}  # methods trained by a DAG of their own
    generic = [m for m in paper["methods"] if m not in own_rules]
    assert counts["train"] == n_runs * len(generic)
    for method, rule in own_rules.items():
        assert counts.get(rule, 0) == n_runs * (method in paper["methods"]), rule
    if "tis_dpo" in paper["methods"]:  # the contrastive pair: the DAG's DPO run, reused, and a reverse one
        assert counts["train_dpo_reverse"] == counts["tis_weights"] == n_runs
    assert counts["generate"] == n_variants * n_methods  # one job per model answers every benchmark
    assert counts["evaluate"] == n_variants * n_methods  # ... and one judges them all
    assert counts["generate_hh"] == counts["evaluate_hh"] == n_hh * n_methods
    assert n_generated == 4
    assert counts.get("capability", 0) == n_variants * n_methods * ("capability" in paper["benchmarks"])
    assert counts["aggregate"] == counts["plots"] == 2  # main and hh
    assert counts["claims"] == 1  # one claims table over both experiments
    assert counts["reference_logps"] == n_runs, "one seed at paper scale: one reference per run"
    assert "tiny_model" not in counts and "tokenizer" not in counts
    assert set(paper["methods"]) <= set(method_names())


def test_paper_dry_run_shows_the_hh_branch(checkout: Path) -> None:
    """Every method trains on HH from each Base variant's SFT model; harmless and helpful scores; its own table."""
    run = snakemake(checkout, "-n", "--configfile", "workflow/config/paper.yaml", "--printshellcmds")
    assert run.returncode == 0, run.stderr
    paper = yaml.safe_load((REPO / "workflow/config/paper.yaml").read_text())
    for variant in paper["experiments"]["hh"]["variants"]:
        trains = re.findall(
            rf"-m pipeline\.train --method (\S+) .*?--model (\S+) --data (\S+) .*?--out results/train/hh-{variant}/",
            run.stdout,
        )
        assert {m for m, _, _ in trains} | {"tis_dpo", "rto"} == set(paper["methods"]) | {"dpo"}, trains
        assert {(model, data) for _, model, data in trains} == {
            (f"results/models/{variant}/sft", "results/data/hh.jsonl")
        }
        for method in paper["methods"]:
            steps = re.search(rf"pipeline\.evaluate (.*results/eval/hh-{variant}/{method}/.*)", run.stdout)
            assert steps, (variant, method)
            assert "evals.harmless" in steps.group(1) and "evals.hh_helpful" in steps.group(1)
            assert "evals.alpaca_eval" not in steps.group(1)
    assert "results/tables/hh.md" in run.stdout and "results/tables/main.md" in run.stdout


def test_slurm_profile_loads_and_requests_gpus(checkout: Path) -> None:
    profile = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["configfile"] == "workflow/config/paper.yaml"
    for rule in ("sft", "train", "reference_logps", "generate"):
        assert profile["set-resources"][rule]["gpu"] >= 1, rule
    text = (REPO / "slurm/config.yaml").read_text()
    assert not re.search(r"slurm_(account|partition):\s*['\"]?[A-Za-z0-9_-]+['\"]?\s*$", text, re.M), (
        "site values must come from the environment"
    )

    run = snakemake(checkout, "-n", "--profile", "slurm", "--printshellcmds")
    assert run.returncode == 0, run.stderr
    assert job_counts(run.stdout)["train"] >= 4
    train_gpus = profile["set-resources"]["train"]["gpu"]
    launches = re.findall(
        r"accelerate launch --config_file (\S+) --num_processes (\d+) --mixed_precision bf16 -m pipeline\.train",
        run.stdout,
    )
    assert launches, "no training command in the dry run"
    assert {int(n) for _, n in launches} == {train_gpus}
    assert {cfg for cfg, _ in launches} == {"workflow/accelerate/fsdp.yaml"}


def test_malformed_data_stops_the_dag_at_preparation(tmp_path: Path) -> None:
    work = clean_checkout(tmp_path)
    path = work / "workflow/resources/smoke/ultrafeedback_smoke.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[6])
    broken["chosen"][1]["content"] = "   "
    lines[6] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")

    run = snakemake(work, "--cores", "2")
    assert run.returncode != 0
    message = run.stdout + run.stderr
    assert "ultrafeedback_smoke.jsonl: record 7: field 'chosen[1].content'" in message
    assert not (work / "results/data/ultrafeedback.jsonl").exists()
    assert not (work / "results/models").exists(), "a model stage started after bad data"


@pytest.fixture(scope="module")
def cpu_run(checkout: Path) -> Path:
    """The default run (no arguments: the embedded CPU-scale config) in the clean clone, once for the module."""
    run = snakemake(checkout)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return checkout


@pytest.mark.slow
def test_cpu_dag_runs_end_to_end_from_a_clean_clone(cpu_run: Path) -> None:
    checkout = cpu_run
    config = yaml.safe_load((REPO / "workflow/config/config.yaml").read_text())
    table = pd.read_csv(checkout / "results/tables/main.csv")
    assert len(table) == len(config["variants"]) * len(config["methods"])
    assert set(table["variant"]) == set(config["variants"])
    wr = table["AlpacaEval2 WR"]
    assert wr.between(0, 100).all()
    assert table["AlpacaEval2 LC"].isna().all(), "LC must not look official off the 805-instruction set"
    markdown = (checkout / "results/tables/main.md").read_text()
    assert "offline" in markdown and "not computed" in markdown

    # Base and Instruct stand-ins really differ, and trained models differ from their start.
    for variant in config["variants"]:
        history = json.loads((checkout / f"results/train/{variant}/dpo/log_history.json").read_text())
        losses = [h["loss"] for h in history if "loss" in h]
        assert losses and all(loss == loss for loss in losses)
    # The HH branch: its own table, its runs trained on HH from the Base variant's SFT model.
    branch = config["experiments"]["hh"]
    hh = pd.read_csv(checkout / "results/tables/hh.csv")
    assert set(zip(hh["variant"], hh["method"], hh["seed"], strict=True)) == {
        (v, m, s) for v in branch["variants"] for m in branch["methods"] for s in branch["seeds"]
    }, "one row per seed"
    assert hh["Harmless %"].between(0, 100).all() and hh["Helpful WR vs chosen"].between(0, 100).all()
    assert (checkout / "results/tables/hh.md").read_text().startswith(f"# {branch['title']}")
    for variant in branch["variants"]:
        reference = torch.load(checkout / f"results/reference/hh-{variant}/hh.pt", weights_only=True)
        assert reference["provenance"]["model"] == identity(checkout / f"results/models/{variant}/sft")
    assert not list((checkout / "results").rglob("*.tmp")), "a temporary file was left behind"
    check_paper_tables(checkout, config)


def check_paper_tables(checkout: Path, config: dict) -> None:
    """Table 1, the paired comparisons and the claims of the default run."""
    tables = checkout / "results/tables"
    cells = pd.read_csv(tables / "main_table1.csv")
    assert set(cells["setting"]) == set(config["variants"]) and set(cells["method"]) == set(config["methods"])
    published = cells[cells["published"].notna()]
    assert set(published["method"]) == {"dpo", "simpo"} and (published["marks"].str.contains("‡")).all()
    assert (published["diff"] - (published["value"] - published["published"])).abs().max() < 1e-9
    compared = pd.read_csv(tables / "main_comparisons.csv")
    aao = compared[compared["method"] == "aao"]
    assert {"alpaca_eval", "arena_hard", "mt_bench", "harmless", "length/alpaca_eval", "squeezing"} <= set(
        aao["benchmark"]
    )
    defined = aao.dropna(subset=["estimate"])  # a relative length against empty DPO answers is undefined
    assert len(defined) >= len(aao) - 8 and (defined["low"] <= defined["high"]).all()
    hh = pd.read_csv(tables / "hh_comparisons.csv")
    assert set(hh["benchmark"]) >= {"harmless", "hh_helpful"} and (hh["seeds"] == 2).all()
    claims = pd.read_csv(tables / "claims.csv")
    assert set(claims["verdict"]) <= {"supported", "contradicted", "inconclusive"}, "every claim measured"
    for name in ("main_table1", "main_vs_dpo", "main_aao_vs_dpo", "hh_table1", "claims"):
        for suffix in (".md", ".tex", ".html"):
            assert (tables / f"{name}{suffix}").stat().st_size > 0, name + suffix
    history = json.loads((checkout / "results/train/llama-base/aao/log_history.json").read_text())
    assert history[0]["step"] == 0 and "squeeze/top_prob" in history[0] and "squeeze/final" in history[-1]


REPORT_PROBE = """(async () => {
  const found = {};
  for (const [name, entry] of Object.entries(results)) {
    const item = {mime: entry.mime_type, caption: entry.caption.length};
    const data = entry.data_uri.split("base64,")[1];
    if (entry.mime_type === "image/png") {
      const image = new Image();
      image.src = entry.data_uri;
      await image.decode();
      item.width = image.naturalWidth;
    } else if (entry.mime_type === "text/html") {
      const text = new TextDecoder().decode(Uint8Array.from(atob(data), c => c.charCodeAt(0)));
      const page = new DOMParser().parseFromString(text, "text/html");
      item.rows = page.querySelectorAll("table tbody tr").length;
    }
    found[name] = item;
  }
  // Open Table 1 of the main experiment, as a reader would, for the screenshot.
  const sleep = (ms) => new Promise(done => setTimeout(done, ms));
  const link = (text) => [...document.querySelectorAll("a")].find(a => a.innerText.trim() === text);
  link("main").click();
  await sleep(800);
  link("Tables").click();
  await sleep(800);
  const row = [...document.querySelectorAll("tr")].find(r => r.cells[0] && r.cells[0].innerText.trim() === "Table 1");
  row.querySelector("a[iconname=eye]").click();
  await sleep(1500);
  const shown = [...document.querySelectorAll("iframe")].map(f => f.src.split(";")[2]);
  return {found, shown};
})()"""


@pytest.mark.slow
def test_the_report_builds_and_opens_in_a_real_browser(cpu_run: Path, tmp_path: Path) -> None:
    """`snakemake --report` after the default run; Chromium shows every table and image, with no console error."""
    if browser.chromium() is None:
        if os.environ.get("AAO_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed")
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    run = snakemake(cpu_run, "--report", "results/report.html")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    screenshot = tmp_path / "report.png"
    visit = browser.visit(cpu_run / "results/report.html", REPORT_PROBE, screenshot)
    print(f"report screenshot: {screenshot}")
    assert visit.errors == [], visit.errors
    tables = sorted(p.name for p in (cpu_run / "results/tables").glob("*.html"))
    images = sorted(p.name for p in (cpu_run / "results/tables").glob("*.png"))
    assert visit.value["shown"] == ["filename=main_table1.html"], "Table 1 opens in the report's viewer"
    found = {Path(name).name: entry for name, entry in visit.value["found"].items()}  # keyed by path in the report
    assert sorted(n for n, r in found.items() if r["mime"] == "text/html") == tables
    assert sorted(n for n, r in found.items() if r["mime"] == "image/png") == images
    assert all(found[n]["rows"] > 0 for n in tables), "every table has rows"
    assert all(found[n]["width"] > 100 for n in images), "every image decodes"
    assert all(r["caption"] > 100 for r in found.values()), "every result has its caption"
    assert screenshot.stat().st_size > 10_000
