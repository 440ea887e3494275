"""Open a page in a real headless Chromium (Debian's package) and talk to it over the DevTools protocol.

Used by the report test: load the page, collect console errors and uncaught
exceptions, evaluate a script in it, save a screenshot. The websocket client
is aiohttp's (installed with fschat). Chromium runs with a fresh profile and
without background networking, sync, component updates or first-run pages.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    """What a visit saw: console errors, uncaught exceptions, the script's value and the screenshot."""

    errors: list[str] = field(default_factory=list)
    value: Any = None
    screenshot: Path | None = None


class DevTools:
    """One websocket session with a page target; replies matched to requests by id, events kept."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        request = next(self.ids)
        await self.socket.send_json({"id": request, "method": method, "params": params})
        while True:
            message = json.loads((await self.socket.receive()).data)
            if message.get("id") == request:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    async def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {event} within {timeout} s")
            message = await asyncio.wait_for(self.socket.receive(), remaining)
            self.events.append(json.loads(message.data))

    def errors(self) -> list[str]:
        found = []
        for e in self.events:
            params = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')} {params['exceptionDetails']}")
            elif e.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif e.get("method") == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found


async def _visit(port: int, url: str, script: str, screenshot: Path, settle: float) -> PageVisit:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
            targets = await reply.json(content_type=None)
        page = next(t for t in targets if t["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as socket:
            tools = DevTools(socket)
            for domain in ("Runtime", "Log", "Page"):
                await tools.call(f"{domain}.enable")
            await tools.call("Page.navigate", url=url)
            await tools.wait_for("Page.loadEventFired", 60)
            await asyncio.sleep(settle)  # let the page's scripts render
            evaluated = await tools.call("Runtime.evaluate", expression=script, awaitPromise=True, returnByValue=True)
            if "exceptionDetails" in evaluated:
                raise RuntimeError(f"the test script failed in the page: {evaluated['exceptionDetails']}")
            shot = await tools.call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            await asyncio.sleep(0.2)
            return PageVisit(tools.errors(), evaluated["result"].get("value"), screenshot)


def visit(page: Path, script: str, screenshot: Path, settle: float = 2.0) -> PageVisit:
    """Load ``page`` (a local file) in headless Chromium, run ``script`` there, save a screenshot."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (port_file.exists() and port_file.read_text().strip()):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            return asyncio.run(_visit(port, page.resolve().as_uri(), script, screenshot, settle))
        finally:
            process.terminate()
            process.wait(timeout=30)
