"""Which ready task may start now: the person's selection (``run --task``), plans that wait
for approval (``require_approval``), ``max_tasks`` and a scheduled batch's start limit.

The engine's launch loop asks :class:`Admission` and tells it each start; it holds nothing
else, so the rules of starting read in one place.
"""

from __future__ import annotations

import asyncio

from shoemaker.engine.plans import runnable_plans
from shoemaker.engine.project import Project
from shoemaker.engine.selection import Selection
from shoemaker.model import Generation, Task, TaskState


class Admission:
    """The rules that let a ready task start, for one run of the engine."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.selection: Selection | None = None
        """The tasks a person chose for this run (None: every ready task)."""
        self.start_limit: int | None = None
        """A scheduled batch's max_tasks: how many tasks this run may start at all (a task
        started once may start again, a retry); None: no such limit."""
        self.planned = False
        """Whether a task of a plan was seen this run: only then are plans read and settled."""
        self._runnable_plans: set[int] = set()
        self._started: set[int] = set()

    async def tasks(self, gen: Generation) -> list[Task]:
        """The generation's tasks, and (for ``may_start``) which plans may run now (read only
        when a task belongs to a plan)."""
        tasks = await asyncio.to_thread(self.project.store.list_tasks, gen.name)
        if any(t.plan_id is not None for t in tasks):
            self.planned = True
            self._runnable_plans = await asyncio.to_thread(runnable_plans, self.project, gen)
        return tasks

    def may_start(self, task: Task) -> bool:
        """Ready, selected, and not held by a plan that waits for approval (with
        ``require_approval``, only tasks of an approved plan start)."""
        if task.plan_id is None:
            planned = not self.project.config.require_approval
        else:
            planned = task.plan_id in self._runnable_plans
        return (
            task.state == TaskState.READY
            and planned
            and (self.selection is None or self.selection.allows(task.id))
        )

    @property
    def started(self) -> frozenset[int]:
        """The tasks this run has started (each counted once, however many attempts)."""
        return frozenset(self._started)

    def note_started(self, task: Task) -> None:
        self._started.add(task.id)

    def restarts(self, task: Task) -> bool:
        """Whether ``task`` is one a batch already started (a retry, not another task)."""
        return self.start_limit is not None and task.id in self._started

    def batch_spent(self) -> bool:
        """Whether a batch's start limit is used up."""
        return self.start_limit is not None and len(self._started) >= self.start_limit

    def left(self, tasks: list[Task], running: int = 0) -> int | None:
        """How many more tasks max_tasks lets this run start (None: no limit)."""
        batch = None if self.start_limit is None else max(0, self.start_limit - len(self._started))
        if not self.project.config.max_tasks:
            return batch
        done = sum(1 for t in tasks if t.state == TaskState.DONE)
        left = max(0, self.project.config.max_tasks - done - running)
        return left if batch is None else min(left, batch)
