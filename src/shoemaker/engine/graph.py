"""The task graph's rules, as pure functions over task ids, states and dependency lists.

- which ready task starts next: priority first, then the longest chain of work it unblocks
  (the classic list-scheduling rule that keeps a parallel run's makespan close to its critical
  path);
- which tasks depend on a task, directly or not;
- what a ``done`` unblocks: ``proposed`` tasks whose every dependency is done become ``ready``;
- what a failure blocks: every open task that depends on the failed one, transitively;
- what a person's retry releases: the tasks that failure blocked, once nothing else upstream
  of them is stopped.

The store applies the last two inside its transactions (it owns the atomic write); nothing here
touches a store, git or a process.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

from shoemaker.model import TERMINAL_TASK_STATES, Task, TaskState

#: Task id → the ids of the tasks it depends on.
Dependencies = Mapping[int, Collection[int]]

#: States from which a failure upstream moves a task to ``blocked``.
BLOCKABLE_STATES = frozenset({TaskState.PROPOSED, TaskState.READY})
#: States that keep a task's dependents from running until a person decides otherwise.
STOPPED_STATES = frozenset(
    {TaskState.FAILED, TaskState.BLOCKED, TaskState.CONFLICT, TaskState.CANCELLED}
)
#: The start of every reason ``blocked_reason`` writes.
_UPSTREAM = re.compile(r"depends on task \d+, which ")


def critical_path_lengths(
    tasks: Iterable[Task], weight: Mapping[int, float] | None = None
) -> dict[int, float]:
    """For each open task: the heaviest chain of open work that starts with it (itself
    included). ``weight`` gives a task's expected duration (default 1 each)."""
    open_tasks = {t.id: t for t in tasks if t.state not in TERMINAL_TASK_STATES}
    dependents: dict[int, list[int]] = {i: [] for i in open_tasks}
    for t in open_tasks.values():
        for dep in t.depends_on:
            if dep in dependents:
                dependents[dep].append(t.id)
    memo: dict[int, float] = {}

    def length(task_id: int) -> float:
        if task_id not in memo:
            # Iterative depth-first order would avoid recursion limits; DAGs from measure are
            # small (at most max_issues per call), so recursion depth stays far below them.
            own = (weight or {}).get(task_id, 1.0)
            memo[task_id] = own + max((length(d) for d in dependents[task_id]), default=0.0)
        return memo[task_id]

    return {task_id: length(task_id) for task_id in open_tasks}


def launch_order(tasks: list[Task], weight: Mapping[int, float] | None = None) -> list[Task]:
    """The ready tasks of ``tasks``, in the order they should start."""
    lengths = critical_path_lengths(tasks, weight)
    ready = [t for t in tasks if t.state == TaskState.READY]
    return sorted(ready, key=lambda t: (-t.priority, -lengths.get(t.id, 1.0), t.id))


def dependents(deps: Dependencies, task_id: int) -> list[int]:
    """Every task that depends on ``task_id``, directly or not, in id order."""
    children: dict[int, list[int]] = {}
    for child, parents in deps.items():
        for parent in parents:
            children.setdefault(parent, []).append(child)
    frontier, seen = [task_id], set()
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in seen:
                seen.add(child)
                frontier.append(child)
    return sorted(seen)


def unblocked(
    states: Mapping[int, TaskState], deps: Dependencies, among: Iterable[int] | None = None
) -> list[int]:
    """The ``proposed`` tasks (of ``among``, default all of ``states``) whose every dependency
    is ``done``, in id order: the tasks that become ``ready``. A dependency missing from
    ``states`` counts as not done."""
    return sorted(
        task_id
        for task_id in (states if among is None else among)
        if states.get(task_id) == TaskState.PROPOSED
        and all(states.get(d) == TaskState.DONE for d in deps.get(task_id, ()))
    )


def blocked_by_failure(
    states: Mapping[int, TaskState], deps: Dependencies, failed_id: int
) -> list[int]:
    """The open tasks that depend, directly or not, on ``failed_id``, in id order: the tasks
    its failure moves to ``blocked``. Tasks already running or finished keep their state."""
    return [t for t in dependents(deps, failed_id) if states.get(t) in BLOCKABLE_STATES]


def blocked_reason(failed_id: int, why: str = "failed") -> str:
    """The reason recorded on a task that a failure upstream blocked."""
    return f"depends on task {failed_id}, which {why}"


def blocked_upstream(reason: str) -> bool:
    """Whether a blocked task's ``reason`` says a task upstream blocked it (not its agent)."""
    return _UPSTREAM.match(reason) is not None


def ancestors(deps: Dependencies, task_id: int) -> set[int]:
    """Every task ``task_id`` depends on, directly or not."""
    frontier, seen = [task_id], set[int]()
    while frontier:
        for parent in deps.get(frontier.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                frontier.append(parent)
    return seen


def released_by_retry(
    states: Mapping[int, TaskState],
    reasons: Mapping[int, str],
    deps: Dependencies,
    task_id: int,
) -> list[int]:
    """The tasks a person's retry of ``task_id`` sends back to wait for their dependencies,
    in id order: those that depend on it, directly or not, blocked by a task upstream (not by
    their own agent), with no other stopped task upstream of them. Any upstream-blocked
    reason counts, not only one naming ``task_id``: a task two failures blocked names the
    first, and is released by the retry of the last one still stopped."""

    def stops(t: int) -> bool:
        state = states.get(t)
        if state == TaskState.BLOCKED:
            return not blocked_upstream(reasons.get(t, ""))
        return state in STOPPED_STATES

    return [
        t
        for t in dependents(deps, task_id)
        if states.get(t) == TaskState.BLOCKED
        and blocked_upstream(reasons.get(t, ""))
        and not any(stops(a) for a in ancestors(deps, t) if a != task_id)
    ]


def waits_again_reason(retried_id: int) -> str:
    """The reason recorded on a task a person's retry of ``retried_id`` released."""
    return f"waits for task {retried_id} again: a person retried it"
