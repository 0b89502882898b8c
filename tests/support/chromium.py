"""A headless Chromium (Debian's ``chromium``) driven over the DevTools protocol: one
websocket to the browser, one page attached to it (flattened sessions), with aiohttp's client.

A page of the web view holds its terminal in an xterm.js ``Terminal`` that textual.js keeps to
itself; ``TERMINAL_HOOK`` runs before the page's scripts and catches it when textual.js stores
it (``this.terminal = new Terminal(…)``), so that the test reads what the terminal shows from
its buffer, not from pixels.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: How long Chromium may take to open its DevTools port on a loaded machine.
LISTEN_LIMIT_S = 60.0

TERMINAL_HOOK = """
(() => {
  let found = null;
  const waiting = [];
  Object.defineProperty(Object.prototype, "terminal", {
    configurable: true,
    set(value) {
      Object.defineProperty(this, "terminal", {value, writable: true, configurable: true});
      if (value && value.buffer && !found) {
        found = value;
        waiting.splice(0).forEach((wake) => wake(value));
      }
    },
  });
  const screen = (term) => {
    const buffer = term.buffer.active, lines = [];
    for (let y = 0; y < term.rows; y++) {
      const line = buffer.getLine(buffer.viewportY + y);
      lines.push(line ? line.translateToString(true) : "");
    }
    return lines.join("\\n");
  };
  const terminal = () => found ? Promise.resolve(found) : new Promise((w) => waiting.push(w));
  window.__screen = async () => screen(await terminal());
  window.__focus = async () => (await terminal()).focus();
  // Resolves with the screen once it shows every text, as the terminal parses what it is sent.
  window.__waitFor = async (texts, ms) => {
    const term = await terminal();
    return new Promise((resolve, reject) => {
      const check = () => {
        const text = screen(term);
        if (texts.every((t) => text.includes(t))) { resolve(text); return true; }
        return false;
      };
      if (check()) return;
      const sub = term.onWriteParsed(() => { if (check()) { sub.dispose(); } });
      setTimeout(() => {
        sub.dispose();
        reject(new Error("never shown: " + texts + "\\n" + screen(term)));
      }, ms);
    });
  };
})();
"""


def live_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that have not exited (zombies are dead)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid pgrp …: comm may hold spaces and parentheses.
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


async def group_ended(pgid: int, limit_s: float = 30.0) -> bool:
    """Whether every process of ``pgid`` is dead within ``limit_s``: processes killed in a
    group die one by one, and no event says when the last one of them (not our children) has."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while live_in_group(pgid):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


class DevToolsError(Exception):
    """A DevTools command that failed, or a page script that threw."""


class Chromium:
    """A headless Chromium in a process group of its own, with one page to drive."""

    def __init__(self, process: asyncio.subprocess.Process, http: aiohttp.ClientSession) -> None:
        self.process = process
        self.http = http
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.session = ""
        self._ids = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[bytes] | None = None

    @classmethod
    async def launch(cls, profile: Path, env: dict[str, str]) -> Chromium:
        assert CHROMIUM is not None
        argv = [
            CHROMIUM,
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--window-size=1280,800",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
        ]
        if os.geteuid() == 0:
            argv.append("--no-sandbox")  # Chromium's own sandbox refuses to run as root
        process = await asyncio.create_subprocess_exec(
            *argv,
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        browser = cls(process, aiohttp.ClientSession())
        try:
            await browser._connect()
        except BaseException:
            await browser.close()
            raise
        return browser

    async def _connect(self) -> None:
        assert self.process.stderr is not None
        seen: list[str] = []
        try:
            async with asyncio.timeout(LISTEN_LIMIT_S):
                while True:
                    line = (await self.process.stderr.readline()).decode(errors="replace")
                    if not line:
                        raise DevToolsError("chromium exited before listening:\n" + "".join(seen))
                    seen.append(line)
                    if line.startswith("DevTools listening on "):
                        url = line.removeprefix("DevTools listening on ").strip()
                        break
        except TimeoutError:
            raise DevToolsError("chromium never listened:\n" + "".join(seen)) from None
        self._drain = asyncio.ensure_future(self.process.stderr.read())  # never a full pipe
        self.socket = await self.http.ws_connect(url, max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())
        target = await self.call("Target.createTarget", url="about:blank")
        attached = await self.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        self.session = attached["sessionId"]

    async def _read(self) -> None:
        assert self.socket is not None
        async for message in self.socket:
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
        for future in self._pending.values():
            future.set_exception(DevToolsError("the browser closed its connection"))

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A DevTools command on the page (on the browser before a page is attached)."""
        assert self.socket is not None
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        future = asyncio.get_running_loop().create_future()
        self._pending[self._ids] = future
        await self.socket.send_str(json.dumps(message))
        reply = await future
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a page expression (a promise is awaited)."""
        reply = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in reply:
            raise DevToolsError(reply["exceptionDetails"].get("exception", {}).get("description"))
        return reply["result"].get("value")

    async def open(self, url: str) -> None:
        """Load ``url`` in the page, with the terminal hook in place before its scripts."""
        await self.call("Page.enable")
        await self.call("Page.addScriptToEvaluateOnNewDocument", source=TERMINAL_HOOK)
        await self.call("Page.navigate", url=url)

    async def wait_for(self, *texts: str, ms: int = 60_000) -> str:
        """The terminal's screen once it shows every one of ``texts``."""
        screen: str = await self.evaluate(f"window.__waitFor({json.dumps(list(texts))}, {ms})")
        return screen

    async def press(self, key: str) -> None:
        """One key press (a printable character) as the keyboard sends it to the page."""
        await self.evaluate("window.__focus()")
        shift = 8 if key.isupper() else 0
        code = f"Key{key.upper()}" if key.isalpha() else ""
        common = {"key": key, "code": code, "windowsVirtualKeyCode": ord(key.upper())}
        await self.call(
            "Input.dispatchKeyEvent", type="keyDown", text=key, modifiers=shift, **common
        )
        await self.call("Input.dispatchKeyEvent", type="keyUp", modifiers=shift, **common)

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        """Kill the browser's whole group and wait for it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        await group_ended(self.process.pid)
        for task in (self._reader, self._drain):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await self.http.close()
