"""The README's "Adding a method" steps, followed literally, put a new method in the DAG and in the table."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.workflow_helpers import REPO, clean_checkout, snakemake


def readme_steps() -> tuple[str, str, str]:
    """The module code, the registry entry and the config line, as the README gives them."""
    section = (REPO / "README.md").read_text().split("## Adding a method", 1)[1].split("\n## ", 1)[0]
    code = textwrap.dedent(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    registry_line, config_line = re.findall(r"`([^`\n]+)`\.?\n", section)[:2]
    return code, registry_line, config_line


def add_method(work: Path) -> str:
    code, registry_line, config_line = readme_steps()
    name = re.search(r'name="(\w+)"', code).group(1)
    (work / f"baselines/{name}.py").write_text(code)
    registry = work / "suite/methods.py"
    registry.write_text(
        registry.read_text().replace(
            "METHODS: dict[str, str] = {\n", f"METHODS: dict[str, str] = {{\n    {registry_line}\n", 1
        )
    )
    config = yaml.safe_load((work / "workflow/config/config.yaml").read_text())
    config["methods"].update(yaml.safe_load(config_line))
    (work / "workflow/config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return name


def small_config(work: Path, name: str) -> Path:
    """One variant, DPO and the new method, AlpacaEval only, no HH branch: the README's steps on a one-minute DAG."""
    config = yaml.safe_load((work / "workflow/config/config.yaml").read_text())
    config["variants"] = {"llama-base": config["variants"]["llama-base"]}
    config["methods"] = {m: config["methods"][m] for m in ("dpo", name)}
    config["benchmarks"] = {"alpaca_eval": config["benchmarks"]["alpaca_eval"]}
    config["datasets"] = {k: v for k, v in config["datasets"].items() if "onpolicy" not in v}
    config["reward_models"] = {}
    config["experiments"] = {}
    path = work / "small.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_readme_steps_are_three_edits() -> None:
    code, registry_line, config_line = readme_steps()
    assert "METHOD = Method(" in code and "params_schema=" in code
    assert registry_line.startswith('"my_method": "baselines.my_method"')
    assert yaml.safe_load(config_line) == {"my_method": {"beta": 0.1}}


@pytest.mark.slow
def test_new_method_reaches_the_dag_and_the_table(tmp_path: Path) -> None:
    work = clean_checkout(tmp_path)
    name = add_method(work)

    dry = snakemake(work, "-n")  # the default config now trains every variant with it
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert len(re.findall(rf"method={name}\b", dry.stdout)) >= 4

    run = snakemake(work, "results/tables/main.csv", "--configfile", str(small_config(work, name)))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = pd.read_csv(work / "results/tables/main.csv")
    assert set(table["method"]) == {"dpo", name}
    assert table.loc[table["method"] == name, "AlpacaEval2 WR"].between(0, 100).all()
