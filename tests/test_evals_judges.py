"""Judge backends: the OpenAI-compatible client against a local HTTP stub, the cache, the offline stand-in."""

from __future__ import annotations

import json
import logging
import math
import secrets
from pathlib import Path
from typing import Any

import pytest

from evals import alpaca_eval
from evals.judges import JUDGES, CachedJudge, Judge, JudgeError, JudgeReply, JudgeRequest, make_judge
from evals.judges.offline import OfflineJudge, score
from tests.openai_stub import StubServer

KEY_ENV = "AAO_TEST_JUDGE_KEY"

REFERENCE = [
    {
        "instruction": f"Give one tip about {topic}.",
        "output": f"A good tip about {topic}: start small.",
        "generator": "ref",
    }
    for topic in ("sleep", "cooking", "running", "saving money", "reading", "gardening")
]
MODEL = [{**r, "output": r["output"] + " Then keep going every day.", "generator": "model"} for r in REFERENCE]


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    key = f"sk-test-{secrets.token_hex(16)}"
    monkeypatch.setenv(KEY_ENV, key)
    return key


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / f"{name}.json" for name in ("outputs", "reference", "result", "annotations")}
    paths["outputs"].write_text(json.dumps(MODEL))
    paths["reference"].write_text(json.dumps(REFERENCE))
    paths["cache"] = tmp_path / "cache" / "judge.sqlite"
    return paths


def openai_config(stub: StubServer, **overrides: Any) -> dict[str, Any]:
    config = {
        "backend": "openai",
        "model": "gpt-4-1106-preview",
        "base_url": stub.base_url,
        "api_key_env": KEY_ENV,
        "initial_backoff_s": 0.01,
        "timeout_s": 5.0,
        "concurrency": 3,
    }
    return {**config, **overrides}


def run_eval(files: dict[str, Path], judge: dict[str, Any]) -> dict[str, Any]:
    alpaca_eval.main(
        [
            *("--outputs", str(files["outputs"]), "--reference", str(files["reference"])),
            *("--judge", json.dumps(judge), "--cache", str(files["cache"])),
            *("--out", str(files["result"]), "--annotations-out", str(files["annotations"])),
        ]
    )
    return json.loads(files["result"].read_text())


def test_openai_backend_over_http_caches_and_never_leaks_the_key(
    secret: str, files: dict[str, Path], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with StubServer(secret) as stub:
        first = run_eval(files, openai_config(stub))
        assert stub.requests == len(MODEL)
        body = stub.state.bodies[0]
        assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["max_tokens"] == 1
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert "payload" not in json.dumps(stub.state.bodies)

        second = run_eval(files, openai_config(stub))
        assert stub.requests == len(MODEL), "the second run must be answered from the cache"

    assert (first["judge_calls"], first["cache_hits"]) == (len(MODEL), 0)
    assert (second["judge_calls"], second["cache_hits"]) == (0, len(MODEL))
    assert second["win_rate"] == first["win_rate"]
    assert first["judge"] == "openai:gpt-4-1106-preview" and first["judge_is_offline"] is False

    # The stub always prefers the output shown first, so every preference reveals the (undone) swap.
    annotations = json.loads(files["annotations"].read_text())
    p_first = 1 / (1 + math.exp(-2.3))
    for row in annotations:
        expected = 1 + p_first if row["is_switched_outputs"] else 2 - p_first
        assert row["preference"] == pytest.approx(expected, abs=1e-6)

    captured = capsys.readouterr()
    assert secret not in caplog.text + captured.out + captured.err
    for path in files["result"].parent.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"key leaked into {path.name}"


@pytest.mark.parametrize("status", [500, 429])
def test_flaky_server_still_yields_complete_results(secret: str, files: dict[str, Path], status: int) -> None:
    with StubServer(secret, fail_fraction=0.5, fail_status=status) as stub:
        result = run_eval(files, openai_config(stub))
        assert stub.requests > len(MODEL)
    assert result["n"] == len(MODEL) and result["n_unparsed"] == 0
    assert result["judge_calls"] == len(MODEL)


def test_server_that_never_answers_raises_and_writes_nothing(secret: str, files: dict[str, Path]) -> None:
    with (
        StubServer(secret, hang=True) as stub,
        pytest.raises(JudgeError, match=r"no reply after 2 attempts.*Timeout"),
    ):
        run_eval(files, openai_config(stub, timeout_s=0.3, max_retries=1))
    assert not files["result"].exists() and not files["annotations"].exists()


def test_rejected_key_is_masked_in_the_error(secret: str, files: dict[str, Path]) -> None:
    with StubServer("sk-the-server-expects-another-key") as stub, pytest.raises(JudgeError) as info:
        run_eval(files, openai_config(stub))
    assert "refused" in str(info.value) and "AuthenticationError" in str(info.value)
    assert secret not in str(info.value) and "[REDACTED]" in str(info.value)


def test_missing_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AAO_TEST_UNSET_KEY", raising=False)
    with pytest.raises(JudgeError, match="AAO_TEST_UNSET_KEY"):
        make_judge({"backend": "openai", "model": "m", "api_key_env": "AAO_TEST_UNSET_KEY"})


def test_registry_rejects_unknown_backends_and_keys() -> None:
    with pytest.raises(ValueError, match="hf, offline, openai"):
        make_judge({"backend": "claude"})
    with pytest.raises(ValueError, match="modle"):
        make_judge({"backend": "openai", "modle": "typo"})
    assert set(JUDGES) == {"openai", "offline", "hf"}


def request(template: str = "t@1", **payload: Any) -> JudgeRequest:
    payload = {"task": "pairwise_logprob", "labels": ["m", "M"], **payload}
    messages = ({"role": "user", "content": json.dumps(payload, sort_keys=True)},)
    return JudgeRequest(messages, max_tokens=1, temperature=1.0, top_logprobs=5, template=template, payload=payload)


def test_offline_judge_is_deterministic_and_shaped_like_a_logprob_judge() -> None:
    req = request(instruction="How do I bake bread?", output_1="Bake bread: knead dough.", output_2="bread bread bread")
    first, second = OfflineJudge().complete(req), OfflineJudge().complete(req)
    assert first == second
    assert first.text == "m" and first.top_logprobs is not None and len(first.top_logprobs) == 1
    probs = {t: math.exp(lp) for t, lp in first.top_logprobs[0].items()}
    assert set(probs) == {"m", "M"} and sum(probs.values()) == pytest.approx(1.0)
    assert probs["m"] > 0.5
    assert score("anything", "") == -1.0
    with pytest.raises(JudgeError, match="pairwise_logprob"):
        OfflineJudge().complete(JudgeRequest((), 1, 0.0, None, "x@1", {"task": "single_score"}))


class CountingJudge(Judge):
    name = "counting"
    is_offline = True

    def __init__(self) -> None:
        self.seen = 0

    def complete(self, request: JudgeRequest) -> JudgeReply:
        self.seen += 1
        return JudgeReply(text="m", top_logprobs=[{"m": -0.5}], raw={"n": self.seen})


def test_cache_is_keyed_by_template_and_shared_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "judge.sqlite"
    backend = CountingJudge()
    first = CachedJudge(backend, path)
    reply = first.complete(request(instruction="a", output_1="b", output_2="c"))
    first.complete(request("t@2", instruction="a", output_1="b", output_2="c"))
    assert (first.calls, first.hits, backend.seen) == (2, 0, 2)

    second = CachedJudge(backend, path)
    assert second.complete(request(instruction="a", output_1="b", output_2="c")) == reply
    assert (second.calls, second.hits, backend.seen) == (0, 1, 2)
