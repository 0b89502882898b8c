"""``review``: the tasks waiting for review; approving or rejecting one."""

from __future__ import annotations

import argparse

from shoemaker.cli.common import _current, _open_project, _run_async
from shoemaker.errors import EXIT_FAILED


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
            ext = f" [{t.external_id}]" if t.origin else ""
            print(f"#{t.id}{ext} {t.title} — {t.reason} (branch {t.branch})")
        return 0

    async def go() -> int:
        if args.verb == "approve":
            outcome = await review.approve(project, gen, args.task)
        else:
            outcome = await review.reject(project, gen, args.task, args.note or "")
        print(f"task #{outcome.task_id}: {outcome.state.value} ({outcome.reason})")
        return 0 if outcome.state in (TaskState.DONE, TaskState.READY) else EXIT_FAILED

    return _run_async(go())
