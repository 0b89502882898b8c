"""``demo``: a sample repository and a whole generation on it, in the dashboard or headless."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shoemaker.cli.common import CliError, _attach_output, _open_project, _run_async
from shoemaker.cli.dashboard import open_dashboard
from shoemaker.cli.output import _console, _esc
from shoemaker.cli.splash import splash
from shoemaker.errors import EXIT_FAILED

if TYPE_CHECKING:
    from rich.table import Table

    from shoemaker.engine.project import Project
    from shoemaker.tui.app import ShoemakerApp

DEMO_GENERATION = "demo"


def cmd_demo(args: argparse.Namespace) -> int:
    agent = getattr(args, "agent", "rehearsal")
    if agent == "rehearsal":
        return _demo(args, {})
    from shoemaker.demo import DEMO_AGENTS, demo_api

    keys = DEMO_AGENTS[agent]["keys"]
    if args.prepare and not any(os.environ.get(k) for k in keys):
        raise CliError(
            f"--prepare with --agent {agent} needs {' or '.join(keys)}: without it the demo "
            "runs against a mock that lives only as long as `shoemaker demo` itself"
        )
    with demo_api(agent) as (env, note):
        print(f"demo: {note}", file=sys.stderr)
        return _demo(args, env)


def _demo(args: argparse.Namespace, agent_env: dict[str, str]) -> int:
    from shoemaker.demo import prepare_demo

    agent = getattr(args, "agent", "rehearsal")
    if args.prepare:
        path = prepare_demo(
            Path(args.prepare), plan=args.plan, snags=args.snags, agent=agent, agent_env=agent_env
        )
        print(f"demo repository ready in {path}")
        print(f"next: shoemaker -C {path} generation start && shoemaker -C {path} run")
        return 0
    import tempfile

    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="shoemaker-demo-"))
    if args.headless:
        path = prepare_demo(
            directory, plan=args.plan, snags=args.snags, agent=agent, agent_env=agent_env
        )
        args.directory = str(path)
        return _run_async(_headless_demo(args, path))
    with splash(sys.stdout, f"building the demo repository in {directory}…"):
        path = prepare_demo(
            directory, plan=args.plan, snags=args.snags, agent=agent, agent_env=agent_env
        )
    app = open_dashboard(path, demo=True, parallel=args.parallel)
    app.run()
    code = app.return_code or 0
    print(f"demo repository: {path}")
    summary = summary_after_dashboard(app, path)
    if summary is None:
        return code
    table, failed = summary
    _console().print(table)
    return code or (EXIT_FAILED if failed else 0)


def summary_after_dashboard(app: ShoemakerApp, path: Path) -> tuple[Table, int] | None:
    """The headless demo's table for the generation as the person left the dashboard (None
    when the demo never started one)."""
    store = app.project.store
    if app.demo_started is None or all(g.name != DEMO_GENERATION for g in store.list_generations()):
        return None
    ended = app.demo_ended if app.demo_ended is not None else time.monotonic()
    gen = store.get_generation(DEMO_GENERATION)
    return demo_summary(app.project, gen.cycle, ended - app.demo_started, path)


async def _headless_demo(args: argparse.Namespace, path: Path) -> int:
    import asyncio

    from shoemaker.engine.ending import stop_generation
    from shoemaker.engine.engine import Engine
    from shoemaker.engine.generation import start_generation
    from shoemaker.model import TaskState

    project = _open_project(args)
    console = _attach_output(project, "story", show_agent=True)
    console.rule(f"shoemaker demo in {_esc(path)}")
    started = time.monotonic()
    gen = await asyncio.to_thread(start_generation, project, DEMO_GENERATION)
    report = await Engine(project, max_parallel=args.parallel).run()
    waiting = [
        t
        for t in project.store.list_tasks(gen.name)
        if t.state in (TaskState.NEEDS_REVIEW, TaskState.FAILED, TaskState.CONFLICT)
    ]
    if not waiting:  # as in the dashboard: what needs a person keeps the generation open
        await asyncio.to_thread(stop_generation, project, None)
    table, failed = demo_summary(project, report.cycles, time.monotonic() - started, path)
    console.print(table)
    return 0 if failed == 0 else EXIT_FAILED


def demo_summary(project: Project, cycles: int, wall_s: float, path: Path) -> tuple[Table, int]:
    """The demo's closing table (headless and after the dashboard) and how many tasks failed."""
    from shoemaker.headless import summary_table
    from shoemaker.model import GenerationState, TaskState

    gen = project.store.get_generation(DEMO_GENERATION)
    tasks = project.store.list_tasks(gen.name)
    totals = project.store.generation_totals(gen.name)
    done = sum(1 for t in tasks if t.state == TaskState.DONE)
    failed = sum(1 for t in tasks if t.state in (TaskState.FAILED, TaskState.CONFLICT))
    review = sum(1 for t in tasks if t.state == TaskState.NEEDS_REVIEW)
    if gen.state == GenerationState.STOPPED:
        merged = f"{gen.base_branch} at {project.git.rev_parse(f'{gen.name}-merged')[:12]}"
    else:
        merged = f"not merged: {gen.branch} stays open ({gen.state})"
    rows = [
        ("tasks done", f"{done}/{len(tasks)}"),
        ("tasks failed", str(failed)),
        *([("tasks awaiting review", str(review))] if review else []),
        ("cycles", str(cycles)),
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
        ("LOC added / removed", f"+{totals.insertions} / −{totals.deletions}"),
        ("wall time", f"{wall_s:.1f}s"),
        ("merged into", merged),
        ("repository", str(path)),
    ]
    return summary_table("demo summary", rows), failed
