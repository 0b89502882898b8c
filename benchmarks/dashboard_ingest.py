"""Dashboard under load: stream ingest rate and key-press-to-screen latency.

    uv run python benchmarks/dashboard_ingest.py [--agents 4] [--rate 2000] [--seconds 6]

Agents are real processes (benchmarks/firehose.py) run by the real engine through the real
runner, each printing ``--rate`` stream-json lines per second. Measured in the same run:

- headless baseline: the engine alone, lines per second parsed, stored and published;
- dashboard: the same load with the app attached (headless Textual driver), lines per second
  that reached the output buffers, and key-press-to-screen latency (p50, p95) while loaded,
  against the same key presses on the idle dashboard;
- the task screen: the same load once more, with the task screen open on a running task (it
  reloads that task's log every second) and its tab keys pressed, against the same keys on
  the task screen before the load;
- memory: resident size before and after the loaded phase.

Ratios are printed because absolute times drift on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from textual import events

from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.events import AgentOutput, Event
from shoemaker.git import Git
from shoemaker.model import Generation, TaskState
from shoemaker.store import NewTask
from shoemaker.tui.app import ShoemakerApp
from shoemaker.tui.task_screen import TaskScreen

FIREHOSE = Path(__file__).resolve().parent / "firehose.py"
#: Key → screen under load, p95, on the main screen and on the task screen of a running task.
GOAL_MS = 50.0


def verdict(p95: float) -> str:
    return f"goal: p95 under {GOAL_MS:.0f} ms — {'holds' if p95 < GOAL_MS else 'missed'}"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_project(root: Path, agents: int, rate: float, seconds: float) -> Project:
    git = Git.init_repo(root / "repo")
    (git.root / "README.md").write_text("bench\n")
    config = {
        "worktree_dir": str(root / "worktrees"),
        "max_parallel": agents,
        "agent": {
            "command": sys.executable,
            "args": [str(FIREHOSE), "--rate", str(rate), "--seconds", str(seconds)],
            "idle_timeout_sec": 60,
            "max_time_sec": 600,
        },
    }
    (git.root / "configuration.yaml").write_text(yaml.safe_dump(config))
    git.commit_all(git.root, "bench")
    return Project.open(git.root)


def add_tasks(project: Project, gen: Generation, count: int) -> None:
    project.store.add_tasks(gen.name, [NewTask(f"load {i}") for i in range(count)], 1, "bench")


async def headless(root: Path, agents: int, rate: float, seconds: float) -> float:
    project = make_project(root, agents, rate, seconds)
    gen = start_generation(project, "headless")
    add_tasks(project, gen, agents)
    lines = 0

    def count(event: Event) -> None:
        nonlocal lines
        if isinstance(event, AgentOutput):
            lines += event.read  # counted without condensing

    project.bus.add_listener(count)
    started = time.perf_counter()
    await Engine(project).stitch_ready(gen)
    return lines / (time.perf_counter() - started)


async def press_latencies(
    app: ShoemakerApp, presses: int, stop: asyncio.Event | None = None
) -> list[float]:
    """Seconds from a key arriving until the screen has been redrawn after handling it: ``f``
    (the queue's filter) on the main screen.

    The key goes through the app's own key dispatch (as a terminal's would); the clock stops
    in a callback that runs after the next refresh of the screen.
    """
    keys = ["f"] * presses
    return await _latencies(app, keys, lambda: str(app.queue.border_title), stop)


async def tab_latencies(
    app: ShoemakerApp, screen: TaskScreen, presses: int, stop: asyncio.Event | None = None
) -> list[float]:
    """The same for the task screen's tab keys, ``a`` (attempts) and ``l`` (log) in turn."""
    keys = ["a" if n % 2 == 0 else "l" for n in range(presses)]
    return await _latencies(app, keys, lambda: screen.active_tab, stop)


async def _latencies(
    app: ShoemakerApp,
    keys: list[str],
    shown: Callable[[], str],
    stop: asyncio.Event | None,
) -> list[float]:
    samples = []
    for key in keys:
        if stop is not None and stop.is_set():
            break
        drawn = asyncio.Event()
        before = shown()
        t0 = time.perf_counter()
        app.post_message(events.Key(key, key))
        while shown() == before:
            await asyncio.sleep(0.001)
        app.call_after_refresh(drawn.set)
        await drawn.wait()
        samples.append(time.perf_counter() - t0)
        await asyncio.sleep(0.05)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def dashboard(root: Path, agents: int, rate: float, seconds: float) -> dict[str, float]:
    project = make_project(root, agents, rate, seconds)
    gen = start_generation(project, "dash")
    app = ShoemakerApp(project)
    result: dict[str, float] = {}
    async with app.run_test(size=(160, 48)) as pilot:
        while not app.snapshots_loaded:
            await pilot.pause(0.01)
        idle = await press_latencies(app, 40)
        add_tasks(project, gen, agents)
        rss_before = rss_mb()
        done = asyncio.Event()
        received_before = app.buffers.received
        started = time.perf_counter()

        async def run() -> None:
            # As the dashboard runs its engine: on a thread and event loop of its own.
            await app.run_engine(Engine(project).stitch_ready(gen))
            done.set()

        worker = asyncio.create_task(run())
        loaded: list[float] = []
        memory = [rss_before]
        while not done.is_set():
            loaded += await press_latencies(app, 10, stop=done)
            memory.append(rss_mb())
        await worker
        elapsed = time.perf_counter() - started
        result = {
            "ingest": (app.buffers.received - received_before) / elapsed,
            "idle_p50": pct(idle, 0.5),
            "idle_p95": pct(idle, 0.95),
            "load_p50": pct(loaded, 0.5),
            "load_p95": pct(loaded, 0.95),
            "samples": len(loaded),
            "rss_before": rss_before,
            "rss_after": rss_mb(),
            "rss_mid": memory[len(memory) // 2],
        }
        await pilot.press("q")
    return result


async def task_screen(root: Path, agents: int, rate: float, seconds: float) -> dict[str, float]:
    """Key → screen on the task screen of a running task, loaded and idle."""
    project = make_project(root, agents, rate, seconds)
    gen = start_generation(project, "task")
    app = ShoemakerApp(project)
    async with app.run_test(size=(160, 48)) as pilot:
        while not app.snapshots_loaded:
            await pilot.pause(0.01)
        add_tasks(project, gen, agents)
        first = project.store.list_tasks(gen.name)[0].id
        screen = TaskScreen(project, first)
        await app.push_screen(screen)
        while screen.loads == 0:
            await pilot.pause(0.01)
        idle = await tab_latencies(app, screen, 40)
        done = asyncio.Event()

        async def run() -> None:
            # As the dashboard runs its engine: on a thread and event loop of its own.
            await app.run_engine(Engine(project).stitch_ready(gen))
            done.set()

        worker = asyncio.create_task(run())
        while not (screen.detail is not None and screen.detail.task.state == TaskState.RUNNING):
            await pilot.pause(0.01)
        loaded: list[float] = []
        lines = 0
        while not done.is_set() and screen.live:
            loaded += await tab_latencies(app, screen, 10, stop=done)
            lines = max(lines, len(screen.detail.log) if screen.detail else 0)
        await worker
        await pilot.press("escape", "q")
    return {
        "idle_p50": pct(idle, 0.5),
        "idle_p95": pct(idle, 0.95),
        "load_p50": pct(loaded, 0.5),
        "load_p95": pct(loaded, 0.95),
        "samples": len(loaded),
        "log_lines": lines,
    }


def print_task_screen(task: dict[str, float]) -> None:
    print(
        f"task screen on a running task, tab keys: idle p50 {task['idle_p50']:6.1f} ms   "
        f"p95 {task['idle_p95']:6.1f} ms"
    )
    print(
        f"task screen, loaded:    p50 {task['load_p50']:6.1f} ms   p95 {task['load_p95']:6.1f} ms"
        f"   ({int(task['samples'])} presses, the log up to {int(task['log_lines']):,} lines;"
        f" {verdict(task['load_p95'])})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--rate", type=float, default=2000, help="lines per second per agent")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument(
        "--task-screen-only",
        action="store_true",
        help="run only the task screen's phase (its idle and loaded tab keys)",
    )
    args = parser.parse_args()
    offered = args.agents * args.rate
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    if args.task_screen_only:
        with tempfile.TemporaryDirectory(prefix="shoemaker-bench-", dir=base) as tmp:
            task = await task_screen(Path(tmp), args.agents, args.rate, args.seconds)
        print_task_screen(task)
        print(f"load average when it ended: {os.getloadavg()[0]:.1f}")
        return
    with tempfile.TemporaryDirectory(prefix="shoemaker-bench-", dir=base) as tmp:
        head = await headless(Path(tmp) / "a", args.agents, args.rate, args.seconds)
        dash = await dashboard(Path(tmp) / "b", args.agents, args.rate, args.seconds)
        task = await task_screen(Path(tmp) / "c", args.agents, args.rate, args.seconds)
    print(
        f"offered load: {args.agents} agents × {args.rate:,.0f} lines/s = {offered:,.0f} lines/s"
        f" for {args.seconds:g}s"
    )
    print(f"ingest, headless:       {head:9,.0f} lines/s  ({head / offered:.2f} of offered)")
    print(
        f"ingest, with dashboard: {dash['ingest']:9,.0f} lines/s  "
        f"({dash['ingest'] / offered:.2f} of offered, {dash['ingest'] / head:.2f} of headless)"
    )
    print(
        f"key → screen, idle:     p50 {dash['idle_p50']:6.1f} ms   p95 {dash['idle_p95']:6.1f} ms"
    )
    print(
        f"key → screen, loaded:   p50 {dash['load_p50']:6.1f} ms   p95 {dash['load_p95']:6.1f} ms"
        f"   ({int(dash['samples'])} presses)"
    )
    print(
        f"latency ratio loaded/idle: p50 {dash['load_p50'] / dash['idle_p50']:.2f}×   "
        f"p95 {dash['load_p95'] / dash['idle_p95']:.2f}×   ({verdict(dash['load_p95'])})"
    )
    print_task_screen(task)
    print(f"load average when it ended: {os.getloadavg()[0]:.1f}")
    print(
        f"memory: {dash['rss_before']:.0f} MB before the load, {dash['rss_mid']:.0f} MB halfway,"
        f" {dash['rss_after']:.0f} MB after (output buffers are bounded; run longer with"
        " --seconds to see it stay flat)"
    )


if __name__ == "__main__":
    asyncio.run(main())
