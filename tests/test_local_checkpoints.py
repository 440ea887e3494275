"""A local checkpoint directory works wherever a hub model does; hub pointers record the commit they got;
variants beyond the paper's four are declared, and a typo in one of the four is still caught."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import models as models_cli
from pipeline import reward as reward_cli
from pipeline.config import ConfigError, validate_config
from suite import models, reward
from suite.provenance import POINTER, identity, tree_sha256
from tests.workflow_helpers import REPO, clean_checkout, job_counts, snakemake

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download fails the test: a local directory must never be sent to the hub."""
    import huggingface_hub

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise AssertionError(f"tried to download {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)


def test_variant_pointer_to_a_local_directory_records_its_content(
    tiny_model_dir: Path, tmp_path: Path, no_hub: None
) -> None:
    stage = tmp_path / "init"
    models_cli.main(["pointer", "--download", "--name-or-path", str(tiny_model_dir), "--out", str(stage)])
    pointer = json.loads((stage / POINTER).read_text())
    assert pointer["name_or_path"] == str(tiny_model_dir)
    assert pointer["content"] == identity(tiny_model_dir) == {"sha256": tree_sha256(tiny_model_dir)}
    assert identity(stage)["target"] == pointer["content"]  # part of the run's provenance, never re-hashed
    assert models.resolve(stage)["name_or_path"] == str(tiny_model_dir)
    loaded = models.load_model(stage)
    assert loaded.config.hidden_size == models.load_model(tiny_model_dir).config.hidden_size
    assert models.load_tokenizer(stage).chat_template == models.CHAT_TEMPLATE


def test_reward_model_pointer_to_a_local_directory(tiny_model_dir: Path, tmp_path: Path, no_hub: None) -> None:
    stage = tmp_path / "rm"
    reward_cli.main(["pointer", "--download", "--hub", str(tiny_model_dir), "--out", str(stage)])
    assert json.loads((stage / POINTER).read_text())["content"] == identity(tiny_model_dir)
    assert reward.reward_source(stage) == {
        "name_or_path": str(tiny_model_dir),
        "revision": None,
        "trust_remote_code": False,
    }


def test_hub_pointer_records_the_commit_an_unpinned_download_resolved_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    asked = []

    def snapshot_download(repo_id: str, revision: str | None = None, **kwargs: Any) -> str:
        asked.append((repo_id, revision))
        return str(tmp_path / "hub" / f"models--org--model/snapshots/{COMMIT}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    stage = tmp_path / "init"
    models_cli.main(
        ["pointer", "--download", "--name-or-path", "org/model", "--chat-template", "zephyr", "--out", str(stage)]
    )
    assert asked == [("org/model", None)]
    pointer = json.loads((stage / POINTER).read_text())
    assert pointer == {
        "name_or_path": "org/model",
        "revision": None,
        "chat_template": "zephyr",
        "resolved_revision": COMMIT,
    }
    assert models.resolve(stage)["revision"] == COMMIT  # loading reads exactly the commit downloaded
    assert identity(stage)["resolved_revision"] == COMMIT
    stage2 = tmp_path / "rm"
    reward_cli.main(["pointer", "--download", "--hub", "org/rm", "--revision", "v1", "--out", str(stage2)])
    assert asked[-1] == ("org/rm", "v1")
    assert reward.reward_source(stage2)["revision"] == COMMIT


# --------------------------------------------------------------------------- config


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "workflow/config" / name).read_text())


def test_a_fifth_variant_is_declared_with_extra() -> None:
    config = load("config.yaml")
    config["variants"]["smol-instruct"] = {**copy.deepcopy(config["variants"]["llama-base"]), "extra": True}
    validated = validate_config(config)
    assert validated["variants"]["smol-instruct"]["extra"] is True
    assert validated["variants"]["llama-base"]["extra"] is False


@pytest.mark.parametrize("name", ["llama-intsruct", "smol-instruct"])
def test_an_undeclared_name_is_a_typo_with_the_valid_names(name: str) -> None:
    config = load("config.yaml")
    config["variants"][name] = copy.deepcopy(config["variants"]["llama-base"])
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    message = str(caught.value)
    assert f"variants: unknown name {name!r}" in message and "'extra: true'" in message
    for valid in ("llama-base", "llama-instruct", "mistral-base", "mistral-instruct"):
        assert valid in message


@pytest.mark.parametrize(
    ("where", "edit"),
    [
        ("variants/llama-base/model/hub", lambda c, d: c["variants"]["llama-base"].update(model={"hub": d})),
        ("reward_models/tiny-rm/hub", lambda c, d: c["reward_models"].update({"tiny-rm": {"hub": d}})),
        (
            "experiments/hh/models/llama-base/hub",
            lambda c, d: c["experiments"]["hh"].update(models={"llama-base": {"hub": d}}),
        ),
    ],
)
def test_a_missing_local_checkpoint_is_caught_at_start(where: str, edit: Any) -> None:
    config = load("config.yaml")
    edit(config, "./checkpoints/nowhere")
    with pytest.raises(ConfigError, match=rf"config: {where}: './checkpoints/nowhere' looks like a local checkpoint"):
        validate_config(config)


# --------------------------------------------------------------------------- the real workflow


def test_workflow_points_variants_and_experiment_models_at_local_directories(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Snakemake runs init_hub_model on a local directory (its input) and the pointer records its content."""
    work = clean_checkout(tmp_path / "work")
    local = work / "checkpoints" / "smol"
    shutil.copytree(tiny_model_dir, local)
    config = load("config.yaml")
    config["variants"] = {
        "llama-base": config["variants"]["llama-base"],
        "smol": {**config["variants"]["llama-base"], "model": {"hub": "./checkpoints/smol"}, "extra": True},
    }
    config["variants"]["smol"].pop("sft")
    config["experiments"]["hh"]["models"] = {"llama-base": {"hub": "./checkpoints/smol"}}
    config["datasets"]["ultrafeedback_onpolicy_llama_instruct"]["onpolicy"]["policy"] = "smol"
    (work / "local.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/models/smol/init", "results/models/hh-llama-base/init"]
    dry = snakemake(work, "-n", "--configfile", "local.yaml", "--printshellcmds", *targets)
    assert dry.returncode == 0, dry.stderr
    assert job_counts(dry.stdout) == {"init_hub_model": 2, "total": 2}
    run = snakemake(work, "--configfile", "local.yaml", "--cores", "1", *targets)
    assert run.returncode == 0, run.stderr[-3000:]
    for target in targets:
        pointer = json.loads((work / target / POINTER).read_text())
        assert pointer["name_or_path"] == "./checkpoints/smol"
        assert pointer["content"] == {"sha256": tree_sha256(local)}
    (local / "config.json").write_text((local / "config.json").read_text() + "\n")  # the checkpoint changes
    again = snakemake(work, *targets, "-n", "--configfile", "local.yaml")
    assert again.returncode == 0 and job_counts(again.stdout).get("init_hub_model") == 2, again.stdout
