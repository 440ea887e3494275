"""The paper's tables from result files with known numbers: cells, published numbers, differences, every format."""

from __future__ import annotations

import html.parser
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from evals.conversation import answer_record
from pipeline import aggregate, plots
from pipeline.published import load_published
from pipeline.tables import Context, Table, latex, load_scores, table_one
from suite.history_keys import FINAL, KEY
from suite.io import write_json
from suite.models import load_tokenizer
from tests.workflow_helpers import REPO

PUBLISHED = REPO / "workflow/resources/published.yaml"
VARIANTS = ("mistral-base", "llama-base")
METHODS = ("dpo", "simpo", "aao")
SEEDS = (1, 2)
N = 10
# AlpacaEval 2 LC per (variant, method, seed): the cell is the seeds' mean.
LC = {
    ("mistral-base", "dpo"): (14.0, 16.0),
    ("mistral-base", "simpo"): (22.0, 22.0),
    ("mistral-base", "aao"): (20.0, 24.0),
    ("llama-base", "dpo"): (18.0, 19.0),
    ("llama-base", "simpo"): (25.0, 27.0),
    ("llama-base", "aao"): (21.0, 21.0),
}
BASE_PREFERENCE = [1.1, 1.3, 1.2, 1.5, 1.0, 1.4, 1.25, 1.35, 1.05, 1.15]
GAIN = {"dpo": 0.0, "simpo": 0.05, "aao": 0.1}  # added to every preference: +5 / +10 WR points over DPO


def run_name(variant: str, seed: int) -> str:
    return variant if seed == SEEDS[0] else f"{variant}-seed{seed}"


def preferences(variant: str, method: str, seed: int) -> list[float]:
    jitter = 0.02 * (seed - 1) + (0.03 if variant == "llama-base" else 0.0)
    return [min(2.0, p + GAIN[method] + jitter) for p in BASE_PREFERENCE]


def arena_games(method: str) -> list[dict[str, Any]]:
    """Game 1 shows the baseline as A: B>A is a model win. AAO wins more questions than DPO."""
    wins = {"dpo": 3, "simpo": 4, "aao": 6}[method]
    return [
        {"question_id": f"q{i}", "games": [{"score": "B>A" if i < wins else "A>B"}, {"score": "A=B"}]} for i in range(N)
    ]


def arena_rate(games: list[dict[str, Any]]) -> float:
    """Battles: game 1 a win (100) or loss (0), game 2 a tie (50)."""
    battles = [100.0 if g["games"][0]["score"] == "B>A" else 0.0 for g in games] + [50.0] * len(games)
    return sum(battles) / len(battles)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A results tree: 2 settings x 3 methods x 2 seeds on AlpacaEval 2 and Arena-Hard, with known numbers."""
    root = tmp_path_factory.mktemp("work") / "results"
    for variant in VARIANTS:
        for method in METHODS:
            for seed in SEEDS:
                run = run_name(variant, seed)
                write_alpaca(root, run, variant, method, seed)
                write_arena(root, run, variant, method, seed)
                model = root / "train" / run / method / "model"
                shutil.copytree(tiny_model_dir, model)
                final = {f"h{i}": 0.6 - (0.1 if method == "aao" else 0.0) + 0.01 * i for i in range(4)}
                history = [{"step": 0, KEY: 0.4}, {"loss": 0.7, "step": 5, KEY: 0.5}, {"step": 5, FINAL: final}]
                write_json(root / "train" / run / method / "log_history.json", history)
    return root


def write_alpaca(root: Path, run: str, variant: str, method: str, seed: int) -> None:
    prefs = preferences(variant, method, seed)
    lc = LC[(variant, method)][SEEDS.index(seed)]
    partial = {"n": N, "n_expected": N, "partial": False, "missing": {}}
    result = {"lc": lc, "lc_standard_error": 1.0, "win_rate": 100 * (sum(prefs) / N - 1), "standard_error": 2.0,
              "judge": "offline-heuristic-v1", "judge_is_offline": True, **partial}  # fmt: skip
    write_json(root / "eval" / run / method / "alpaca_eval.json", result)
    write_json(root / "eval" / run / method / "alpaca_eval.annotations.json",
               [{"index": i, "preference": p} for i, p in enumerate(prefs)])  # fmt: skip
    words = 12 if method == "aao" else 6  # AAO answers twice as long as DPO's
    outputs = [{"instruction": f"i{i}", "output": " ".join(["word"] * words), "generator": run} for i in range(N)]
    write_json(root / "generations" / run / method / "alpaca_eval.json", outputs)


def write_arena(root: Path, run: str, variant: str, method: str, seed: int) -> None:
    games = arena_games(method)
    result = {"win_rate": arena_rate(games), "standard_error": 3.0, "judge": "offline-heuristic-v1",
              "judge_is_offline": True, "n": N, "n_expected": N, "partial": False, "missing": {}}  # fmt: skip
    if (variant, method, seed) == ("llama-base", "simpo", 2):
        result.update(n=8, partial=True, missing={"no verdict after 2 attempts": 2})
    write_json(root / "eval" / run / method / "arena_hard.json", result)
    write_json(root / "eval" / run / method / "arena_hard.annotations.json", games)
    answers = [answer_record(f"q{i}", run, [{"content": "An answer."}]) for i in range(N)]
    write_json(root / "generations" / run / method / "arena_hard.json", answers)


def runs_json() -> str:
    return json.dumps({run_name(v, s): {"variant": v, "seed": s} for v in VARIANTS for s in SEEDS})


def result_paths(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / "eval").rglob("*.json") if not p.name.endswith(".annotations.json"))


@pytest.fixture(scope="module")
def tables(results: Path) -> Path:
    """Every table of the experiment, written by the aggregate entry point."""
    out = results / "tables"
    manifest = results / "data" / "ultrafeedback.manifest.json"
    write_json(manifest, {"dataset": "ultrafeedback", "origin": "x", "read": 240, "kept": 237,
                          "skipped": {"empty turn": 2, "duplicate": 1}, "examples": []})  # fmt: skip
    aggregate.main(
        ["--results", *result_paths(results), "--scale", "cpu", "--csv", str(out / "main.csv"),
         "--md", str(out / "main.md"), "--html", str(out / "main.html"), "--title", "Main results",
         "--runs", runs_json(), "--paper-prefix", str(out / "main"), "--published", str(PUBLISHED),
         "--manifests", str(manifest), "--bootstrap", json.dumps({"rounds": 400, "seed": 0, "confidence": 0.95})]
    )  # fmt: skip
    return out


def cell(table1: pd.DataFrame, variant: str, method: str, column: str) -> pd.Series:
    match = table1[(table1["setting"] == variant) & (table1["method"] == method) & (table1["column"] == column)]
    assert len(match) == 1
    return match.iloc[0]


def test_table1_cells_are_seed_means_with_seed_variance_and_published_differences(tables: Path) -> None:
    table1 = pd.read_csv(tables / "main_table1.csv")
    dpo = cell(table1, "mistral-base", "dpo", "AlpacaEval2 LC")
    # seeds 14 and 16, SE 1 each: sqrt(mean SE^2 + sample variance / S) = sqrt(1 + 2 / 2)
    assert dpo["value"] == pytest.approx(15.0) and dpo["se"] == pytest.approx(math.sqrt(2.0))
    assert dpo["published"] == 15.1 and dpo["diff"] == pytest.approx(-0.1)
    assert dpo["published_model"] == "princeton-nlp/Mistral-7B-Base-SFT-DPO"
    assert dpo["cell"] == "15.0 ± 1.4 · pub 15.1 · Δ −0.1‡", "CPU scale: shown, marked not comparable"
    simpo = cell(table1, "llama-base", "simpo", "AlpacaEval2 LC")
    assert simpo["value"] == pytest.approx(26.0) and simpo["diff"] == pytest.approx(26.0 - 22.0)
    assert simpo["cell"].endswith("· pub 22.0 · Δ +4.0†‡"), "Llama-3-8B numbers in the Llama-3.1-8B setting"
    assert cell(table1, "llama-base", "aao", "AlpacaEval2 LC")["cell"] == "21.0 ± 1.0 · pub n/a§"
    assert pd.isna(cell(table1, "mistral-base", "aao", "AlpacaEval2 LC")["published"])


def test_a_partial_result_shows_in_its_cell_and_the_notes_say_why(tables: Path) -> None:
    table1 = pd.read_csv(tables / "main_table1.csv")
    partial = cell(table1, "llama-base", "simpo", "Arena-Hard WR")
    assert "(partial 8/10)" in partial["cell"] and bool(partial["partial"])
    assert not cell(table1, "llama-base", "dpo", "Arena-Hard WR")["partial"]
    markdown = (tables / "main_table1.md").read_text()
    assert "Partial: llama-base/SimPO, seed 2, arena_hard: 2 of 10 items missing (no verdict after 2 attempts: 2)" in (
        markdown
    )
    assert "Data ultrafeedback: 3 of 240 records skipped (empty turn: 2, duplicate: 1); 237 kept." in markdown


def test_table1_layout_and_notes_in_markdown(tables: Path) -> None:
    markdown = (tables / "main_table1.md").read_text()
    header = markdown.splitlines()[2]
    assert header.startswith("| Method | Mistral-7B Base<br>AlpacaEval2 LC | Mistral-7B Base<br>AlpacaEval2 WR")
    assert "Llama-3.1-8B Base<br>Arena-Hard WR |" in header
    rows = [line.split(" | ")[0] for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == ["| DPO", "| SimPO", "| AAO"], "methods as rows, the paper's own method last"
    assert "princeton-nlp/SimPO@005072f" in markdown
    assert "measured on princeton-nlp/Llama-3-Base-8B-SFT-DPO (base meta-llama/Meta-Llama-3-8B); † not " in markdown
    assert "§ AAO paper Table 1 values not available" in markdown
    assert "mean over seeds 1, 2" in markdown


class Cells(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        self.inside = tag in ("td", "th")

    def handle_endtag(self, tag: str) -> None:
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.rows[-1].append(data)


def test_every_format_has_the_same_cells(tables: Path) -> None:
    markdown = (tables / "main_table1.md").read_text()
    md_rows = [
        [c.strip() for c in line.strip("|").split(" | ")]
        for line in markdown.splitlines()
        if line.startswith("| ") and not line.startswith("| Method")
    ]
    parser = Cells()
    parser.feed((tables / "main_table1.html").read_text())
    assert parser.rows[2:] == md_rows
    tex = (tables / "main_table1.tex").read_text()
    assert latex("15.0 ± 1.4 · pub 15.1 · Δ −0.1‡") in tex
    assert "15.0 $\\pm$ 1.4 $\\cdot$ pub 15.1 $\\cdot$ $\\Delta$ $-$0.1$^{\\ddagger}$" in tex
    table1 = pd.read_csv(tables / "main_table1.csv")
    for row in md_rows:
        method = {"DPO": "dpo", "SimPO": "simpo", "AAO": "aao"}[row[0]]
        assert row[1:] == list(table1[table1["method"] == method]["cell"])


def check_latex_structure(tex: str, columns: int) -> None:
    assert tex.count("\\begin{") == tex.count("\\end{")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    for line in body:
        assert len(re.findall(r"(?<!\\)&", line)) == columns - 1, line
        assert line.endswith("\\\\")
    assert not re.search(r"(?<!\\)[%#_]", tex.replace("\\_", "").replace("\\%", "").replace("\\#", ""))


def test_latex_is_well_formed_and_compiles_where_latex_is_installed(tables: Path, tmp_path: Path) -> None:
    tex = (tables / "main_table1.tex").read_text()
    check_latex_structure(tex, 1 + 2 * 3)
    assert "\\multicolumn{3}{c}{Mistral-7B Base}" in tex and "\\cmidrule(lr){2-4}" in tex
    for name in ("main_vs_dpo.tex", "main_aao_vs_dpo.tex"):
        assert "\\toprule" in (tables / name).read_text()
    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex: the LaTeX was checked structurally only")
    for name in ("main_table1.tex", "main_vs_dpo.tex", "main_aao_vs_dpo.tex"):
        document = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        (tmp_path / "doc.tex").write_text(document + (tables / name).read_text() + "\\end{document}\n")
        run = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, name + run.stdout[-2000:]


def test_paired_differences_against_dpo_have_the_right_values_and_signs(tables: Path) -> None:
    compared = pd.read_csv(tables / "main_comparisons.csv")

    def row(variant: str, method: str, benchmark: str) -> pd.Series:
        match = compared[(compared["setting"] == variant) & (compared["method"] == method)]
        return match[match["benchmark"] == benchmark].iloc[0]

    aao = row("mistral-base", "aao", "alpaca_eval")
    # +10 points on every prompt; seed 2 of both models is +2 higher, so resampling seeds spans +8 to +12
    assert aao["estimate"] == pytest.approx(10.0)
    assert (aao["low"], aao["high"]) == pytest.approx((8.0, 12.0))
    assert aao["unpaired_high"] - aao["unpaired_low"] > 5, "unpaired, prompt difficulty does not cancel"
    arena = row("llama-base", "aao", "arena_hard")
    # 6 of 10 question wins against DPO's 3: 100 x 3 / 20 battles more
    assert arena["estimate"] == pytest.approx(15.0) and arena["low"] >= 0 and arena["high"] > 15
    simpo = row("llama-base", "simpo", "arena_hard")
    assert simpo["n_items"] == N and simpo["seeds"] == 2
    length = row("mistral-base", "aao", "length/alpaca_eval")
    tokenizer = load_tokenizer(tables.parent / "train" / "mistral-base" / "aao" / "model")
    long, short = (len(tokenizer(" ".join(["word"] * k), add_special_tokens=False)["input_ids"]) for k in (12, 6))
    assert length["estimate"] == pytest.approx(100 * (long / short - 1))
    squeezing = row("llama-base", "aao", "squeezing")
    assert squeezing["estimate"] == pytest.approx(-10.0) and squeezing["high"] < 0
    assert "dpo" not in set(compared["method"])


def test_the_against_dpo_tables_show_the_intervals(tables: Path) -> None:
    vs = (tables / "main_vs_dpo.md").read_text()
    assert "| AAO − DPO | +10.0 [+8.0, +12.0]*" in vs
    assert "| SimPO − DPO |" in vs and "Median interval width" in vs
    own = (tables / "main_aao_vs_dpo.md").read_text()
    assert own.splitlines()[2].startswith("| Setting | AlpacaEval2 WR | Length AlpacaEval2 (%)")
    assert "Top-token prob (pp)" in own
    assert "| Mistral-7B Base | +10.0 [+8.0, +12.0]*" in own


def test_flat_table_keeps_one_row_per_run_with_lengths(tables: Path) -> None:
    flat = pd.read_csv(tables / "main.csv")
    assert len(flat) == len(VARIANTS) * len(METHODS) * len(SEEDS)
    assert {"seed", "alpaca_eval tokens", "alpaca_eval chars", "arena_hard partial"} <= set(flat.columns)
    aao = flat[(flat["variant"] == "mistral-base") & (flat["method"] == "aao") & (flat["seed"] == 1)].iloc[0]
    assert aao["alpaca_eval chars"] == len(" ".join(["word"] * 12))
    assert aao["AlpacaEval2 LC"] == 20.0
    markdown = (tables / "main.md").read_text()
    partial = next(line for line in markdown.splitlines() if line.startswith("| llama-base | simpo | 2 |"))
    assert "45.00 ± 3.00 (partial 8/10)" in partial, "a partial result shows in its cell"
    assert markdown.count("(partial") == 1
    assert markdown.splitlines()[2].startswith(
        "| variant | method | seed | AlpacaEval2 LC | AlpacaEval2 WR | alpaca_eval chars"
    )


def test_published_cells_are_comparable_only_at_paper_scale_on_the_same_base_model(results: Path) -> None:
    scores = load_scores(result_paths(results), json.loads(runs_json()))
    scores = [s for s in scores if s.benchmark == "alpaca_eval"]
    paper = [s.__class__(**{**s.__dict__, "result": {**s.result, "judge_is_offline": False}}) for s in scores]
    context = Context("paper", load_published(PUBLISHED), {"llama-base": "meta-llama/Llama-3.1-8B"})
    _, tidy = table_one(paper, context, "t")
    marks = {(r["setting"], r["method"]): r["marks"] for _, r in tidy.iterrows() if r["column"] == "AlpacaEval2 LC"}
    assert marks[("mistral-base", "dpo")] == "" and marks[("llama-base", "dpo")] == "†"
    _, offline = table_one(scores, context, "t")
    assert set(offline[offline["published"].notna()]["marks"]) == {"‡", "†‡"}


def test_latex_escapes_specials() -> None:
    assert latex("a_b 50% & #1 ± −2") == "a\\_b 50\\% \\& \\#1 $\\pm$ $-$2"
    table = Table("T_1", ["A", "B%"], [["x_y", "1 & 2"]], notes=["n_1"])
    check_latex_structure(table.to_latex(), 2)


def test_the_plots_are_drawn_from_the_tables(tables: Path, results: Path) -> None:
    histories = sorted(str(p) for p in (results / "train").rglob("log_history.json"))
    names = ("scores", "forest", "length", "training", "squeezing")
    plots.main(
        ["--table1", str(tables / "main_table1.csv"), "--flat", str(tables / "main.csv"),
         "--comparisons", str(tables / "main_comparisons.csv"), "--histories", *histories, "--runs", runs_json(),
         *[arg for name in names for arg in (f"--{name}-png", str(tables / f"{name}.png"))]]
    )  # fmt: skip
    for name in names:
        assert (tables / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_an_experiment_without_the_control_or_the_treatment_still_gets_its_tables(
    results: Path, tmp_path: Path
) -> None:
    paths = [p for p in result_paths(results) if "/simpo/" in p]
    aggregate.main(
        ["--results", *paths, "--scale", "cpu", "--csv", str(tmp_path / "x.csv"), "--md", str(tmp_path / "x.md"),
         "--runs", runs_json(), "--paper-prefix", str(tmp_path / "x"), "--published", str(PUBLISHED)]
    )  # fmt: skip
    assert pd.read_csv(tmp_path / "x_comparisons.csv").empty
    assert "| SimPO |" in (tmp_path / "x_table1.md").read_text()
    assert (tmp_path / "x_vs_dpo.md").read_text().startswith("# Main results: every method − DPO")
    assert (tmp_path / "x_aao_vs_dpo.tex").exists()
