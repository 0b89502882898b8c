"""Stream ingest: stream-json lines per second parsed, stored and published.

    uv run python benchmarks/stream_ingest.py [--agents 4] [--lines 100000] [--rounds 1]
    uv run python benchmarks/stream_ingest.py --profile [headless|dashboard] [--lines 25000]
    uv run python benchmarks/stream_ingest.py --layouts [--lines 100000]

Each agent (benchmarks/firehose.py) prints ``--lines`` lines as fast as it can. Measured in
the same run:

- baseline: the same processes read through a pipe and counted, nothing else;
- headless: the engine's whole path — runner, parser, events (uncondensed), the store's event
  log, the bus;
- with the dashboard attached (Textual's headless driver), the engine running on the
  dashboard's engine thread as it does when a person presses ``r``.

With ``--rounds N`` the headless and dashboard runs alternate N times and the best of each is
kept, which steadies the figures on a shared machine.

Goals: at least 100,000 lines/s headless (4 agents × 100,000 lines), and with the dashboard
attached at least 70 % of headless. The agents themselves take about one of the two cores.

``--profile`` runs the headless path once under cProfile instead and prints where the event
loop's time went, by stage (self time of the functions of each stage); ``--profile dashboard``
profiles the dashboard's own thread (cProfile follows one thread: the engine's is not in it).
``--layouts`` runs the dashboard once and counts the full layouts of its screen while the
agents print (Textual lays a screen out whole), with the widgets that asked for each.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

from dashboard_ingest import FIREHOSE, add_tasks, make_project

from shoemaker.agents.runner import READ_CHUNK
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.events import AgentOutput, Event
from shoemaker.tui.app import ShoemakerApp

FAST = 1e9  # lines per second: as fast as the agent can print
HEADLESS_GOAL = 100_000  # lines per second
DASHBOARD_GOAL = 0.70  # of headless


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


def shown_lines(event: Event) -> int:
    """Lines of agent output an event covers: a batch's ``read`` (the lines it names, which
    counting condenses none of); one for the per-line events of older versions, so the same
    script measures them too."""
    if not isinstance(event, AgentOutput):
        return 0
    read = getattr(event, "read", None)
    return 1 if read is None else int(read)


async def engine_path(root: Path, agents: int, lines: int, dashboard: bool) -> tuple[float, float]:
    """Lines per second of wall time, and per second of this process's CPU time (the
    engine's own cost, whatever else the machine runs)."""
    project = make_project(root, agents, FAST, lines / FAST)
    gen = start_generation(project, "ingest")
    seen = 0

    def count(event: Event) -> None:
        nonlocal seen
        seen += shown_lines(event)

    engine = Engine(project)

    async def run() -> tuple[float, float]:
        # Added here, the counter hears each batch on the engine's loop as it is committed.
        project.bus.add_listener(count)
        add_tasks(project, gen, agents)
        started, cpu = time.perf_counter(), time.process_time()
        await engine.stitch_ready(gen)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await engine.close()
        return seen / elapsed, seen / cpu

    if not dashboard:
        return await run()
    app = ShoemakerApp(project)
    async with app.run_test(size=(160, 48)) as pilot:
        while not app.snapshots_loaded:
            await pilot.pause(0.01)
        # As the dashboard runs a generation (`r`): the engine on its own thread and loop.
        rates = await app.run_engine(run())
        await pilot.press("q")
    return rates


#: Stages of the ingest path, each a test on a profile entry's (file, function) — first match.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("JSON decode", ("json/decoder.py", "json/__init__.py", "orjson.loads", "method 'loads'")),
    (
        "condense",
        (
            "streamjson.py:condense",
            "streamjson.py:_assistant",
            "streamjson.py:_user",
            "streamjson.py:_system",
            "streamjson.py:_result",
            "streamjson.py:_excerpt",
            "streamjson.py:_content_text",
            "streamjson.py:_relative",
            "streamjson.py:_tool_use",
        ),
    ),
    ("parser bookkeeping", ("streamjson.py",)),
    ("SQLite", ("sqlite3.Connection", "sqlite3.Cursor", "store/")),
    ("events: build, serialise", ("shoemaker/events.py", "pydantic", "orjson.dumps")),
    ("redaction, other regexes", ("secrets.py", "re.Pattern")),
    ("bus, agent_call", ("engine/bus.py", "engine/agent_call.py")),
    ("dashboard: Textual, Rich", ("textual/", "rich/", "shoemaker/tui/")),
    ("runner: read, split", ("agents/runner.py", "streams.py", "'bytes' objects", "posix.read")),
    (
        "start-up: imports, git, forks",
        ("builtins.compile", "_posixsubprocess", "<frozen", "subprocess.py", "marshal"),
    ),
]


def stage_of(file: str, name: str) -> str:
    key = f"{file}:{name}"
    for stage, marks in STAGES:
        if any(mark in key for mark in marks):
            return stage
    return "event loop, the rest"


def profile(root: Path, agents: int, lines: int, dashboard: bool, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(engine_path(root, agents, lines, dashboard))
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_stage: Counter[str] = Counter()
    by_function: dict[str, Counter[str]] = {}
    entries = stats.stats  # type: ignore[attr-defined]
    for (file, _, name), (_, _, self_time, _, _) in entries.items():
        stage = stage_of(file, name)
        by_stage[stage] += self_time
        short = f"{'/'.join(Path(file).parts[-2:])}:{name}" if file != "~" else name
        by_function.setdefault(stage, Counter())[short] += self_time
    total = sum(by_stage.values())
    what = "with the dashboard" if dashboard else "headless"
    print(f"cProfile, {what}, {agents} agents × {lines:,} lines: {total:.2f} s of self time")
    for stage, seconds in by_stage.most_common():
        print(f"  {stage:30} {seconds:7.2f} s  {seconds / total:5.1%}")
        for name, own in by_function[stage].most_common(top):
            print(f"      {own / total:5.1%}  {name}")


async def count_layouts(root: Path, agents: int, lines: int) -> None:
    """The dashboard's full layouts while the agents print, and who asked for them."""
    from textual import messages
    from textual.screen import Screen

    timed = False
    asked: set[str] = set()
    layouts: list[tuple[str, ...]] = []
    on_layout, refresh_layout = Screen._on_layout, Screen._refresh_layout
    stitch_ready = Engine.stitch_ready

    async def asking(screen: Screen[object], message: messages.Layout) -> None:
        widget = message.widget
        asked.add(f"{type(widget).__name__}#{widget.id}" if widget.id else type(widget).__name__)
        await on_layout(screen, message)

    def laying_out(screen: Screen[object], *args: object, **kwargs: object) -> None:
        if timed and screen._layout_required:
            layouts.append(tuple(sorted(asked)))
        asked.clear()
        refresh_layout(screen, *args, **kwargs)  # type: ignore[arg-type]

    async def timing(engine: Engine, *args: object) -> object:
        nonlocal timed
        timed = True
        try:
            return await stitch_ready(engine, *args)  # type: ignore[arg-type]
        finally:
            timed = False

    Screen._on_layout = asking  # type: ignore[method-assign,assignment]
    Screen._refresh_layout = laying_out  # type: ignore[method-assign,assignment]
    Engine.stitch_ready = timing  # type: ignore[method-assign,assignment]
    try:
        await engine_path(root, agents, lines, True)
    finally:
        Screen._on_layout, Screen._refresh_layout = on_layout, refresh_layout  # type: ignore[method-assign]
        Engine.stitch_ready = stitch_ready  # type: ignore[method-assign]
    print(f"{agents} agents × {lines:,} lines with the dashboard: {len(layouts)} full layouts")
    for who, count in Counter(layouts).most_common():
        names = ", ".join(who[:6]) + (f" and {len(who) - 6} more" if len(who) > 6 else "")
        print(f"  {count:3} × asked by {names or 'none (a resize)'}")


def transcript_cost(lines: int) -> None:
    """What appending a read to the transcript costs as the runner does it (plain bytes,
    flushed) against compressing each read first, on the firehose's output in 64 KiB reads."""
    out = subprocess.run(
        [sys.executable, str(FIREHOSE), "--rate", str(FAST), "--seconds", str(lines / FAST)],
        input=b"",
        capture_output=True,
        check=True,
    ).stdout
    reads = [out[i : i + READ_CHUNK] for i in range(0, len(out), READ_CHUNK)]
    with tempfile.TemporaryDirectory(prefix="shoemaker-transcript-") as tmp:
        path = Path(tmp) / "run.jsonl"
        results = {}
        with path.open("wb") as plain:
            started = time.perf_counter()
            for chunk in reads:
                plain.write(chunk)
                plain.flush()
            results["plain write"] = (time.perf_counter() - started, len(out))
        for level in (1, 6):
            with path.open("wb") as packed:
                size = 0
                started = time.perf_counter()
                for chunk in reads:
                    block = zlib.compress(chunk, level)
                    size += len(block)
                    packed.write(block)
                    packed.flush()
                results[f"zlib level {level}"] = (time.perf_counter() - started, size)
    count = out.count(b"\n")
    print(f"transcript of {count:,} lines, {len(out) / 1e6:.1f} MB in {len(reads):,} reads:")
    for name, (seconds, size) in results.items():
        print(
            f"  {name:13} {seconds * 1e6 / count:6.2f} µs/line  "
            f"{seconds * 1e6 / len(reads):7.1f} µs/read  {size / 1e6:6.1f} MB"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--lines", type=int, default=100_000, help="lines per agent")
    parser.add_argument("--rounds", type=int, default=1, help="alternate headless/dashboard")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="headless",
        choices=["headless", "dashboard"],
        help="profile one run by stage instead",
    )
    parser.add_argument("--top", type=int, default=4, help="functions shown per stage")
    parser.add_argument(
        "--transcript-cost", action="store_true", help="plain vs compressed transcript writes"
    )
    parser.add_argument(
        "--secret", action="store_true", help="with a secret configured: the redactor works"
    )
    parser.add_argument("--headless-only", action="store_true", help="skip the dashboard")
    parser.add_argument(
        "--layouts", action="store_true", help="count the dashboard's full layouts instead"
    )
    args = parser.parse_args()
    if args.secret:
        # A secret-looking name in shoemaker's environment: every project redacts its value.
        os.environ["STREAM_INGEST_TOKEN"] = "not-printed-by-the-firehose-0123456789"
    if args.transcript_cost:
        transcript_cost(args.agents * args.lines)
        return
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="shoemaker-ingest-", dir=base) as tmp:
        if args.layouts:
            await count_layouts(Path(tmp) / "l", args.agents, args.lines)
            return
        if args.profile:
            dashboard = args.profile == "dashboard"
            await asyncio.to_thread(
                profile, Path(tmp) / "p", args.agents, args.lines, dashboard, args.top
            )
            return
        pipe = await raw_pipe(args.agents, args.lines)
        headless = with_app = (0.0, 0.0)
        for n in range(args.rounds):
            rates = await engine_path(Path(tmp) / f"a{n}", args.agents, args.lines, False)
            headless = max(headless, rates)
            if not args.headless_only:
                rates = await engine_path(Path(tmp) / f"b{n}", args.agents, args.lines, True)
                with_app = max(with_app, rates)
    print(f"{args.agents} agents × {args.lines:,} lines")
    print(f"raw pipe, counted only: {pipe:9,.0f} lines/s (baseline)")
    ok = "holds" if headless[0] >= HEADLESS_GOAL else "MISSED"
    print(
        f"headless engine:        {headless[0]:9,.0f} lines/s  {headless[0] / pipe:.3f} of the"
        f" pipe  goal ≥ {HEADLESS_GOAL:,}: {ok}  ({headless[1]:,.0f} per CPU second)"
    )
    if args.headless_only:
        return
    share = with_app[0] / headless[0] if headless[0] else 0.0
    ok = "holds" if share >= DASHBOARD_GOAL else "MISSED"
    print(
        f"with the dashboard:     {with_app[0]:9,.0f} lines/s  {with_app[0] / pipe:.3f} of the"
        f" pipe  {share:.3f} of headless, goal ≥ {DASHBOARD_GOAL:.2f}: {ok}"
        f"  ({with_app[1]:,.0f} per CPU second)"
    )


if __name__ == "__main__":
    asyncio.run(main())
