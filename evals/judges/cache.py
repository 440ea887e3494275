"""A judge wrapper that keeps accepted exchanges on disk, so a rerun costs no API calls.

Replies live in one sqlite file that parallel Snakemake jobs can share
(rollback journal with a busy timeout: WAL mode needs shared memory, which
the NFS and Lustre file systems of clusters lack). The key is the sha256 of what decides the reply:
the judge's cache identity (its name and, for an OpenAI-compatible judge, its
endpoint), the template id, the messages and the decoding settings. What is
stored is decided by :func:`evals.judges.base.ask`: only exchanges that ended
in a reply the benchmark accepted. The file holds only keys and replies,
never a credential (backends scrub their key from replies before they return).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from evals.judges.base import Judge, JudgeReply, JudgeRequest

BUSY_TIMEOUT_S = 120.0


def cache_key(judge_identity: str, request: JudgeRequest) -> str:
    """Hex sha256 of everything that determines a reply (the payload is rendered into the messages)."""
    material = {
        "judge": judge_identity,
        "template": request.template,
        "messages": list(request.messages),
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_logprobs": request.top_logprobs,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CachedJudge(Judge):
    """Answers from the cache when it can; otherwise asks ``judge``.

    ``calls`` counts requests passed to the backend and ``hits`` those answered
    from disk, so the workflow can log what a run cost.
    """

    def __init__(self, judge: Judge, cache_path: str | Path) -> None:
        self.judge = judge
        self.name = judge.name
        self.is_offline = judge.is_offline
        self.concurrency = judge.concurrency
        self.calls = 0
        self.hits = 0
        self._lock = threading.Lock()
        path = Path(cache_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, judge TEXT, template TEXT, reply TEXT)"
        )
        self._db.commit()

    @property
    def cache_identity(self) -> str:
        return self.judge.cache_identity

    def lookup(self, request: JudgeRequest) -> JudgeReply | None:
        key = cache_key(self.cache_identity, request)
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            self.hits += 1
        return JudgeReply(**json.loads(row[0]))

    def complete(self, request: JudgeRequest) -> JudgeReply:
        with self._lock:
            self.calls += 1
        return self.judge.complete(request)

    def store(self, exchange: Iterable[tuple[JudgeRequest, JudgeReply]]) -> None:
        rows = [
            (cache_key(self.cache_identity, request), self.name, request.template, json.dumps(asdict(reply)))
            for request, reply in exchange
        ]
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO replies (key, judge, template, reply) VALUES (?, ?, ?, ?)", rows
            )
            self._db.commit()


def stored(cache_path: str | Path | None, judge_identity: str, requests: Sequence[JudgeRequest]) -> list[bool]:
    """Which requests already have a reply in the cache, read-only (the cost guard must not create the file)."""
    if cache_path is None or not Path(cache_path).is_file():
        return [False] * len(requests)
    db = sqlite3.connect(f"file:{Path(cache_path).resolve()}?mode=ro", uri=True, timeout=30)
    try:
        return [
            db.execute("SELECT 1 FROM replies WHERE key = ?", (cache_key(judge_identity, r),)).fetchone() is not None
            for r in requests
        ]
    except sqlite3.OperationalError:  # a cache file without the table yet
        return [False] * len(requests)
    finally:
        db.close()
