"""`shoemaker demo` in a real terminal under tmux: the generation runs on screen, a diff opens
from the keyboard, the app quits, and nothing is left running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents import new_token, processes_with_token

pytestmark = pytest.mark.slow


class Tmux:
    """A private tmux server (its own socket) running one command in one pane."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name]

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            [*self.base, *args], check=True, capture_output=True, text=True
        ).stdout

    def screen(self, history: int = 0) -> str:
        return self("capture-pane", "-p", "-t", "demo", "-S", str(-history))

    def wait_for(self, text: str, limit: float = 120) -> str:
        """Poll the screen until ``text`` shows (a terminal gives no other signal)."""
        deadline = time.monotonic() + limit
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            assert time.monotonic() < deadline, f"{text!r} never appeared:\n{screen}"
            time.sleep(0.1)

    def pane(self, fmt: str) -> str:
        return self("display-message", "-p", "-t", "demo", fmt).strip()


@pytest.fixture
def tmux(fast_tmp: Path) -> Iterator[Tmux]:
    assert shutil.which("tmux"), "tmux is needed for the terminal test (.ci/run installs it)"
    server = Tmux(f"shoemaker-{new_token()[:12]}")
    yield server
    subprocess.run([*server.base, "kill-server"], capture_output=True)


def test_demo_on_screen_diff_and_quit(tmux: Tmux, fast_tmp: Path) -> None:
    token = new_token()
    keep = (
        "PATH",
        "HOME",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_NOSYSTEM",
        "SSL_CERT_FILE",
    )
    env = [f"{k}={os.environ[k]}" for k in keep if k in os.environ]
    env += [f"SHOEMAKER_TEST_TOKEN={token}", "TERM=xterm-256color", "COLORTERM=truecolor"]
    flags = [arg for item in env for arg in ("-e", item)]
    demo = fast_tmp / "demo"
    tmux(
        "new-session",
        "-d",
        "-s",
        "demo",
        "-x",
        "120",
        "-y",
        "36",
        *flags,
        # tmux (3.3) does not always report a dead pane's exit status: a fixed sh line (the
        # test's own text) prints it once the demo has exited.
        "sh",
        "-c",
        '"$0" "$@"; echo "demo exit status: $?"',
        sys.executable,
        "-m",
        "shoemaker",
        "demo",
        "--dir",
        str(demo),
    )
    tmux("set-option", "-t", "demo", "remain-on-exit", "on")

    screen = tmux.wait_for("demo finished")
    assert "Tasks" in screen and "Agent output" in screen and "Metrics" in screen
    assert screen.count(" done ") >= 6 or "6 done" in screen
    assert "stopped" in screen

    tmux("send-keys", "-t", "demo", "d")
    screen = tmux.wait_for("as merged")
    assert "Files" in screen and "diff --git" in screen

    tmux("send-keys", "-t", "demo", "Escape")
    tmux.wait_for("Agent output")
    tmux("send-keys", "-t", "demo", "q")
    deadline = time.monotonic() + 30
    # The sh line has printed the demo's status and exited (the pane is dead).
    while "demo exit status:" not in tmux.screen(history=200) or tmux.pane("#{pane_dead}") != "1":
        assert time.monotonic() < deadline, (
            _leftovers(token)
            + tmux(
                "list-panes",
                "-a",
                "-F",
                "#{pane_dead} #{pane_dead_status} #{pane_dead_signal} #{pane_pid} "
                "#{pane_current_command}",
            )
            + tmux.screen()
        )
        time.sleep(0.1)
    screen = tmux.screen(history=200)
    assert "demo exit status: 0" in screen, screen
    assert f"demo repository: {demo}" in screen
    assert processes_with_token(token) == []


def _leftovers(token: str) -> str:
    out = []
    for pid in processes_with_token(token):
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        out.append(f"{pid} threads={threads} wchan={wchan} {cmd}")
    return "\n".join(out) + "\n"
