"""How soon the dashboard puts something on the screen.

    uv run python benchmarks/first_frame.py [--runs 5]

Starts ``python -m shoemaker tui`` on a fresh repository in a pseudo-terminal (120×36), as a
person would from a shell, and times from the process start until

- the first frame: the first text drawn (the splash, or the dashboard itself);
- the dashboard: the main screen's task queue drawn.

Then presses ``q`` and waits for the process to end. Baseline from the same run: the
interpreter starting and exiting (``python -c pass``).
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from fcntl import ioctl
from pathlib import Path
from termios import TIOCSWINSZ

from shoemaker.git import Git

#: Text only a drawn frame holds (the escape sequences that set a terminal up hold none).
FIRST = (b"shoemaker",)
MAIN = b"Tasks"
#: The first frame should be on the screen within this many milliseconds.
GOAL_MS = 1000


def make_repo(root: Path) -> Path:
    git = Git.init_repo(root / "repo", "main")
    (git.root / "README.md").write_text("first frame\n")
    git.commit_all(git.root, "first frame")
    return git.root


def one_run(repo: Path) -> tuple[float, float]:
    """Seconds to the first frame and to the main screen."""
    leader, follower = pty.openpty()
    ioctl(follower, TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoemaker", "-C", str(repo), "tui"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        start_new_session=True,
    )
    os.close(follower)
    seen = b""
    first = main = 0.0
    try:
        while not main:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                raise SystemExit(f"nothing drawn in 30 s; so far: {seen[-400:]!r}")
            seen += os.read(leader, 65536)
            now = time.perf_counter() - started
            if not first and any(marker in seen for marker in FIRST):
                first = now
            if MAIN in seen:
                main = now
        os.write(leader, b"q")
        while proc.poll() is None:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                try:
                    os.read(leader, 65536)
                except OSError:
                    break
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return first, main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="shoemaker-bench-", dir=base) as tmp:
        repo = make_repo(Path(tmp))
        interpreter = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            interpreter.append(time.perf_counter() - t0)
        firsts, mains = [], []
        for _ in range(args.runs):
            first, main_screen = one_run(repo)
            firsts.append(first)
            mains.append(main_screen)
    ms = [statistics.median(x) * 1000 for x in (interpreter, firsts, mains)]
    print(f"runs: {args.runs} (medians; worst first frame {max(firsts) * 1000:.0f} ms)")
    print(f"interpreter start and exit: {ms[0]:6.0f} ms")
    held = "holds" if ms[1] < GOAL_MS else "missed"
    print(f"first frame:                {ms[1]:6.0f} ms   {ms[1] / ms[0]:5.1f}× the interpreter")
    print(f"main screen:                {ms[2]:6.0f} ms   {ms[2] / ms[0]:5.1f}× the interpreter")
    load = os.getloadavg()[0]
    print(f"goal: first frame under {GOAL_MS:,} ms — {held} (load average {load:.1f})")


if __name__ == "__main__":
    main()
