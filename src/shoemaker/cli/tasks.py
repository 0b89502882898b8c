"""The tasks of the current generation, and reverting a merged one."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from shoemaker.cli.common import _current, _open_project
from shoemaker.cli.output import _console, _esc, _state_text, _task_state_markup

if TYPE_CHECKING:
    from shoemaker.engine.project import Project


def cmd_tasks(args: argparse.Namespace) -> int:
    from rich.table import Table

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
        table.add_row(
            str(t.id),
            _task_state_markup(t.state),
            _esc(t.title),
            " ".join(f"#{d}" for d in t.depends_on),
            str(t.attempts),
            _esc(t.reason),
        )
    _console().print(table)
    return 0


def _revert(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.generation import revert_task

    commit = revert_task(project, args.task, retry=args.retry)
    then = "it runs again in the next run" if args.retry else "it is cancelled"
    return f"task #{args.task} reverted by {commit[:12]}; {then}"
