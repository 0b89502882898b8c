"""Stream ingest: stream-json lines per second parsed, stored and published.

    uv run python benchmarks/stream_ingest.py [--agents 4] [--lines 100000]

Each agent (benchmarks/firehose.py) prints ``--lines`` lines as fast as it can. Measured in
the same run:

- baseline: the same processes read through a pipe and counted, nothing else;
- headless: the engine's whole path — runner, parser, condensed events, the store's event
  log, the bus;
- with the dashboard attached (Textual's headless driver).

Goal: at least 50,000 lines/s headless on this 2-core machine, where the agents themselves
take one core.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from dashboard_ingest import FIREHOSE, add_tasks, make_project

from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.events import AgentOutput, Event
from shoemaker.tui.app import ShoemakerApp

FAST = 1e9  # lines per second: as fast as the agent can print


async def raw_pipe(agents: int, lines: int) -> float:
    async def one() -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(FIREHOSE),
            "--rate",
            str(FAST),
            "--seconds",
            str(lines / FAST),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        count = 0
        while chunk := await proc.stdout.read(1 << 16):
            count += chunk.count(b"\n")
        await proc.wait()
        return count

    started = time.perf_counter()
    counts = await asyncio.gather(*(one() for _ in range(agents)))
    return sum(counts) / (time.perf_counter() - started)


async def engine_path(root: Path, agents: int, lines: int, dashboard: bool) -> float:
    project = make_project(root, agents, FAST, lines / FAST)
    gen = start_generation(project, "ingest")
    seen = 0

    def count(event: Event) -> None:
        nonlocal seen
        if isinstance(event, AgentOutput):
            seen += 1

    project.bus.add_listener(count)
    engine = Engine(project)

    async def run() -> float:
        add_tasks(project, gen, agents)
        started = time.perf_counter()
        await engine.stitch_ready(gen)
        elapsed = time.perf_counter() - started
        await engine.close()
        return seen / elapsed

    if not dashboard:
        return await run()
    app = ShoemakerApp(project)
    async with app.run_test(size=(160, 48)) as pilot:
        while not app.snapshots_loaded:
            await pilot.pause(0.01)
        rate = await run()
        await pilot.press("q")
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--lines", type=int, default=100_000, help="lines per agent")
    args = parser.parse_args()
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="shoemaker-ingest-", dir=base) as tmp:
        pipe = await raw_pipe(args.agents, args.lines)
        headless = await engine_path(Path(tmp) / "a", args.agents, args.lines, False)
        with_app = await engine_path(Path(tmp) / "b", args.agents, args.lines, True)
    print(f"{args.agents} agents × {args.lines:,} lines")
    print(f"raw pipe, counted only: {pipe:9,.0f} lines/s (baseline)")
    print(
        f"headless engine:        {headless:9,.0f} lines/s  {headless / pipe:.2f} of the pipe"
        f"  (goal ≥ 50,000)"
    )
    print(f"with the dashboard:     {with_app:9,.0f} lines/s  {with_app / pipe:.2f} of the pipe")


if __name__ == "__main__":
    asyncio.run(main())
