"""A judge whose replies the test writes: for benchmark tests that need known judgments."""

from __future__ import annotations

from collections.abc import Callable

from evals.judges import Judge, JudgeReply, JudgeRequest


class ScriptedJudge(Judge):
    """Replies ``reply(request)``; records every request."""

    name = "scripted"
    is_offline = True

    def __init__(self, reply: Callable[[JudgeRequest], str]) -> None:
        self.reply = reply
        self.requests: list[JudgeRequest] = []

    def complete(self, request: JudgeRequest) -> JudgeReply:
        self.requests.append(request)
        return JudgeReply(text=self.reply(request), top_logprobs=None, raw={})
