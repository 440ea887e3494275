"""The preload server (pipeline/preload.py): a job forked from it behaves as `python -m` would, and is faster.

Each test runs from its own working directory, so it talks to a server of its own (one per interpreter and
directory), which exits a few seconds after its last job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.toy_preferences import TRAINING, prepare_toy_run, toy_pairs
from tests.workflow_helpers import REPO

JOB = """
import json, os, sys, time
import torch
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "marker": os.environ.get("MARKER"), "ppid": os.getppid(),
                  "threads": torch.get_num_threads(), "version": VERSION}))
if "--sleep" in sys.argv:
    open("child.pid", "w").write(str(os.getpid()))
    time.sleep(60)
if "--fail" in sys.argv:
    raise RuntimeError("the job failed")
sys.exit(3 if "--three" in sys.argv else 0)
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "job_module.py").write_text("VERSION = 1\n" + JOB)
    return tmp_path


def client(workdir: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "AAO_PRELOAD_IDLE_S": "5", "OMP_NUM_THREADS": "1", "MARKER": "m1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.preload", "-m", "job_module", *args],
        cwd=workdir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finished(proc: subprocess.Popen) -> tuple[int, dict | None, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, json.loads(out.splitlines()[0]) if out.strip() else None, err


def test_a_forked_job_gets_its_arguments_directory_environment_streams_and_status(workdir: Path) -> None:
    status, seen, _ = finished(client(workdir, "--a", "b c"))
    assert status == 0
    assert seen["argv"] == ["--a", "b c"] and seen["cwd"] == str(workdir) and seen["marker"] == "m1"
    assert seen["threads"] == 1
    server = seen["ppid"]
    status, again, _ = finished(client(workdir, "--three", env={"MARKER": "m2"}))
    assert status == 3 and again["marker"] == "m2"
    assert again["ppid"] == server != os.getpid(), "the second job forked from the same warm server"
    status, _, err = finished(client(workdir, "--fail"))
    assert status == 1 and "RuntimeError: the job failed" in err


def test_the_projects_code_is_imported_afresh_by_every_job(workdir: Path) -> None:
    assert finished(client(workdir))[1]["version"] == 1
    (workdir / "job_module.py").write_text("VERSION = 2\n" + JOB)
    assert finished(client(workdir))[1]["version"] == 2


def test_a_job_whose_client_dies_is_killed(workdir: Path) -> None:
    proc = client(workdir, "--sleep")
    deadline = time.monotonic() + 60
    while not (workdir / "child.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int((workdir / "child.pid").read_text())
    proc.send_signal(signal.SIGKILL)  # as when Snakemake cancels the job
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the job outlived its client"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return status not in ("Z", "X")


def test_without_a_server_the_client_runs_the_job_itself(workdir: Path, tmp_path_factory) -> None:
    unwritable = tmp_path_factory.mktemp("ro")
    unwritable.chmod(0o500)
    if os.access(unwritable, os.W_OK):  # root writes anywhere: point at a path that cannot hold a socket instead
        unwritable = Path("/proc/self")
    status, seen, _ = finished(client(workdir, "--x", env={"XDG_RUNTIME_DIR": str(unwritable)}))
    assert status == 0 and seen["argv"] == ["--x"] and seen["ppid"] == os.getpid(), "run by the client itself"


def test_a_training_job_through_the_server_writes_the_same_model(tmp_path: Path) -> None:
    prepare_toy_run(tmp_path, toy_pairs("z"), TRAINING)
    training = {**TRAINING, "max_steps": 4}

    def train(name: str, *prefix: str) -> dict:
        command = [sys.executable, *prefix, "-m", "pipeline.train", "--method", "aao", "--params",
                   json.dumps({"beta": 0.1}), "--model", str(tmp_path / "start"), "--data",
                   str(tmp_path / "data.jsonl"), "--reference", str(tmp_path / "reference.pt"), "--training",
                   json.dumps(training), "--checkpoints", str(tmp_path / "ck" / name), "--out",
                   str(tmp_path / name), "--log-history", str(tmp_path / f"{name}.json")]  # fmt: skip
        env = {**os.environ, "AAO_PRELOAD_IDLE_S": "5", "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return load_file(tmp_path / name / "model.safetensors")

    plain, forked = train("plain"), train("forked", "-m", "pipeline.preload")
    assert plain.keys() == forked.keys() and all((plain[k] == forked[k]).all() for k in plain)
