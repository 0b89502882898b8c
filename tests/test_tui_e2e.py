"""`shoemaker demo --snags` in a real terminal under tmux: the generation runs on screen, a task
waits for review and one fails its gate; the keyboard alone reviews, looks and quits, the
summary follows, and nothing is left running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from agents import new_token, processes_with_token

pytestmark = pytest.mark.slow

#: How long the screen may take to show what a key did, or the demo to quit and print its
#: summary, on a loaded machine: a bound so that a bug fails instead of hanging.
SCREEN_LIMIT_S = 120.0


class Tmux:
    """A private tmux server (its own socket) running one command in one pane."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name]
        # The server's environment is the panes' too: COLUMNS and LINES set by the test runner
        # would override the pane's own size.
        self.env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            [*self.base, *args], check=True, capture_output=True, text=True, env=self.env
        ).stdout

    def screen(self, history: int = 0) -> str:
        return self("capture-pane", "-p", "-t", "demo", "-S", str(-history))

    def wait_for(self, text: str, limit: float = SCREEN_LIMIT_S) -> str:
        """Poll the screen until ``text`` shows (a terminal gives no other signal)."""
        deadline = time.monotonic() + limit
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            assert time.monotonic() < deadline, f"{text!r} never appeared:\n{screen}"
            time.sleep(0.1)

    def wait_gone(self, text: str, limit: float = SCREEN_LIMIT_S) -> str:
        """Poll the screen until ``text`` has gone from it."""
        deadline = time.monotonic() + limit
        while True:
            screen = self.screen()
            if text not in screen:
                return screen
            assert time.monotonic() < deadline, f"{text!r} never went:\n{screen}"
            time.sleep(0.1)

    def pane(self, fmt: str) -> str:
        return self("display-message", "-p", "-t", "demo", fmt).strip()


@pytest.fixture
def tmux(fast_tmp: Path) -> Iterator[Tmux]:
    assert shutil.which("tmux"), "tmux is needed for the terminal test (.ci/run installs it)"
    server = Tmux(f"shoemaker-{new_token()[:12]}")
    yield server
    subprocess.run([*server.base, "kill-server"], capture_output=True)


def test_demo_with_snags_driven_from_the_keyboard(tmux: Tmux, fast_tmp: Path) -> None:
    """The demo with a task that waits for review and one whose gate fails, handled from the
    keyboard only: review queue, filter, diff, approve, the failed gate's output, a refused
    stop, quit; then the summary table, and no process of the run left."""
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
        "--snags",
        "--dir",
        str(demo),
    )
    tmux("set-option", "-t", "demo", "remain-on-exit", "on")
    keys = partial(tmux, "send-keys", "-t", "demo")

    screen = tmux.wait_for("some tasks need you")
    assert "1 awaiting review · 1 failed" in screen
    assert "Tasks" in screen and "Agent output" in screen and "Metrics" in screen

    keys("v")  # the review queue: the licence task alone
    screen = tmux.wait_for("Tasks · needs_review")
    assert [r.split()[1:3] for r in queue_rows(screen)] == [["#3", "Add"]], screen
    keys("f")  # the filter goes on from the review queue, and the review task is not in it
    screen = tmux.wait_for("Tasks · verifying")
    assert queue_rows(screen) == [], screen
    keys("v")  # back to the review queue
    tmux.wait_for("Tasks · needs_review")
    keys("d")  # the review task's own diff
    screen = tmux.wait_for("diff --git a/LICENSE b/LICENSE")
    assert "Add the licence" in screen and "+MIT License" in screen
    keys("Escape")
    tmux.wait_for("Tasks · needs_review")
    keys("a")  # approved: merged into the generation
    tmux.wait_for("task #3: done")
    tmux.wait_for("demo active · 1 failed")

    keys("v", "f", "f", "f", "f")  # every task, then the filter cycles to the failed ones
    screen = tmux.wait_for("Tasks · failed")
    assert [r.split()[1:4] for r in queue_rows(screen)] == [["#4", "Add", "title"]], screen
    keys("Enter")  # its task screen; a key sent before it is up would go to the main screen
    tmux.wait_for("shoemaker — task #4")
    keys("a")  # on its attempts: the failed gate's output
    screen = tmux.wait_for("AssertionError")
    assert "verifying: tests… failed (exit 1" in screen
    # (notifications may cover the right of the line)
    assert "FAILED tests/test_titlecase.py::test_small_words" in screen, screen
    keys("Escape")
    tmux.wait_for("Tasks · failed")

    keys("s")
    screen = tmux.wait_for("Stop generation demo?")
    assert "left undone" in screen and "Add title casing" in screen, screen
    keys("Enter")  # No has the focus: the generation stays open
    screen = tmux.wait_gone("Stop generation demo?")
    assert "demo active" in screen.splitlines()[0]

    keys("q")
    deadline = time.monotonic() + SCREEN_LIMIT_S
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
    # A failed task fails the demo, as headless; its summary follows the dashboard.
    assert "demo exit status: 1" in screen, screen
    assert f"demo repository: {demo}" in screen
    summary = screen[screen.index("demo summary") :]
    for row in ("tasks done", "7/8", "tasks failed", "LOC added / removed", "wall time"):
        assert row in summary, summary
    assert "not merged: generation-demo stays open (active)" in summary
    assert processes_with_token(token) == []
    refs = subprocess.run(
        ["git", "-C", str(demo), "for-each-ref", "--format=%(refname)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    # The refused stop changed nothing: the generation is open, nothing merged into main.
    assert "refs/heads/generation-demo" in refs and "refs/tags/demo-merged" not in refs


def queue_rows(screen: str) -> list[str]:
    """The task rows the queue panel shows (``│ #3  Add the licence  needs review …``)."""
    lines = screen.splitlines()
    top = next(n for n, line in enumerate(lines) if "Tasks · " in line)
    rows = []
    for line in lines[top + 2 :]:
        if line.startswith("╰"):
            break
        if line.startswith("│ #"):
            rows.append(line)
    return rows


def _leftovers(token: str) -> str:
    out = []
    for pid in processes_with_token(token):
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        out.append(f"{pid} threads={threads} wchan={wchan} {cmd}")
    return "\n".join(out) + "\n"
