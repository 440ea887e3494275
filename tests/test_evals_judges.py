"""Judge backends over a local HTTP stub, the cache, the ask policy (retries, what is cached), the offline judge."""

from __future__ import annotations

import json
import logging
import math
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from evals import alpaca_eval
from evals.judges import (
    JUDGES,
    AskPolicy,
    CachedJudge,
    Judge,
    JudgeError,
    JudgeReply,
    JudgeRequest,
    ask,
    judge_identity,
    make_judge,
)
from evals.judges.offline import OfflineJudge, score
from evals.results import IncompleteResultError
from tests.openai_stub import MALFORMED, StubServer, prefer_first

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


def assert_no_key_in_files(folder: Path, key: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"key leaked into {path.name}"


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
    assert_no_key_in_files(files["result"].parent, secret)


@pytest.mark.parametrize("status", [500, 429])
def test_flaky_server_still_yields_complete_results(secret: str, files: dict[str, Path], status: int) -> None:
    with StubServer(secret, fail_fraction=0.5, fail_status=status) as stub:
        result = run_eval(files, openai_config(stub))
        assert stub.requests > len(MODEL)
    assert result["n"] == result["n_expected"] == len(MODEL) and result["n_unparsed"] == 0
    assert result["partial"] is False and result["missing"] == {}
    assert result["judge_calls"] == len(MODEL)


@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_http_200_responses_are_retried_like_server_errors(
    secret: str, files: dict[str, Path], kind: str
) -> None:
    """A truncated JSON body, an HTML page, an empty choices list, a message without content: retried, then fine."""
    with StubServer(secret, fail_fraction=0.5, malformed=kind) as stub:
        result = run_eval(files, openai_config(stub))
        assert stub.requests > len(MODEL)
    assert result["n"] == len(MODEL) and result["partial"] is False and result["missing"] == {}
    assert result["judge_calls"] == len(MODEL)


@pytest.mark.parametrize("kind", MALFORMED)
def test_only_malformed_responses_end_in_a_judge_error_naming_judge_benchmark_and_item(
    secret: str, files: dict[str, Path], kind: str
) -> None:
    with (
        StubServer(secret, fail_fraction=1.0, malformed=kind) as stub,
        pytest.raises(JudgeError) as info,
    ):
        run_eval(files, openai_config(stub, max_retries=2, concurrency=1))
    message = str(info.value)
    assert message.startswith("alpaca_eval instruction #")  # the benchmark and the item
    assert "judge openai:gpt-4-1106-preview gave no reply after 3 attempts" in message
    assert "MalformedResponse" in message and "Traceback" not in message
    assert stub.requests == 3
    assert not files["result"].exists() and not files["annotations"].exists()


def test_unparsed_replies_are_never_cached_and_a_rerun_against_a_healthy_server_asks_again(
    secret: str, files: dict[str, Path]
) -> None:
    """HTTP 200 with an empty reply: asked again within the bound, reported, nothing cached; the rerun completes."""
    with StubServer(secret, responder=lambda body: {"": -0.01}) as stub:
        with pytest.raises(IncompleteResultError) as info:
            run_eval(files, openai_config(stub))
        assert stub.requests == len(MODEL) * alpaca_eval.REPLY_ATTEMPTS
        assert f"alpaca_eval: {len(MODEL)} of {len(MODEL)} items have no score" in str(info.value)
        assert f"{len(MODEL)} judge reply unparsed (e.g. #0 " in str(info.value)
        assert not files["result"].exists()
        assert cache_rows(files["cache"]) == 0

        stub.state.responder = prefer_first  # the server is healthy again
        result = run_eval(files, openai_config(stub))
        assert stub.requests == len(MODEL) * (alpaca_eval.REPLY_ATTEMPTS + 1)
    assert result["n"] == len(MODEL) and result["partial"] is False and result["judge_calls"] == len(MODEL)


def test_a_key_echoed_in_a_successful_reply_is_scrubbed_before_cache_and_annotations(
    secret: str, files: dict[str, Path]
) -> None:
    echo = {f"m {secret}": -0.05, "m": -0.1, "M": -2.4}  # the key in the reply's text and in its log-probs
    with StubServer(secret, responder=lambda body: echo) as stub:
        result = run_eval(files, openai_config(stub))
    assert result["n"] == len(MODEL)
    assert_no_key_in_files(files["result"].parent, secret)
    annotations = json.loads(files["annotations"].read_text())
    assert "m [REDACTED]" in json.dumps(annotations[0]["preference_raw_completion"])


def test_base_url_is_part_of_the_cache_key(secret: str, files: dict[str, Path]) -> None:
    with StubServer(secret) as one, StubServer(secret) as other:
        run_eval(files, openai_config(one))
        run_eval(files, openai_config(other))  # same model name, another server: asked, not read from the cache
        run_eval(files, openai_config(one))
        assert (one.requests, other.requests) == (len(MODEL), len(MODEL))
    assert judge_identity({"backend": "openai", "model": "m"}) == "openai:m"  # OpenAI's own: as before
    assert (
        judge_identity({"backend": "openai", "model": "m", "base_url": "http://h:8000/v1/"})
        == "openai:m@http://h:8000/v1"
    )


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
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['modle'\]; valid keys: \['api_key_env', 'base_url'"):
        make_judge({"backend": "openai", "modle": "typo"})
    with pytest.raises(ValueError, match="openai judge: max_retries must be an integer, got str"):
        make_judge({"backend": "openai", "model": "m", "max_retries": "6"})
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


def cache_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]


def test_cache_is_keyed_by_template_and_shared_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "judge.sqlite"
    backend = CountingJudge()
    first = CachedJudge(backend, path)
    reply = ask(first, request(instruction="a", output_1="b", output_2="c"), AskPolicy()).reply
    ask(first, request("t@2", instruction="a", output_1="b", output_2="c"), AskPolicy())
    assert (first.calls, first.hits, backend.seen) == (2, 0, 2)

    second = CachedJudge(backend, path)
    assert ask(second, request(instruction="a", output_1="b", output_2="c"), AskPolicy()).reply == reply
    assert (second.calls, second.hits, backend.seen) == (0, 1, 2)


class SequenceJudge(Judge):
    """Replies with the given texts in turn, the last one for ever after; counts its calls."""

    name = "sequence"
    is_offline = True

    def __init__(self, *texts: str) -> None:
        self.texts = texts
        self.calls = 0

    def complete(self, request: JudgeRequest) -> JudgeReply:
        self.calls += 1
        return JudgeReply(text=self.texts[min(self.calls, len(self.texts)) - 1], top_logprobs=None, raw={})


PARSED_OK = AskPolicy(accept=lambda reply: reply.text == "ok", attempts=3)


def test_an_unparsed_reply_is_asked_again_within_the_bound_and_never_cached(tmp_path: Path) -> None:
    path = tmp_path / "judge.sqlite"
    garbled = SequenceJudge("", "garbled")
    exchange = ask(CachedJudge(garbled, path), request(), PARSED_OK)
    assert not exchange.accepted and exchange.texts == ["", "garbled", "garbled"] and garbled.calls == 3
    assert [r.template for r in exchange.requests] == ["t@1", "t@1#attempt2", "t@1#attempt3"]
    assert cache_rows(path) == 0

    healthy = SequenceJudge("ok")
    again = ask(CachedJudge(healthy, path), request(), PARSED_OK)
    assert again.accepted and again.texts == ["ok"] and healthy.calls == 1


def test_an_exchange_that_ends_parsed_is_cached_whole_and_replayed_for_free(tmp_path: Path) -> None:
    """The intermediate reply is a protocol step: kept with the answer it led to, so a rerun replays both."""
    path = tmp_path / "judge.sqlite"
    first = ask(CachedJudge(SequenceJudge("garbled", "ok"), path), request(), PARSED_OK)
    assert first.accepted and first.texts == ["garbled", "ok"] and cache_rows(path) == 2

    rerun = CachedJudge(SequenceJudge("never asked"), path)
    assert ask(rerun, request(), PARSED_OK) == first
    assert (rerun.calls, rerun.hits) == (0, 2)


def test_a_stored_unparsed_reply_never_stands_as_an_answer(tmp_path: Path) -> None:
    """An entry an older cache kept for a reply that did not parse is asked again at the last attempt."""
    cache = CachedJudge(SequenceJudge("ok"), tmp_path / "judge.sqlite")
    cache.store([(request(), JudgeReply(text="garbled", top_logprobs=None, raw={}))])
    exchange = ask(cache, request(), AskPolicy(accept=lambda reply: reply.text == "ok"))
    assert exchange.accepted and exchange.texts == ["ok"] and cache.calls == 1


def test_a_follow_up_ends_the_exchange_early_when_the_protocol_says_so() -> None:
    judge = SequenceJudge("garbled")
    policy = AskPolicy(accept=lambda reply: reply.text == "ok", attempts=5, follow_up=lambda *_: None)
    exchange = ask(judge, request(), policy)
    assert not exchange.accepted and judge.calls == 1
    with pytest.raises(ValueError, match="at least one attempt"):
        AskPolicy(attempts=0)
