"""Review: a person approves or rejects a task that touched ``review_globs``.

A task whose change touches a path of ``review_globs`` waits in ``needs_review`` after its
gates. Approving lands it through the generation's merge queue (the same queue a run uses,
shared with other processes through the merge file lock); rejecting sends it back to ``ready``
with the person's note, which its next prompt shows. ``shoemaker review`` and the dashboard's
``a`` / ``x`` keys both come here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from shoemaker.engine.attempts import keep_for_retry
from shoemaker.engine.project import Project, RunLock
from shoemaker.engine.stitch import Stitcher, StitchOutcome
from shoemaker.errors import BadInput
from shoemaker.git import GitError
from shoemaker.model import Generation, Task, TaskState
from shoemaker.store import TaskMoved


class ReviewRefused(BadInput):
    """A review verb for a task that is not waiting for review; nothing was changed."""


def _waiting(project: Project, task_id: int) -> Task:
    task = project.store.get_task(task_id)
    if task.state != TaskState.NEEDS_REVIEW:
        raise ReviewRefused(
            f"task {task_id} is {task.state}, not waiting for review; see `shoemaker review`"
        )
    return task


def _claim(project: Project, task_id: int, new: TaskState, reason: str) -> None:
    """Move a task out of review, only if it still waits there: another approval or
    rejection (the dashboard, a second command) may have taken it since it was checked."""
    try:
        project.store.transition_task(task_id, new, reason, expect=(TaskState.NEEDS_REVIEW,))
    except TaskMoved:
        _waiting(project, task_id)  # says what it is now
        raise


@contextmanager
def no_run_starts(project: Project) -> Iterator[None]:
    """No run starts while a verb moves a task out of review: its recovery would take the
    task (merging, say) for the work of a dead process. A run already under way recovered
    before it began and holds the lock; the verb goes on beside it (merges take turns
    through the merge file lock)."""
    lock = RunLock(project)
    held = lock.acquire()
    try:
        yield
    finally:
        if held:
            lock.release()


async def approve(project: Project, generation: Generation, task_id: int) -> StitchOutcome:
    """A person approved a task waiting in review: merge it."""
    with no_run_starts(project):
        return await _approve(project, generation, task_id)


async def _approve(project: Project, generation: Generation, task_id: int) -> StitchOutcome:
    task = await asyncio.to_thread(_waiting, project, task_id)
    stitcher = Stitcher(project, generation)
    try:
        git = project.git
        try:
            base = await asyncio.to_thread(git.merge_base, task.branch, generation.branch)
            head = await asyncio.to_thread(git.rev_parse, task.branch)
        except GitError:
            # Its branch went away since the check: landed by another approval, set aside by
            # a rejection, or deleted by hand.
            await asyncio.to_thread(_waiting, project, task_id)
            if await asyncio.to_thread(git.ref_exists, f"refs/heads/{task.branch}"):
                raise
            raise ReviewRefused(
                f"task {task_id}: its branch {task.branch} is gone (a rejection under way, or "
                "deleted by hand); nothing to approve; see `shoemaker review`"
            ) from None
        attempt = await asyncio.to_thread(stitcher.landed_attempt, task, base, head)
        await asyncio.to_thread(_claim, project, task_id, TaskState.MERGING, "approved")
        return await stitcher.land(attempt)
    finally:
        await asyncio.to_thread(stitcher.pool.close)


async def reject(
    project: Project, generation: Generation, task_id: int, note: str
) -> StitchOutcome:
    """A person rejected a task in review: it runs again with their note in its prompt."""
    with no_run_starts(project):
        return await _reject(project, generation, task_id, note)


async def _reject(
    project: Project, generation: Generation, task_id: int, note: str
) -> StitchOutcome:
    task = await asyncio.to_thread(_waiting, project, task_id)
    reason = f"review rejected it: {note.strip() or 'no note given'}"
    await asyncio.to_thread(keep_for_retry, project, generation, task, task.attempts)
    await asyncio.to_thread(_claim, project, task_id, TaskState.READY, reason)
    return StitchOutcome(task_id, TaskState.READY, reason)
