"""``demo``: a sample repository and a whole generation on it, in the dashboard or headless."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from shoemaker.cli.common import _attach_output, _open_project, _run_async
from shoemaker.cli.dashboard import _dashboard
from shoemaker.cli.output import _esc
from shoemaker.errors import EXIT_FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    from shoemaker.demo import prepare_demo

    if args.prepare:
        path = prepare_demo(Path(args.prepare), plan=args.plan)
        print(f"demo repository ready in {path}")
        print(f"next: shoemaker -C {path} generation start && shoemaker -C {path} run")
        return 0
    import tempfile

    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="shoemaker-demo-"))
    path = prepare_demo(directory, plan=args.plan)
    args.directory = str(path)
    if not args.headless:
        code = _dashboard(path, demo=True, parallel=args.parallel)
        print(f"demo repository: {path}")
        return code
    return _run_async(_headless_demo(args, path))


async def _headless_demo(args: argparse.Namespace, path: Path) -> int:
    import time

    from shoemaker.engine.ending import stop_generation
    from shoemaker.engine.engine import Engine
    from shoemaker.engine.generation import start_generation
    from shoemaker.headless import summary_table
    from shoemaker.model import TaskState

    project = _open_project(args)
    console = _attach_output(project, "story", show_agent=True)
    console.rule(f"shoemaker demo in {_esc(path)}")
    started = time.monotonic()
    gen = await asyncio.to_thread(start_generation, project, "demo")
    report = await Engine(project, max_parallel=args.parallel).run()
    stop = await asyncio.to_thread(stop_generation, project, None)
    tasks = project.store.list_tasks(gen.name)
    totals = project.store.generation_totals(gen.name)
    done = sum(1 for t in tasks if t.state == TaskState.DONE)
    failed = sum(1 for t in tasks if t.state in (TaskState.FAILED, TaskState.CONFLICT))
    console.print(
        summary_table(
            "demo summary",
            [
                ("tasks done", f"{done}/{len(tasks)}"),
                ("tasks failed", str(failed)),
                ("cycles", str(report.cycles)),
                (
                    "tokens in / out",
                    f"{totals.usage.input_tokens:,} / {totals.usage.output_tokens:,}",
                ),
                (
                    "cache read / created",
                    f"{totals.usage.cache_read_input_tokens:,} / "
                    f"{totals.usage.cache_creation_input_tokens:,}",
                ),
                ("cost", f"${totals.cost_usd:.4f}"),
                (
                    "LOC added / removed",
                    f"+{totals.insertions} / −{totals.deletions}",
                ),
                ("wall time", f"{time.monotonic() - started:.1f}s"),
                ("merged into", f"{stop.generation.base_branch} at {stop.merge_commit[:12]}"),
                ("repository", str(path)),
            ],
        )
    )
    return 0 if failed == 0 else EXIT_FAILED
