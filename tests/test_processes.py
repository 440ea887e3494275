"""Sharing a job's work out over its processes, and showing its progress once."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from suite.processes import my_share
from tests.workflow_helpers import REPO


def test_the_shares_of_all_processes_cover_every_batch_once() -> None:
    shares = [list(my_share(7, SimpleNamespace(process_index=p, num_processes=3))) for p in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]


SHOW_PROGRESS = """
from types import SimpleNamespace
from suite.processes import progress
assert list(progress(range(3), SimpleNamespace(is_local_main_process={main}), desc="batches")) == [0, 1, 2]
"""


@pytest.mark.parametrize(
    ("main", "tqdm_disable", "shown"),
    [(True, None, True), (True, "1", False), (False, None, False)],
)
def test_progress_shows_on_the_main_process_unless_tqdm_disable_says_otherwise(
    main: bool, tqdm_disable: str | None, shown: bool
) -> None:
    # tqdm reads TQDM_* when it is imported, hence a fresh process
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    if tqdm_disable is not None:
        env["TQDM_DISABLE"] = tqdm_disable
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-c", SHOW_PROGRESS.format(main=main)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert ("batches" in done.stderr) is shown
