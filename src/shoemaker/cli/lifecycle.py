"""The lifecycle verbs (start, pause, stop, reset, switch) and the list of generations."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from shoemaker.cli.common import _open_project
from shoemaker.cli.output import _console, _esc, _state_text

if TYPE_CHECKING:
    from shoemaker.engine.project import Project


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
    from shoemaker.engine.ending import stop_generation

    report = stop_generation(project)
    gen = report.generation
    lines = [
        f"generation {gen.name} merged into {gen.base_branch} at {report.merge_commit[:12]}; "
        f"tags {gen.name}-finished and {gen.name}-merged"
    ]
    lines += [f"  kept unmerged work on branch {b}" for b in report.kept_branches]
    return "\n".join(lines)


def _reset(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.ending import reset_generation
    from shoemaker.engine.generation import find_generation

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


def _pause(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine.generation import pause_generation

    return pause_generation(project)


def _until(row: Mapping[str, object]) -> float | None:
    until = row["rate_limited_until"]
    return until if isinstance(until, float) else None


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
                "rate_limited_until": gen.rate_limited_until,
                "tasks_done": done,
                "tasks_total": len(tasks),
                "cost_usd": round(totals.cost_usd, 6),
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
            _esc(_state_text(str(r["state"]), str(r["reason"]), _until(r))),
            _esc(r["base_branch"]),
            str(r["cycle"]),
            f"{r['tasks_done']}/{r['tasks_total']}",
            f"${r['cost_usd']:.4f}",
        )
    _console().print(table)
    return 0
