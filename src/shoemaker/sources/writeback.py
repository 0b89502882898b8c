"""Progress written back into the plan files, inside the task's own commit: an epic's front
matter says ``status: complete`` and its module README row turns 🟢; a beads issue is closed.
Applied in the task's worktree just before shoemaker commits its work, so the squash merge
carries it and a task is still one commit."""

from __future__ import annotations

import json
from pathlib import Path

from shoemaker.confined import leaves
from shoemaker.model import Task, TaskState
from shoemaker.sources import beads, epics, phases
from shoemaker.sources.model import PlanError, read_plan_file


def write_back(task: Task, worktree: Path) -> list[str]:
    """Mark ``task`` finished in its plan files inside ``worktree``; returns the paths
    changed. A plan file outside the repository, or reached through a link, is left alone."""
    origin = task.origin
    if origin is None or Path(origin.path).is_absolute():
        return []
    target = worktree / origin.path
    if not target.is_file() or leaves(worktree, target):
        return []
    try:
        if origin.format == epics.FORMAT:
            return _epic(task, worktree, target)
        if origin.format == beads.FORMAT:
            return _beads(task, worktree, target)
        if origin.format == phases.FORMAT:
            return _phase(task, worktree, target)
    except PlanError:
        # What the agent left there is no plan file any more (a FIFO, a huge file, not
        # UTF-8): the task's work is what matters, and the file stays as the agent left it.
        return []
    return []


def _write(worktree: Path, path: Path, old: str, new: str) -> list[str]:
    if new == old:
        return []
    tmp = path.with_name(path.name + ".shoemaker-tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
    return [path.relative_to(worktree).as_posix()]


def _epic(task: Task, worktree: Path, target: Path) -> list[str]:
    text = read_plan_file(worktree, target)
    changed = _write(worktree, target, text, epics.mark_complete(text))
    name = epics.epic_name(target.name) or epics.name_of(task.external_id.rsplit("/", 1)[-1], "E")
    readme = epics.readme_of(target)
    if name is not None and readme.is_file() and not leaves(worktree, readme):
        old = read_plan_file(worktree, readme)
        changed += _write(worktree, readme, old, epics.mark_readme_row(old, target.name, name))
    return changed


def _beads(task: Task, worktree: Path, target: Path) -> list[str]:
    text = read_plan_file(worktree, target)
    # The task is about to merge: the issue is closed by that merge.
    finishing = Task(
        task.id,
        task.generation,
        task.title,
        task.description,
        TaskState.DONE,
        attempts=max(task.attempts, 1),
        updated_at=task.updated_at,
        origin=task.origin,
    )
    lines = text.split("\n")
    for n, line in enumerate(lines):
        if line.strip():
            try:
                issue = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(issue, dict) and issue.get("id") == task.external_id:
                lines[n] = beads.updated_line(line, finishing)
    return _write(worktree, target, text, "\n".join(lines))


def _phase(task: Task, worktree: Path, target: Path) -> list[str]:
    text = read_plan_file(worktree, target)
    changed = _write(worktree, target, text, phases.mark_complete(text))
    master = task.extras.get("master_plan")
    if isinstance(master, str) and not Path(master).is_absolute():
        path = worktree / master
        if path.is_file() and not leaves(worktree, path):
            old = read_plan_file(worktree, path)
            changed += _write(worktree, path, old, phases.mark_master_row(old, target.name))
    return changed
