"""A small OpenAI-compatible chat-completions server for tests (stdlib only, 127.0.0.1, a free port).

It answers ``POST /v1/chat/completions`` with one generated token and its top
log-probs, checks the ``Authorization: Bearer <key>`` header, counts requests
and keeps their JSON bodies. It can fail a given fraction of requests (every
k-th, deterministically) with an HTTP error status or, with ``malformed``, an
HTTP-200 response that is not a usable completion (:data:`MALFORMED`), or never
answer at all.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], dict[str, float]]
# HTTP-200 bodies that are not a usable chat completion, as broken proxies and servers send them.
MALFORMED = ("truncated", "html", "empty_choices", "no_content")


def prefer_first(body: dict[str, Any]) -> dict[str, float]:
    """Default answer: the first shown output ("m") is clearly better."""
    return {"m": -0.1, "M": -2.4, "Both": -9.0}


@dataclass
class StubState:
    key: str
    responder: Responder = prefer_first
    fail_fraction: float = 0.0
    fail_status: int = 500
    malformed: str | None = None  # one of MALFORMED: what a failing request gets instead of fail_status
    hang: bool = False
    delay_s: float = 0.0  # seconds before each answer: time for a test to kill the client mid-run
    requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def should_fail(self, number: int) -> bool:
        """Request ``number`` (1-based) fails when it crosses the next multiple of 1/fail_fraction."""
        return int(number * self.fail_fraction) > int((number - 1) * self.fail_fraction)


def _completion(body: dict[str, Any], logprobs: dict[str, float]) -> dict[str, Any]:
    ranked = sorted(logprobs.items(), key=lambda kv: kv[1], reverse=True)[: body.get("top_logprobs") or 1]
    top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked]
    token = ranked[0][0]
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": token},
        "finish_reason": "length",
        "logprobs": {"content": [{**top[0], "top_logprobs": top}]} if body.get("logprobs") else None,
    }
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [choice],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }


def _malformed(kind: str, completion: dict[str, Any]) -> tuple[bytes, str]:
    """The body and content type of a malformed HTTP-200 response of the given kind."""
    if kind == "truncated":
        text = json.dumps(completion)
        return text[: len(text) // 2].encode(), "application/json"
    if kind == "html":
        return b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"
    if kind == "empty_choices":
        return json.dumps({**completion, "choices": []}).encode(), "application/json"
    if kind == "no_content":
        choice = {**completion["choices"][0], "message": {"role": "assistant", "content": None}}
        return json.dumps({**completion, "choices": [choice]}).encode(), "application/json"
    raise ValueError(f"unknown malformed kind {kind!r}; known: {MALFORMED}")


def _handler(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Silent: tests read captured output."""

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests += 1
                number = state.requests
                state.bodies.append(body)
            if self.path != "/v1/chat/completions":
                return self._reply(404, {"error": {"message": f"no route {self.path}"}})
            auth = self.headers.get("Authorization", "")
            if auth != f"Bearer {state.key}":
                # Echo the presented key, as careless servers do, so tests can check it is masked.
                return self._reply(401, {"error": {"message": f"invalid key {auth}", "type": "auth"}})
            if state.hang:
                state.release.wait(timeout=30)
                return None
            time.sleep(state.delay_s)
            completion = _completion(body, state.responder(body))
            if state.should_fail(number) and state.malformed is not None:
                return self._send(200, *_malformed(state.malformed, completion))
            if state.should_fail(number):
                return self._reply(state.fail_status, {"error": {"message": "stub failure", "type": "server"}})
            return self._reply(200, completion)

    return Handler


class StubServer:
    """Context manager: ``with StubServer("sk-...") as stub: stub.base_url``."""

    def __init__(self, key: str, **options: Any) -> None:
        self.state = StubState(key=key, **options)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> int:
        return self.state.requests

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.release.set()
        self._server.shutdown()
        self._server.server_close()
