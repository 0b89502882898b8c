"""Progress written back into the plan files, inside the task's own commit: an epic's front
matter says ``status: complete`` and its module README row turns 🟢; a phase is Complete with
its checklist ticked; a beads issue is closed. Applied by the merge queue once the task's squash
merge is staged on the generation branch, before its commit: written on the head it lands on,
so two tasks that finish together never conflict over neighbouring README rows or issue lines,
and a task is still one commit. (A task whose agent changed nothing is written back in its
worktree, since there is no merge.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from shoemaker.confined import leaves
from shoemaker.model import Task, TaskState
from shoemaker.sources import beads, epic_names, epics, phases
from shoemaker.sources.model import PlanError, read_plan_file


def write_back(task: Task, worktree: Path, keep: Collection[str] = ()) -> list[str]:
    """Mark ``task`` finished in its plan files inside ``worktree``; returns the paths
    changed. A plan file outside the repository, reached through a link, or in ``keep`` (a
    person's uncommitted changes) is left alone."""
    origin = task.origin
    if origin is None or Path(origin.path).is_absolute():
        return []
    files = _Files(worktree, frozenset(keep))
    target = worktree / origin.path
    try:
        if origin.format == epics.FORMAT:
            return _epic(task, files, target)
        if origin.format == beads.FORMAT:
            return _beads(task, files, target)
        if origin.format == phases.FORMAT:
            return _phase(task, files, target)
    except PlanError:
        # What is there is no plan file any more (a FIFO, a huge file, not UTF-8): the
        # task's work is what matters, and the file stays as it is.
        return []
    return []


@dataclass(frozen=True, slots=True)
class _Files:
    """The plan files of one worktree that may be rewritten."""

    root: Path
    keep: frozenset[str]

    def editable(self, path: Path) -> bool:
        return (
            path.is_file()
            and not leaves(self.root, path)
            and path.relative_to(self.root).as_posix() not in self.keep
        )

    def read(self, path: Path) -> str:
        return read_plan_file(self.root, path)

    def write(self, path: Path, old: str, new: str) -> list[str]:
        if new == old:
            return []
        tmp = path.with_name(path.name + ".shoemaker-tmp")
        tmp.unlink(missing_ok=True)
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(path)
        return [path.relative_to(self.root).as_posix()]

    def edit(self, path: Path, change: Callable[[str], str]) -> list[str]:
        if not self.editable(path):
            return []
        old = self.read(path)
        if "\r\n" in old and old.count("\n") == old.count("\r\n"):
            # A file written with CRLF line ends keeps them: the change is made on its lines
            # as LF text, then every line end goes back to CRLF (rewritten and added lines too).
            return self.write(path, old, change(old.replace("\r\n", "\n")).replace("\n", "\r\n"))
        return self.write(path, old, change(old))


def _epic(task: Task, files: _Files, target: Path) -> list[str]:
    changed = files.edit(target, epics.mark_complete)
    name = epic_names.epic_name(target.name) or epic_names.name_of(
        task.external_id.rsplit("/", 1)[-1], "E"
    )
    if name is not None:
        module = str(task.extras.get("module") or target.parent.name)
        for readme in epics.status_readmes(files.root, target):
            changed += files.edit(readme, partial(_mark_readme, readme, target, module, name))
    return changed


def _mark_readme(
    readme: Path, epic: Path, module: str, name: epic_names.EpicName, text: str
) -> str:
    return epics.mark_readme(text, readme, epic, module, name)


def _phase(task: Task, files: _Files, target: Path) -> list[str]:
    changed = files.edit(target, phases.mark_complete)
    master = task.extras.get("master_plan")
    if isinstance(master, str) and not Path(master).is_absolute():
        path = files.root / master
        changed += files.edit(path, lambda t: phases.mark_master_row(t, target.name))
    return changed


def _beads(task: Task, files: _Files, target: Path) -> list[str]:
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

    def close(text: str) -> str:
        lines = text.split("\n")
        for n, line in enumerate(lines):
            if line.strip():
                try:
                    issue = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(issue, dict) and issue.get("id") == task.external_id:
                    lines[n] = beads.updated_line(line, finishing)
        return "\n".join(lines)

    return files.edit(target, close)
