"""``run``/``resume`` and ``measure``: the refusals before anything starts, then the engine."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from shoemaker.cli.common import (
    CliError,
    _attach_output,
    _current,
    _open_project,
    _run_async,
)
from shoemaker.cli.output import _esc
from shoemaker.errors import EXIT_BUDGET, EXIT_FAILED

if TYPE_CHECKING:
    from shoemaker.engine.project import Project
    from shoemaker.engine.selection import Selection


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
    from shoemaker.engine.plans import refuse_waiting_plans
    from shoemaker.engine.project import RunLock
    from shoemaker.engine.recovery import check_main_checkout
    from shoemaker.engine.selection import Selection

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
