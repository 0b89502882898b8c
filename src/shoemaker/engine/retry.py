"""A person's retry: a ``failed``, ``blocked`` or ``conflict`` task runs again.

``shoemaker task retry ID… [--note TEXT]`` and the dashboard's key come here. The task goes
back to ``ready`` with a fresh ``max_retries`` allowance (counted from the retry; its attempts
go on numbering runs and branches) and no last-failure fingerprint; the note reaches its next
prompt the way a review rejection's does (the task's reason, which ``failure_context`` puts
first); the last attempt's work is kept on ``attempt/*`` as a rejection keeps it. The tasks its
stop blocked wait for it again and are promoted once it is done.

Every id is checked before anything changes, in id order (a task depends only on tasks added
before it), so a dependency retried in the same call counts as retried; one refusal and
nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shoemaker.engine import graph
from shoemaker.engine.attempts import keep_for_retry, log
from shoemaker.engine.generation import current_generation
from shoemaker.engine.project import Project
from shoemaker.engine.review import no_run_starts
from shoemaker.errors import BadInput, clip
from shoemaker.model import Generation, Task, TaskState
from shoemaker.store import StoreError, TaskMoved

#: The states a person's retry moves back to ready.
RETRYABLE = (TaskState.FAILED, TaskState.BLOCKED, TaskState.CONFLICT)
#: How much of the reason a task had is kept in the retry's reason (and so in its prompt).
_BEFORE = 300


class RetryRefused(BadInput):
    """A retry the tasks' states do not allow; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Retried:
    """Where a person's retry left one task."""

    task_id: int
    state: TaskState
    reason: str

    def line(self) -> str:
        if self.state == TaskState.READY:
            return f"task {self.task_id} ready again: {self.reason}"
        return f"task {self.task_id} {self.reason}"  # waits for task N again: …


def sent_back(old: TaskState | None, new: TaskState) -> bool:
    """Whether a task's move to ``new`` is one only a person makes: back to ready from a
    stop (a retry) or from review (a rejection). A run that hears of it lists its tasks
    again, so the task starts in that run."""
    return new == TaskState.READY and old in (*RETRYABLE, TaskState.NEEDS_REVIEW)


def retry_reason(task: Task, note: str) -> str:
    """The reason a retried task carries: who asked, their note, and what it had been."""
    said = " ".join(note.split()) or "no note given"
    return f"a person retried it: {said} (it was {task.state}: {clip(task.reason, _BEFORE)})"


def _refusal(task: Task) -> str:
    """Why a task in a state other than failed, blocked or conflict is not retried."""
    n, state = task.id, task.state
    what = {
        TaskState.DONE: f"`shoemaker task revert {n} --retry` runs it again",
        TaskState.NEEDS_REVIEW: (
            f"`shoemaker review approve {n}`, or `shoemaker review reject {n} --note …` "
            "to run it again"
        ),
        TaskState.READY: "it runs at the next `shoemaker run`",
        TaskState.PROPOSED: "it runs once its dependencies are done",
        TaskState.CANCELLED: "a cancelled task does not run again",
    }.get(state, "its attempt is under way; wait for it to end (`shoemaker tasks`)")
    return f"task {n} is {state}, not failed, blocked or in conflict: {what}"


def _plan(project: Project, generation: Generation, ids: Iterable[int]) -> list[Task]:
    """The tasks to retry, in id order, once every one is known to be retryable (those an
    earlier one releases are left out: the store releases them with it)."""
    wanted = sorted(set(ids))
    tasks = {t.id: t for t in project.store.list_tasks(generation.name)}
    states = {i: t.state for i, t in tasks.items()}
    reasons = {i: t.reason for i, t in tasks.items()}
    deps = {i: t.depends_on for i, t in tasks.items()}
    planned: list[Task] = []
    for task_id in wanted:
        task = tasks.get(task_id)
        if task is None:
            try:
                other = project.store.get_task(task_id)
            except StoreError:
                raise RetryRefused(f"no task {task_id}; see `shoemaker tasks`") from None
            raise RetryRefused(
                f"task {task_id} is of generation {other.generation}, not the current one "
                f"({generation.name}); switch to it first (`shoemaker switch {other.generation}`)"
            )
        if states[task_id] == TaskState.PROPOSED and task.state == TaskState.BLOCKED:
            continue  # released by a dependency retried before it in this call
        if task.state not in RETRYABLE:
            raise RetryRefused(_refusal(task))
        waiting = [d for d in task.depends_on if states.get(d) != TaskState.DONE]
        if waiting:
            named = ", ".join(f"task {d} ({states.get(d, 'unknown')})" for d in waiting)
            if any(states.get(d) not in RETRYABLE for d in waiting):
                then = "retry it once they are done (`shoemaker tasks`)"
            else:
                together = " ".join(str(i) for i in sorted({*waiting, task_id}))
                then = (
                    f"retry {'it' if len(waiting) == 1 else 'them'} first, or together in one "
                    f"command: `shoemaker task retry {together}`"
                )
            raise RetryRefused(f"task {task_id} depends on {named}, not done: {then}")
        states[task_id] = TaskState.READY
        for child in graph.released_by_retry(states, reasons, deps, task_id):
            states[child] = TaskState.PROPOSED
        planned.append(task)
    return planned


def retry_tasks(
    project: Project, task_ids: Iterable[int], note: str = "", generation: Generation | None = None
) -> list[Retried]:
    """A person retries ``task_ids`` of the current generation (``generation``, when the
    caller has it), with their ``note`` for the next prompts; returns where each was left,
    the tasks released by them included.

    No run starts meanwhile (its recovery takes the tasks a dead process left, and
    ``keep_for_retry`` moves a branch). A run already under way goes on beside it: it moves
    no failed, blocked or conflict task, so the one transaction that checks each state and
    writes every move leaves no room for a race with it; the run starts the ready tasks at
    its next listing."""
    gen = generation or current_generation(project)
    with no_run_starts(project):
        planned = _plan(project, gen, task_ids)
        retries = [(t.id, retry_reason(t, note)) for t in planned]
        for task in planned:
            keep_for_retry(project, gen, task, task.attempts)
        try:
            events = project.store.retry_tasks(retries, expect=RETRYABLE)
        except TaskMoved as exc:
            raise RetryRefused(f"{exc}; nothing was retried") from None
    for task in planned:
        log(project, task, f"a person retried task #{task.id}: {note.strip() or 'no note'}")
    return [Retried(e.task_id, e.new, e.reason) for e in events]
