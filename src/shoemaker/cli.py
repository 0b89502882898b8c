"""The ``shoemaker`` command line.

Imports are deferred into each command so that ``shoemaker --help`` stays fast and never loads
Textual. Exit codes: 0 success, 1 the work failed (an agent, a merge, measure), 2 bad input
(configuration, arguments, a refused lifecycle verb), 3 a budget paused the generation and
ended the run, 130/143 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoemaker.errors import EXIT_BAD_INPUT, EXIT_FAILED, BadInput, ShoemakerError, one_line

if TYPE_CHECKING:
    from rich.console import Console

    from shoemaker.engine.engine import Selection
    from shoemaker.engine.project import Project
    from shoemaker.model import Generation

EXIT_BUDGET = 3
EXIT_CODES = (
    "exit codes: 0 success; 1 the work failed (an agent, a gate, a merge, measure); 2 bad "
    "input; 3 a budget paused the generation (`shoemaker list` says which); 130/143 "
    "interrupted"
)


class CliError(BadInput):
    """Bad input found by the command line itself: a message, exit code 2."""


# -- helpers ----------------------------------------------------------------------------------


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _esc(text: object) -> str:
    """``text`` as data for Rich: a title like ``Fix [/] and [bold]`` is printed, not parsed."""
    from rich.markup import escape

    return escape(str(text))


def _open_project(args: argparse.Namespace) -> Project:
    from shoemaker.engine.project import Project

    return Project.open(Path(args.directory))


def _current(project: Project) -> Generation:
    """The generation commands act on; none is bad input (exit 2) with what to do."""
    from shoemaker.engine.generation import current_generation

    return current_generation(project)


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro``; SIGINT/SIGTERM cancel it so agents are stopped and the store stays sane."""

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        got: list[int] = []

        def stop(signum: int) -> None:
            got.append(signum)
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        try:
            return await coro
        except asyncio.CancelledError:
            if got:
                print(
                    f"shoemaker: interrupted by {signal.Signals(got[0]).name}; agents stopped",
                    file=sys.stderr,
                )
                return 128 + got[0]
            raise

    return asyncio.run(main())


def _attach_output(project: Project, events: str, show_agent: bool) -> Console:
    """Wire the event stream to the terminal; returns the console for human messages."""
    from shoemaker.headless import NdjsonPrinter, StoryPrinter

    if events == "ndjson":
        project.bus.add_listener(NdjsonPrinter(sys.stdout))
        return _console(stderr=True)
    console = _console()
    if events == "story":
        project.bus.add_listener(StoryPrinter(console, show_agent=show_agent))
    return console


# -- commands ---------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from shoemaker.config import default_config_text, write_default_config

    if args.print:
        sys.stdout.write(default_config_text())
        return 0
    path = write_default_config(Path(args.directory), force=args.force)
    print(f"wrote {path}")
    return 0


def cmd_transcript(args: argparse.Namespace) -> int:
    from shoemaker.agents.streamjson import format_summary, summarize_file

    path = Path(args.file)
    try:
        summary = summarize_file(path)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file; give a stream-json transcript file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory; give a stream-json transcript file") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot be read ({exc.strerror}); check the path") from None
    if summary.lines and summary.bad_lines == summary.lines:
        raise CliError(
            f"{path}: none of its {summary.lines} line(s) is stream-json (JSON objects in "
            "UTF-8); give a transcript written with --output-format stream-json"
        )
    if args.json:
        print(json.dumps(summary.as_json(), indent=2, allow_nan=False))
    else:
        print(format_summary(summary))
    return 0


def _lifecycle(
    action: Callable[[Project, argparse.Namespace], str],
) -> Callable[[argparse.Namespace], int]:
    """A lifecycle verb: open the project, act, print what happened; a refusal exits 2."""

    def command(args: argparse.Namespace) -> int:
        print(action(_open_project(args), args))
        return 0

    return command


def _start(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.generation import start_generation

    gen = start_generation(project, args.name)
    return f"generation {gen.name} started on branch {gen.branch} (base {gen.base_branch})"


def _stop(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.generation import stop_generation

    report = stop_generation(project)
    gen = report.generation
    lines = [
        f"generation {gen.name} merged into {gen.base_branch} at {report.merge_commit[:12]}; "
        f"tags {gen.name}-finished and {gen.name}-merged"
    ]
    lines += [f"  kept unmerged work on branch {b}" for b in report.kept_branches]
    return "\n".join(lines)


def _reset(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.generation import find_generation, reset_generation

    named = find_generation(project, args.name) if args.name else None
    report = reset_generation(project, named)
    gen = report.generation
    return (
        f"generation {gen.name} abandoned: its last commit is tagged {report.tag}; "
        f"{gen.base_branch} is checked out; removed {len(report.branches_removed)} branch(es) "
        f"and {report.worktrees_removed} worktree(s)"
    )


def _switch(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.generation import switch_generation

    gen = switch_generation(project, args.name)
    return f"switched to generation {gen.name} ({gen.state}) on branch {gen.branch}"


def _revert(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.generation import revert_task

    commit = revert_task(project, args.task, retry=args.retry)
    then = "it runs again in the next run" if args.retry else "it is cancelled"
    return f"task #{args.task} reverted by {commit[:12]}; {then}"


def _pause(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.generation import pause_generation

    return pause_generation(project)


def cmd_generation_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from shoemaker.model import TaskState

    project = _open_project(args)
    rows = []
    for gen in project.store.list_generations():
        tasks = project.store.list_tasks(gen.name)
        totals = project.store.generation_totals(gen.name)
        done = sum(1 for t in tasks if t.state == TaskState.DONE)
        rows.append(
            {
                "name": gen.name,
                "state": gen.state.value,
                "branch": gen.branch,
                "base_branch": gen.base_branch,
                "cycle": gen.cycle,
                "reason": gen.reason,
                "tasks_done": done,
                "tasks_total": len(tasks),
                "cost_usd": round(totals["cost_usd"], 6),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no generations yet; start one with `shoemaker generation start`")
        return 0
    table = Table("name", "state", "base", "cycle", "tasks", "cost")
    for r in rows:
        table.add_row(
            _esc(r["name"]),
            _esc(_state_text(str(r["state"]), str(r["reason"]))),
            _esc(r["base_branch"]),
            str(r["cycle"]),
            f"{r['tasks_done']}/{r['tasks_total']}",
            f"${r['cost_usd']:.4f}",
        )
    _console().print(table)
    return 0


def _state_text(state: str, reason: str) -> str:
    """A generation's state for people; a paused one says why (a budget, a pause, a stop)."""
    if state != "paused" or not reason or reason == "paused":
        return state
    return reason if reason.startswith("paused") else f"paused: {reason}"


def cmd_tasks(args: argparse.Namespace) -> int:
    from rich.table import Table

    from shoemaker.headless import STATE_STYLE

    project = _open_project(args)
    gen = _current(project)
    tasks = project.store.list_tasks(gen.name)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": t.id,
                        "title": t.title,
                        "state": t.state.value,
                        "depends_on": t.depends_on,
                        "attempts": t.attempts,
                        "reason": t.reason,
                    }
                    for t in tasks
                ],
                indent=2,
            )
        )
        return 0
    state = _state_text(gen.state.value, gen.reason)
    table = Table(
        "id",
        "state",
        "title",
        "after",
        "attempts",
        "reason",
        title=f"generation {_esc(gen.name)}" + (f" — {_esc(state)}" if state != "active" else ""),
    )
    for t in tasks:
        style = STATE_STYLE.get(t.state.value, "")
        table.add_row(
            str(t.id),
            f"[{style}]{t.state.value}[/]",
            _esc(t.title),
            " ".join(f"#{d}" for d in t.depends_on),
            str(t.attempts),
            _esc(t.reason),
        )
    _console().print(table)
    return 0


async def _engine_call(
    project: Project, action: Callable[[Any], Coroutine[Any, Any, Any]], parallel: int | None
) -> Any:
    from shoemaker.engine.engine import Engine

    return await action(Engine(project, max_parallel=parallel))


def _require_generation(project: Project) -> None:
    """Refuse early, with exit code 2, when there is no generation to work on or a gate that
    cannot run."""
    from shoemaker.engine.gates import gate_problems

    _current(project)
    problems = gate_problems(project.config.gates, project.root)
    if problems:
        raise CliError("\n".join(problems))


def _refuse_linked_docs(project: Project) -> None:
    """Refuse (exit 2) before measure runs when a document it would read is a link out of
    the repository: nothing is measured, stored or shown."""
    from shoemaker.engine.measure import MeasureError, collect_docs

    cfg = project.config
    try:
        collect_docs(project.root, cfg.doc_globs, cfg.max_doc_bytes)
    except MeasureError as exc:
        raise CliError(str(exc)) from None


def _before_run(project: Project, args: argparse.Namespace) -> Selection | None:
    """Refusals of ``run`` that are bad input (exit 2), before anything starts: a checkout
    merges cannot land in (not the generation branch; a person's merge or staged files), a
    plan that waits for approval, unknown ids in ``--only``/``--skip``/``--from``. Returns the
    selection, if any."""
    from shoemaker.engine.engine import Selection
    from shoemaker.engine.plans import refuse_waiting_plans
    from shoemaker.engine.project import RunLock
    from shoemaker.engine.recovery import check_main_checkout

    gen = _current(project)
    selection = None
    if args.only or args.skip or args.start:
        selection = Selection(frozenset(args.only), frozenset(args.skip), args.start)
    lock = RunLock(project)
    # While another run holds the lock, its merge may be half done: Engine.run refuses
    # that run (the lock) without looking at the checkout.
    if lock.acquire():
        try:
            check_main_checkout(project, gen)
        finally:
            lock.release()
    refuse_waiting_plans(project, gen)
    if selection is not None:
        selection.check(project.store.list_tasks(gen.name))
    return selection


def cmd_run(args: argparse.Namespace) -> int:
    project = _open_project(args)
    _require_generation(project)
    console = _attach_output(project, args.events, show_agent=not project.config.silence_agent)

    selection = _before_run(project, args)
    if selection is None:
        _refuse_linked_docs(project)

    async def go() -> int:
        from shoemaker.engine.engine import Engine

        engine = Engine(project, max_parallel=args.parallel)
        report = await engine.run(args.cycles, selection)
        console.print(
            f"run finished after {report.cycles} cycle(s): {report.merged} merged, "
            f"{report.failed} failed ({_esc(report.stopped_because)})"
        )
        if report.budget:
            return EXIT_BUDGET
        return EXIT_FAILED if report.failed else 0

    return _run_async(go())


def cmd_measure(args: argparse.Namespace) -> int:
    project = _open_project(args)
    _require_generation(project)
    _refuse_linked_docs(project)
    console = _attach_output(project, args.events, show_agent=not project.config.silence_agent)

    async def go() -> int:
        tasks = await _engine_call(project, lambda e: e.measure_once(), None)
        console.print(f"measure added {len(tasks)} task(s)")
        return 0

    return _run_async(go())


def _print_estimate(estimate: Any, as_json: bool) -> None:
    from rich.table import Table

    if as_json:
        print(
            json.dumps(
                {
                    "tasks": [
                        {
                            "id": t.task_id,
                            "title": t.title,
                            "input_tokens": t.input_tokens,
                            "output_tokens": t.output_tokens,
                            "usd": round(t.usd, 6),
                            "basis": t.basis,
                        }
                        for t in estimate.tasks
                    ],
                    "total_tokens": estimate.total_tokens,
                    "total_usd": round(estimate.total_usd, 6),
                    "model": estimate.model,
                    "assumptions": estimate.assumptions,
                },
                indent=2,
            )
        )
        return
    table = Table("id", "task", "tokens in", "tokens out", "cost", "from", title="estimate")
    for t in estimate.tasks:
        table.add_row(
            str(t.task_id),
            _esc(t.title),
            f"{t.input_tokens:,}",
            f"{t.output_tokens:,}",
            f"${t.usd:.4f}",
            t.basis,
        )
    table.add_section()
    table.add_row(
        "", "total", f"{estimate.total_tokens:,} tokens", "", f"${estimate.total_usd:.4f}", ""
    )
    console = _console()
    console.print(table)
    for line in estimate.assumptions:
        console.print(f"[dim]assumes {_esc(line)}[/]")


def cmd_doctor(args: argparse.Namespace) -> int:
    """The preflight checklist; exit 1 when a check fails."""
    from shoemaker.engine.doctor import run_checks

    project = _open_project(args)
    console = _console()
    checks = run_checks(project)
    for check in checks:
        mark = "[green]✓[/]" if check.ok else "[bold red]✗[/]"
        console.print(f"{mark} [b]{check.name}[/]: {_esc(check.detail)}", highlight=False)
        if not check.ok:
            console.print(f"    fix: {_esc(check.fix)}")
    failed = sum(1 for c in checks if not c.ok)
    console.print("all checks passed" if not failed else f"{failed} check(s) failed")
    return EXIT_FAILED if failed else 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from shoemaker.engine.estimate import estimate_tasks, open_tasks

    project = _open_project(args)
    gen = _current(project)
    tasks = open_tasks(project, gen)
    if not tasks and not args.json:
        print("no task waits to run; `shoemaker plan` proposes some and estimates them")
        return 0
    _print_estimate(estimate_tasks(project, gen, tasks), args.json)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Measure into a plan file with its estimate (executing nothing), or list plans."""
    from shoemaker.engine.plans import make_plan

    project = _open_project(args)
    gen = _current(project)
    if args.verb == "list":
        plans = project.store.list_plans(gen.name)
        if not plans:
            print("no plan yet; `shoemaker plan` makes one")
        for plan in plans:
            print(f"plan {plan.id}: {plan.state} {plan.path} {plan.reason}".rstrip())
        return 0
    _refuse_linked_docs(project)
    console = _attach_output(project, args.events, show_agent=not project.config.silence_agent)

    async def go() -> int:
        plan, tasks, estimate = await make_plan(project, gen)
        _print_estimate(estimate, as_json=False)
        console.print(
            f"plan {plan.id}: {len(tasks)} task(s) written to {_esc(plan.path)}; nothing has run. "
            f"Approve it with `shoemaker approve {plan.id}`."
        )
        return 0

    return _run_async(go())


def _plan_verb(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine import plans
    from shoemaker.model import IllegalTransition

    plan = plans.find_plan(project, args.plan)
    try:
        if args.verb == "approve":
            plans.approve_plan(project, plan)
            return f"plan {plan.id} approved; `shoemaker run` executes its tasks"
        if args.verb == "reject":
            cancelled = plans.reject_plan(project, plan, args.note or "")
            return f"plan {plan.id} rejected; {len(cancelled)} task(s) cancelled"
        commits = plans.rollback_plan(project, plan)
        return f"plan {plan.id} rolled back: {len(commits)} task(s) reverted"
    except IllegalTransition as exc:
        from shoemaker.errors import GenerationError

        raise GenerationError(f"{exc}; see `shoemaker plan list`") from None


def cmd_review(args: argparse.Namespace) -> int:
    """List the tasks waiting for review, or approve or reject one."""
    from shoemaker.engine import review
    from shoemaker.model import TaskState

    project = _open_project(args)
    gen = _current(project)
    if args.verb is None:
        waiting = project.store.list_tasks(gen.name, [TaskState.NEEDS_REVIEW])
        if not waiting:
            print("no task is waiting for review")
        for t in waiting:
            print(f"#{t.id} {t.title} — {t.reason} (branch {t.branch})")
        return 0

    async def go() -> int:
        if args.verb == "approve":
            outcome = await review.approve(project, gen, args.task)
        else:
            outcome = await review.reject(project, gen, args.task, args.note or "")
        print(f"task #{outcome.task_id}: {outcome.state.value} ({outcome.reason})")
        return 0 if outcome.state in (TaskState.DONE, TaskState.READY) else EXIT_FAILED

    return _run_async(go())


def cmd_demo(args: argparse.Namespace) -> int:
    from shoemaker.demo import prepare_demo

    if args.prepare:
        path = prepare_demo(Path(args.prepare))
        print(f"demo repository ready in {path}")
        print(f"next: shoemaker -C {path} generation start && shoemaker -C {path} run")
        return 0
    import tempfile

    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="shoemaker-demo-"))
    path = prepare_demo(directory)
    args.directory = str(path)
    if not args.headless:
        code = _dashboard(path, demo=True, parallel=args.parallel)
        print(f"demo repository: {path}")
        return code
    return _run_async(_headless_demo(args, path))


def _dashboard(
    directory: Path, *, attach: bool = False, demo: bool = False, parallel: int | None = None
) -> int:
    from shoemaker.tui.app import make_app

    app = make_app(directory, mode="attach" if attach else "live", demo=demo, parallel=parallel)
    app.run()
    return app.return_code or 0


def cmd_tui(args: argparse.Namespace) -> int:
    return _dashboard(Path(args.directory), attach=args.attach, parallel=args.parallel)


async def _headless_demo(args: argparse.Namespace, path: Path) -> int:
    import time

    from shoemaker.engine.engine import Engine
    from shoemaker.engine.generation import start_generation, stop_generation
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
                    f"{int(totals['input_tokens']):,} / {int(totals['output_tokens']):,}",
                ),
                (
                    "cache read / created",
                    f"{int(totals['cache_read_input_tokens']):,} / "
                    f"{int(totals['cache_creation_input_tokens']):,}",
                ),
                ("cost", f"${totals['cost_usd']:.4f}"),
                (
                    "LOC added / removed",
                    f"+{int(totals['insertions'])} / −{int(totals['deletions'])}",
                ),
                ("wall time", f"{time.monotonic() - started:.1f}s"),
                ("merged into", f"{stop.generation.base_branch} at {stop.merge_commit[:12]}"),
                ("repository", str(path)),
            ],
        )
    )
    return 0 if failed == 0 else EXIT_FAILED


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from shoemaker import __version__

    parser = argparse.ArgumentParser(
        prog="shoemaker",
        description="Turn a spec-driven repository into a software factory run by coding agents.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"shoemaker {__version__}")
    parser.add_argument(
        "-C",
        dest="directory",
        default=".",
        metavar="DIR",
        help="run as if started in DIR (like git -C)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="write a commented default configuration.yaml")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--print", action="store_true", help="print the default instead of writing it")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("transcript", help="summarise a stream-json transcript file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_transcript)

    def add_events(p: argparse.ArgumentParser, default: str = "story") -> None:
        p.add_argument(
            "--events",
            choices=["story", "ndjson", "none"],
            default=default,
            help="story: a readable log; ndjson: one event per line on stdout; none "
            f"(default: {default})",
        )

    # The lifecycle verbs, also reachable as `shoemaker generation VERB`.
    gen = sub.add_parser(
        "generation", help="start, pause, stop, reset, switch, list: the same verbs, grouped"
    )
    gsub = gen.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verbs in (sub, gsub):
        p = verbs.add_parser(
            "start", help="tag the base, create the generation branch, check it out"
        )
        p.add_argument("name", nargs="?", help="generation name (default: a timestamp)")
        p.set_defaults(func=_lifecycle(_start))
        p = verbs.add_parser(
            "pause", help="let running agents finish, start no new task; resume goes on"
        )
        p.set_defaults(func=_lifecycle(_pause))
        p = verbs.add_parser("stop", help="tag, merge the generation into its base, tag again")
        p.set_defaults(func=_lifecycle(_stop))
        p = verbs.add_parser(
            "reset", help="abandon a generation: tag it, remove its branches and worktrees"
        )
        p.add_argument("name", nargs="?", help="the generation (default: the current one)")
        p.set_defaults(func=_lifecycle(_reset))
        p = verbs.add_parser("switch", help="check out another open generation")
        p.add_argument("name", help="the generation's name or branch")
        p.set_defaults(func=_lifecycle(_switch))
        p = verbs.add_parser("list", help="all generations with their state and progress")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_generation_list)

    for verb, text in (
        ("run", "run measure+stitch cycles on the current generation"),
        ("resume", "after a pause or a crash: recover what was left, then run"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument(
            "--cycles", type=int, help="at most N cycles (default: configuration cycles)"
        )
        p.add_argument("--parallel", type=int, help="agents at once (default: max_parallel)")
        add_events(p)
        p.add_argument(
            "--only", type=int, nargs="+", default=[], metavar="ID", help="run only these tasks"
        )
        p.add_argument(
            "--skip", type=int, nargs="+", default=[], metavar="ID", help="never run these"
        )
        p.add_argument(
            "--from", dest="start", type=int, metavar="ID", help="run this task and later ones"
        )
        p.set_defaults(func=cmd_run)

    p = sub.add_parser("measure", help="propose tasks once, without stitching")
    add_events(p)
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("review", help="tasks waiting for review: list, approve, reject")
    rsub = p.add_subparsers(dest="verb", metavar="VERB")
    p.set_defaults(func=cmd_review, verb=None)
    r = rsub.add_parser("approve", help="merge a task that waits for review")
    r.add_argument("task", type=int)
    r.set_defaults(func=cmd_review)
    r = rsub.add_parser("reject", help="send a task back to its agent with a note")
    r.add_argument("task", type=int)
    r.add_argument("--note", required=True, help="what to change; it goes into the next prompt")
    r.set_defaults(func=cmd_review)

    p = sub.add_parser(
        "plan", help="measure into a reviewable plan file with its estimate; nothing runs"
    )
    add_events(p, default="none")
    p.set_defaults(func=cmd_plan, verb=None)
    psub = p.add_subparsers(dest="verb", metavar="VERB")
    r = psub.add_parser("list", help="the plans of the current generation and their states")
    r.set_defaults(func=cmd_plan)
    r = psub.add_parser("reject", help="reject a plan; its tasks are cancelled")
    r.add_argument("plan", help="the plan's id or file")
    r.add_argument("--note", help="why")
    r.set_defaults(func=_lifecycle(_plan_verb))
    r = psub.add_parser("rollback", help="revert the merged tasks of a failed or complete plan")
    r.add_argument("plan", help="the plan's id or file")
    r.set_defaults(func=_lifecycle(_plan_verb))
    p = sub.add_parser("approve", help="approve a plan, so that run executes its tasks")
    p.add_argument("plan", help="the plan's id or file")
    p.set_defaults(func=_lifecycle(_plan_verb), verb="approve")

    p = sub.add_parser("doctor", help="preflight: git, the agent CLI, credentials, directories")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("estimate", help="expected tokens and dollars of the tasks still to run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("task", help="act on one task")
    tsub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    r = tsub.add_parser(
        "revert",
        help="revert a merged task on the generation branch (refused if others build on it)",
    )
    r.add_argument("task", type=int)
    r.add_argument("--retry", action="store_true", help="then run it again (default: cancel it)")
    r.set_defaults(func=_lifecycle(_revert))

    p = sub.add_parser("tasks", help="the tasks of the current generation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("tui", help="the dashboard (also what `shoemaker` alone opens)")
    p.add_argument(
        "--attach",
        action="store_true",
        help="follow a run that another process drives (pause, kill and review it from here)",
    )
    p.add_argument("--parallel", type=int, help="agents at once (default: max_parallel)")
    p.set_defaults(func=cmd_tui)

    p = sub.add_parser("demo", help="build a sample repository and run a whole generation on it")
    p.add_argument("--headless", action="store_true", help="print the story instead of a dashboard")
    p.add_argument("--dir", help="create the demo repository here (default: a new temp dir)")
    p.add_argument("--prepare", metavar="DIR", help="only create and configure the repository")
    p.add_argument("--parallel", type=int, help="agents at once")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        # No command: the dashboard on the current repository.
        args = parser.parse_args([*(argv or sys.argv[1:]), "tui"])
    for name in ("cycles", "parallel"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    if not Path(args.directory).is_dir():
        print(f"shoemaker: -C {args.directory}: no such directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        code: int = args.func(args)
    except ShoemakerError as exc:
        print(f"shoemaker: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `shoemaker run --events ndjson | head` closes the pipe; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line here, the traceback in a log file
        return _report_bug(exc, args, list(argv if argv is not None else sys.argv[1:]))
    return code


def _report_bug(exc: Exception, args: argparse.Namespace, argv: list[str]) -> int:
    """The last resort: one line on the terminal, the traceback in a log file."""
    from shoemaker.crashlog import write_crash_log
    from shoemaker.errors import clip

    command = " ".join(c for c in (args.command, getattr(args, "verb", None)) if c)
    log = write_crash_log(exc, argv)
    where = f"details in {log}" if log else "no log file could be written"
    print(
        f"shoemaker: `{command}` failed: {type(exc).__name__}: {clip(str(exc), 160)} — "
        f"this is a bug in shoemaker; {where}",
        file=sys.stderr,
    )
    return EXIT_FAILED
