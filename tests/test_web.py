"""``shoemaker web``: the dashboard in a real headless Chromium, the token rule of a
non-loopback bind, /api/status, and no process left when the browser or the server goes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from agents import new_token, processes_with_token
from chromium import CHROMIUM, Chromium, DevToolsError, group_ended, live_in_group
from shoemaker.cli import main
from shoemaker.demo import prepare_demo
from shoemaker.web.access import is_loopback

#: The tasks measure proposes in the demo repository, in the queue's order.
DEMO_TASKS = [
    "Add slugify",
    "Add word statistics",
    "Add paragraph wrapping",
    "Add reading time estimate",
    "Add the command-line interface",
    "Document the API in the README",
]
#: Long enough for an interpreter and Textual to start on a loaded machine; a wait that
#: succeeds returns as soon as what it waits for happens.
LIMIT_S = 60.0


@pytest.fixture
def demo(fast_tmp: Path) -> Path:
    """The demo repository with its generation started and measure's six tasks proposed (by
    the rehearsal agent, a real process)."""
    repo = prepare_demo(fast_tmp / "demo")
    for verb in (["start", "demo"], ["measure"]):
        done = subprocess.run(
            [sys.executable, "-m", "shoemaker", "-C", str(repo), *verb],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    return repo


class Served:
    """A ``shoemaker web`` process (its own process group) and what it prints."""

    def __init__(self, process: asyncio.subprocess.Process, marker: str) -> None:
        self.process = process
        self.marker = marker
        self.output: list[str] = []
        self.port = 0
        self.token: str | None = None

    async def line(self, pattern: str) -> re.Match[str]:
        """The next printed line that matches ``pattern`` (lines before it are kept)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(LIMIT_S):
            while True:
                raw = await self.process.stdout.readline()
                assert raw, f"the server ended before printing {pattern!r}:\n{self.text}"
                self.output.append(raw.decode())
                if found := re.search(pattern, self.output[-1]):
                    return found

    @property
    def text(self) -> str:
        return "".join(self.output)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self, sig: signal.Signals) -> int:
        """Signal the server, read what it prints to the end, and return its exit status."""
        self.process.send_signal(sig)
        assert self.process.stdout is not None
        async with asyncio.timeout(LIMIT_S):
            self.output.append((await self.process.stdout.read()).decode())
            return await self.process.wait()


@contextlib.asynccontextmanager
async def served(repo: Path, *host: str) -> AsyncIterator[Served]:
    """``shoemaker web --port 0 [--host H]`` on ``repo``, once it listens; afterwards, nothing
    it started may be left."""
    marker = new_token()
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "shoemaker", "-C", str(repo), "web", "--port", "0"],
        *(["--host", *host] if host else []),
        stdout=asyncio.subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SHOEMAKER_TEST_TOKEN": marker},
        start_new_session=True,
    )
    server = Served(process, marker)
    try:
        server.port = int((await server.line(r"on http://\S+:(\d+)/$"))[1])
        if host and not is_loopback(host[0]):
            server.token = (await server.line(r"\?token=([\w-]+)$"))[1]
        await server.line("ctrl\\+c stops it")
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert processes_with_token(marker) == [], server.text
    assert await group_ended(process.pid), live_in_group(process.pid)


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited and been reaped (or is a zombie no one waits for)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


async def status_code(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> int:
    async with http.get(url, headers=headers) as reply:
        return reply.status


async def test_the_dashboard_in_chromium(
    demo: Path, tmp_path: Path, fast_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Served beyond loopback: refused without the token; with it, Chromium shows the demo's
    queue, `G` opens the generations screen, the screenshot is kept; closing the browser ends
    its dashboard, SIGTERM ends the server, and nothing is left."""
    assert CHROMIUM, "the web view's test needs Debian's chromium (.ci/run installs it)"
    async with served(demo, "0.0.0.0") as server, aiohttp.ClientSession() as http:
        assert server.token is not None
        assert await status_code(http, f"{server.base}/") == 401
        async with http.get(
            f"{server.base}/api/status", headers={"Authorization": f"Bearer {server.token}"}
        ) as reply:
            assert [t["title"] for t in (await reply.json())["tasks"]] == DEMO_TASKS

        env = {**os.environ, "SHOEMAKER_TEST_TOKEN": server.marker}
        try:
            browser = await Chromium.launch(fast_tmp / "chromium", env)
        except DevToolsError as exc:
            pytest.skip(f"chromium cannot run here: {exc}")
        try:
            await browser.open(f"{server.base}/?token={server.token}")
            pid = int((await server.line(r"a browser connected: dashboard pid (\d+)"))[1])
            # The dashboard's process is not given the token, nor anything it could log it from.
            for part in ("cmdline", "environ"):
                assert server.token.encode() not in Path(f"/proc/{pid}/{part}").read_bytes()
            screen = await browser.wait_for("Tasks · all", *DEMO_TASKS)
            assert "Cycles" not in screen  # the main screen, not the generations screen
            queue = await browser.screenshot(tmp_path / "web-queue.png")
            await browser.press("G")
            screen = await browser.wait_for("Cycles", "lines changed", "esc Back")
            assert re.search(r"demo\s+active\s+generation-demo\s+main", screen), screen
            generations = await browser.screenshot(tmp_path / "web-generations.png")
            with capsys.disabled():
                print(f"\nweb view screenshots: {queue} {generations}")
            for shot in (queue, generations):
                assert shot.read_bytes().startswith(b"\x89PNG")
        finally:
            await browser.close()
        assert await group_ended(browser.process.pid), live_in_group(browser.process.pid)

        # The browser went: its dashboard, and every process of its group, with it.
        await server.line(rf"the browser left: dashboard pid {pid} ended")
        assert gone(pid) and live_in_group(pid) == []

        assert await server.stop(signal.SIGTERM) == 0
        assert "shoemaker web: stopped" in server.text
        assert server.text.count(server.token) == 1  # the start message alone


async def test_beyond_loopback_every_request_needs_the_token(demo: Path) -> None:
    """A non-loopback bind with no token flag: a token is made and printed, and every page,
    script, status and websocket request without it is refused (401; a wrong one: 403)."""
    async with served(demo, "0.0.0.0") as server, aiohttp.ClientSession() as http:
        token = server.token
        assert token is not None and len(token) >= 40
        assert "every request needs the token" in server.text
        for path in ("/", "/api/status", "/static/js/textual.js"):
            assert await status_code(http, server.base + path) == 401, path
            bad = {"Authorization": "Bearer not-the-token"}
            assert await status_code(http, server.base + path, bad) == 403, path
            assert await status_code(http, f"{server.base}{path}?token={token}") == 200, path
            good = {"Authorization": f"Bearer {token}"}
            assert await status_code(http, server.base + path, good) == 200, path
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{server.base}/ws")
        assert refused.value.status == 401
        assert server.text.count(token) == 1  # no access log: request URLs carry it
        assert await server.stop(signal.SIGINT) == 0


async def test_loopback_needs_no_token_and_a_stop_ends_open_dashboards(demo: Path) -> None:
    """The default bind (127.0.0.1) serves without a token, to loopback names and this
    origin only; SIGINT with a dashboard open ends it before the server exits."""
    async with served(demo) as server, aiohttp.ClientSession() as http:
        assert "no token needed" in server.text and "token=" not in server.text
        assert await status_code(http, f"{server.base}/") == 200
        async with http.get(f"{server.base}/api/status") as reply:
            body = await reply.json()
        assert body["current"] == "demo"
        assert body["generations"][0]["tasks_total"] == len(DEMO_TASKS)
        assert body["totals"]["tasks"] == len(DEMO_TASKS)
        assert [t["state"] for t in body["tasks"]][:2] == ["ready", "ready"]
        # A name resolving to 127.0.0.1 (DNS rebinding), a page of another site: refused.
        rebound = {"Host": f"attacker.example:{server.port}"}
        assert await status_code(http, f"{server.base}/api/status", rebound) == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{server.base}/ws", origin="http://attacker.example")
        assert refused.value.status == 403

        socket = await http.ws_connect(f"{server.base}/ws?width=100&height=30")
        pid = int((await server.line(r"a browser connected: dashboard pid (\d+)"))[1])
        async with asyncio.timeout(LIMIT_S):
            first = await socket.receive()  # the dashboard draws: it is up
        assert first.type == aiohttp.WSMsgType.BINARY
        assert await server.stop(signal.SIGINT) == 0
        assert f"the browser left: dashboard pid {pid} ended" in server.text
        assert gone(pid) and live_in_group(pid) == []
        await socket.close()


def test_bad_ports_are_refused_in_one_line(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(demo), "web", "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["-C", str(demo), "web", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("dashboard.example", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


#: An app that ignores the quit request and SIGTERM, with a child in its group that ignores
#: SIGTERM too; it says "ready" once both ignore it.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(
    [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
     " print('ready', flush=True); time.sleep(600)"],
    stdout=subprocess.PIPE,
)
child.stdout.readline()
print("ready", flush=True)
time.sleep(600)
"""


async def test_an_app_that_will_not_quit_is_killed_with_its_group() -> None:
    """Quit, then SIGTERM, then SIGKILL, each after the grace; and what the app left in its
    group goes with it."""
    from shoemaker.web.session import DashboardSession

    async def nothing(*_: object) -> None:
        return None

    session = DashboardSession(
        [sys.executable, "-c", STUBBORN],
        write_bytes=nothing,
        write_str=nothing,
        close=nothing,
        grace_s=1.0,
    )
    process = await session._open_app_process()
    assert process.stdout is not None
    async with asyncio.timeout(LIMIT_S):
        assert await process.stdout.readline() == b"ready\n"
    assert len(live_in_group(process.pid)) == 2
    await session.close()
    assert process.returncode == -signal.SIGKILL
    assert await group_ended(process.pid), live_in_group(process.pid)
    await session.close()  # a second close is harmless
