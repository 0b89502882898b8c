"""The tasks of the current generation, reverting a merged one, retrying a stopped one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from shoemaker.cli.output import _console, _esc, _state_text, _task_state_markup

if TYPE_CHECKING:
    from shoemaker.engine.project import Project


def cmd_tasks(args: argparse.Namespace) -> int:
    # Only reads the store: the configuration's models load only for the gates of --json.
    from shoemaker.engine.readonly import ReadOnlyProject

    project = ReadOnlyProject.open(Path(args.directory))
    gen = project.current_generation()
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
                        "priority": t.priority,
                        "source": (
                            {
                                "format": t.origin.format,
                                "path": t.origin.path,
                                "external_id": t.origin.external_id,
                            }
                            if t.origin
                            else None
                        ),
                        "gates": [g.name for g in project.config.gates if g.is_for_title(t.title)]
                        + [g.name for g in t.plan_gates],
                        **({"extras": t.extras} if t.extras else {}),
                    }
                    for t in tasks
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    from rich.table import Table

    state = _state_text(gen.state.value, gen.reason, gen.rate_limited_until)
    # The plan files' own ids, when some tasks came from plan files.
    imported = any(t.origin for t in tasks)
    table = Table(
        "id",
        *(["source id"] if imported else []),
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
            *([_esc(t.external_id)] if imported else []),
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


def _retry(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.retry import retry_tasks

    return "\n".join(r.line() for r in retry_tasks(project, args.task, args.note))
