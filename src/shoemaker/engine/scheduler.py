"""Which ready task goes next: priority first, then the longest chain of work it unblocks.

Starting the task at the head of the longest remaining chain first is the classic list-
scheduling rule that keeps a parallel run's makespan close to its critical path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shoemaker.model import TERMINAL_TASK_STATES, Task, TaskState


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
