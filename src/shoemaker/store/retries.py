"""A person's retry of stopped tasks, in one transaction (which tasks it releases is
``engine/graph.py``'s rule; what it checks first is ``engine/retry.py``'s)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from shoemaker.engine import graph
from shoemaker.model import TaskState
from shoemaker.store.tasks import TaskStore

if TYPE_CHECKING:
    from shoemaker.events import TaskStateChanged


class RetryStore(TaskStore):
    """Sends stopped tasks back to ``ready`` for a person, with the ones they release."""

    def retry_tasks(
        self, retries: Sequence[tuple[int, str]], expect: Collection[TaskState]
    ) -> list[TaskStateChanged]:
        """A person's retry of each ``(task id, reason)`` in turn, all in one transaction
        (nothing written if any task is no longer in ``expect``: :class:`TaskMoved`). Each
        goes back to ``ready`` with a fresh ``max_retries`` allowance and no last-failure
        fingerprint; the tasks its stop blocked wait for their dependencies again
        (``proposed``). A task of ``retries`` that an earlier one released is left so."""
        events: list[TaskStateChanged] = []
        released: set[int] = set()
        with self._tx() as db:
            for task_id, reason in retries:
                if task_id in released:
                    continue
                moved = self._transition(
                    db, task_id, TaskState.READY, reason, expect=expect, fields={"fingerprint": ""}
                )
                db.execute(
                    "UPDATE tasks SET failures_before_retry = attempts - interruptions "
                    "WHERE id = ?",
                    (task_id,),
                )
                events.append(moved)
                states, deps, _ = self._graph(db, moved.generation or "")
                reasons = dict(
                    db.execute(
                        "SELECT id, reason FROM tasks WHERE generation = ?", (moved.generation,)
                    ).fetchall()
                )
                for child in graph.released_by_retry(states, reasons, deps, task_id):
                    why = graph.waits_again_reason(task_id)
                    events.append(self._transition(db, child, TaskState.PROPOSED, why))
                    released.add(child)
        return events
