"""Tasks and their dependencies: insertion, states, promotion and blocking (the rules of
which tasks a done unblocks or a failure blocks are ``engine/graph.py``'s; the atomic writes
are here)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shoemaker.engine import graph
from shoemaker.model import (
    NOT_STARTED_STATES,
    PlanGate,
    Task,
    TaskOrigin,
    TaskState,
    check_task_transition,
)
from shoemaker.store.base import StoreError
from shoemaker.store.events import EventStore

if TYPE_CHECKING:
    from shoemaker.events import TaskStateChanged


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task about to be inserted.

    ``depends_on`` holds ids of tasks already in the store; ``after`` holds positions of
    earlier tasks in the same batch (whose ids do not exist yet).
    """

    title: str
    description: str = ""
    priority: int = 0
    depends_on: tuple[int, ...] = ()
    after: tuple[int, ...] = ()
    origin: TaskOrigin | None = None
    needs_review: bool = False
    plan_gates: tuple[PlanGate, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    """The plan file says it is finished: it is recorded ``done`` and never runs."""


class TaskMoved(StoreError):
    """A task is no longer in the state a caller decided on (another thread or process moved
    it since): nothing was written."""


#: Tasks whose text a re-import may still change: nothing has worked on them yet.
NOT_STARTED = tuple(NOT_STARTED_STATES)


class TaskStore(EventStore):
    """The ``tasks`` and ``task_deps`` tables."""

    def _task(self, row: sqlite3.Row, deps: list[int]) -> Task:
        return Task(
            id=row["id"],
            generation=row["generation"],
            title=row["title"],
            description=row["description"],
            state=TaskState(row["state"]),
            priority=row["priority"],
            attempts=row["attempts"],
            interruptions=row["interruptions"],
            failures_before_retry=row["failures_before_retry"],
            reason=row["reason"],
            fingerprint=row["fingerprint"],
            plan_id=row["plan_id"],
            branch=row["branch"],
            worktree=row["worktree"],
            cycle=row["cycle"],
            source=row["source"],
            merged_commit=row["merged_commit"],
            depends_on=deps,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            origin=(
                TaskOrigin(row["origin_format"], row["origin_path"], row["external_id"])
                if row["origin_format"]
                else None
            ),
            needs_review=bool(row["needs_review"]),
            plan_gates=tuple(
                PlanGate(g["name"], g.get("command", "")) for g in json.loads(row["plan_gates"])
            ),
            extras=json.loads(row["extras"]),
        )

    def _deps_map(self, task_ids: Sequence[int] | None = None) -> dict[int, list[int]]:
        deps: dict[int, list[int]] = {}
        for r in self._query("SELECT task_id, depends_on FROM task_deps ORDER BY depends_on"):
            if task_ids is None or r[0] in task_ids:
                deps.setdefault(r[0], []).append(r[1])
        return deps

    def add_tasks(
        self,
        generation: str,
        tasks: Sequence[NewTask],
        cycle: int,
        source: str,
        plan_id: int | None = None,
    ) -> tuple[list[Task], list[TaskStateChanged]]:
        """Insert tasks and their dependencies in one transaction.

        A task whose dependencies are all done starts ``ready``; otherwise ``proposed``.
        """
        now = time.time()
        events: list[TaskStateChanged] = []
        ids: list[int] = []
        with self._tx() as db:
            done = {
                r[0]
                for r in db.execute(
                    "SELECT id FROM tasks WHERE generation = ? AND state = ?",
                    (generation, TaskState.DONE),
                )
            }
            known = {r[0] for r in db.execute("SELECT id FROM tasks")}
            imported = {
                (r[0], r[1])
                for r in db.execute(
                    "SELECT origin_format, external_id FROM tasks "
                    "WHERE generation = ? AND external_id != '' AND state != ?",
                    (generation, TaskState.CANCELLED),
                )
            }
            for position, new in enumerate(tasks):
                if new.origin and (new.origin.format, new.origin.external_id) in imported:
                    # Another import (a run's plan_sources, a second command) got there first.
                    raise StoreError(
                        f"{new.origin.external_id} of {new.origin.path} was imported meanwhile; "
                        "import again (it adds only what is still missing)"
                    )
                missing = [d for d in new.depends_on if d not in known]
                if missing:
                    raise StoreError(f"task {new.title!r} depends on unknown task ids {missing}")
                if any(not 0 <= a < position for a in new.after):
                    raise StoreError(f"task {new.title!r} must come after its dependencies")
                deps = sorted({*new.depends_on, *(ids[a] for a in new.after)})
                state = TaskState.READY if all(d in done for d in deps) else TaskState.PROPOSED
                if new.done:
                    state = TaskState.DONE
                origin = new.origin or TaskOrigin("", "", "")
                cur = db.execute(
                    "INSERT INTO tasks (generation, title, description, state, priority, cycle, "
                    "source, plan_id, created_at, updated_at, origin_format, origin_path, "
                    "external_id, needs_review, plan_gates, extras) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        generation,
                        self.redactor.text(new.title),
                        self.redactor.text(new.description),
                        state,
                        new.priority,
                        cycle,
                        source,
                        plan_id,
                        now,
                        now,
                        origin.format,
                        origin.path,
                        origin.external_id,
                        int(new.needs_review),
                        self.redactor.text(
                            json.dumps(
                                [{"name": g.name, "command": g.command} for g in new.plan_gates]
                            )
                        ),
                        self.redactor.text(json.dumps(new.extras, ensure_ascii=False)),
                    ),
                )
                task_id = int(cur.lastrowid or 0)
                known.add(task_id)
                if new.done:
                    done.add(task_id)
                ids.append(task_id)
                db.executemany(
                    "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)",
                    [(task_id, d) for d in deps],
                )
                from shoemaker.events import TaskStateChanged

                event = TaskStateChanged(
                    generation=generation,
                    task_id=task_id,
                    title=new.title,
                    old=None,
                    new=state,
                    reason=f"added by {source}" + (", done in its plan file" if new.done else ""),
                    depends_on=deps,
                )
                self._insert_event(db, event)
                events.append(event)
            if not ids:
                return [], events
            # Read back in the same transaction: the tasks as stored, in one query each.
            marks = ",".join("?" * len(ids))
            rows = db.execute(f"SELECT * FROM tasks WHERE id IN ({marks}) ORDER BY id", ids)
            dep_map: dict[int, list[int]] = {}
            for task_id, dep in db.execute(
                f"SELECT task_id, depends_on FROM task_deps WHERE task_id IN ({marks}) "
                "ORDER BY depends_on",
                ids,
            ):
                dep_map.setdefault(task_id, []).append(dep)
            added = [self._task(r, dep_map.get(r["id"], [])) for r in rows]
        return added, events

    def update_planned_text(self, task_id: int, title: str, description: str) -> bool:
        """Give a task that has not started the text its plan file has now; False (and nothing
        changed) once it has started."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE tasks SET title = ?, description = ?, updated_at = ? "
                f"WHERE id = ? AND attempts = 0 AND state IN ({','.join('?' * len(NOT_STARTED))})",
                (
                    self.redactor.text(title),
                    self.redactor.text(description),
                    time.time(),
                    task_id,
                    *NOT_STARTED,
                ),
            )
            return cur.rowcount > 0

    def mark_planned_done(self, task_id: int, reason: str) -> list[TaskStateChanged]:
        """Record ``done`` a task that has not started, which its plan file now says is
        finished, and promote the dependents this unblocks, in one transaction; the events,
        the task's own first. [] (nothing changed) once it has started."""
        with self._tx() as db:
            query = "SELECT state, attempts FROM tasks WHERE id = ?"
            row = db.execute(query, (task_id,)).fetchone()
            if row is None or row["attempts"] or row["state"] not in NOT_STARTED_STATES:
                return []
            done = self._transition(db, task_id, TaskState.DONE, reason, by_hand=True)
            return [done, *self._promote(db, done.generation or "")]

    def get_task(self, task_id: int) -> Task:
        rows = self._query("SELECT * FROM tasks WHERE id = ?", (task_id,))
        if not rows:
            raise StoreError(f"no task with id {task_id}; see `shoemaker tasks`")
        deps = [
            r[0]
            for r in self._query(
                "SELECT depends_on FROM task_deps WHERE task_id = ? ORDER BY depends_on", (task_id,)
            )
        ]
        return self._task(rows[0], deps)

    def list_tasks(
        self, generation: str | None = None, states: Iterable[TaskState] | None = None
    ) -> list[Task]:
        sql, params = "SELECT * FROM tasks", []
        where = []
        if generation is not None:
            where.append("generation = ?")
            params.append(generation)
        if states is not None:
            wanted = list(states)
            where.append(f"state IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY id", params)
        deps = self._deps_map()
        return [self._task(r, deps.get(r["id"], [])) for r in rows]

    def transition_task(
        self,
        task_id: int,
        new: TaskState,
        reason: str = "",
        *,
        count_attempt: bool = False,
        interrupted: bool = False,
        expect: Collection[TaskState] | None = None,
        **fields: str,
    ) -> TaskStateChanged:
        """Move a task to ``new`` (checked against the state machine) in one transaction.

        ``fields`` may set ``branch``, ``worktree``, ``merged_commit`` or ``fingerprint`` in the
        same transaction (intent first: the worktree is recorded before the agent relies on it).
        ``interrupted`` counts the attempt that ends here as cut short by shoemaker stopping.
        ``expect``: the states the caller saw the task in and decided on; if it has moved
        since, :class:`TaskMoved` and nothing written (a check and its write in one
        transaction, as a read in one call and a write in the next are not).
        """
        with self._tx() as db:
            return self._transition(
                db,
                task_id,
                new,
                reason,
                count_attempt=count_attempt,
                interrupted=interrupted,
                expect=expect,
                fields=fields,
            )

    def _transition(
        self,
        db: sqlite3.Connection,
        task_id: int,
        new: TaskState,
        reason: str,
        *,
        count_attempt: bool = False,
        interrupted: bool = False,
        expect: Collection[TaskState] | None = None,
        fields: dict[str, str] | None = None,
        by_hand: bool = False,
    ) -> TaskStateChanged:
        """``transition_task`` inside a transaction the caller holds (``by_hand``: the move
        to ``done`` of a task that never ran, see ``NOT_STARTED_STATES``)."""
        fields = fields or {}
        allowed = {"branch", "worktree", "merged_commit", "fingerprint"}
        if set(fields) - allowed:
            raise ValueError(f"cannot set {sorted(set(fields) - allowed)} on a task")
        row = db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise StoreError(f"no task with id {task_id}; see `shoemaker tasks`")
        old = TaskState(row["state"])
        if expect is not None and old not in expect:
            raise TaskMoved(
                f"task {task_id} is {old} now, not {' or '.join(map(str, expect))}; "
                "it was moved meanwhile (see `shoemaker tasks`)"
            )
        if not (by_hand and new == TaskState.DONE and old in NOT_STARTED_STATES):
            check_task_transition(task_id, old, new)
        # A reason may quote what a process printed (an agent's error, a git failure).
        reason = self.redactor.text(reason)
        attempts = row["attempts"] + (1 if count_attempt else 0)
        sets = ["state = ?", "reason = ?", "attempts = ?", "updated_at = ?"]
        params: list[Any] = [new, reason, attempts, time.time()]
        if interrupted:
            sets.append("interruptions = interruptions + 1")
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            params.append(value)
        db.execute(f"UPDATE tasks SET {', '.join(sets)} WHERE id = ?", [*params, task_id])
        from shoemaker.events import TaskStateChanged

        event = TaskStateChanged(
            generation=row["generation"],
            task_id=task_id,
            title=row["title"],
            old=old,
            new=new,
            reason=reason,
            attempt=attempts,
        )
        self._insert_event(db, event)
        return event

    def finish_task(
        self, task_id: int, reason: str, merged_commit: str | None = None
    ) -> list[TaskStateChanged]:
        """Record a task ``done`` and promote the dependents that this unblocks, in one
        transaction: a crash never leaves a done task's dependents waiting. Returns the
        events, the task's own first."""
        fields = {"merged_commit": merged_commit} if merged_commit else {}
        with self._tx() as db:
            done = self._transition(db, task_id, TaskState.DONE, reason, fields=fields)
            return [done, *self._promote(db, done.generation or "")]

    def count_conflict(self, task_id: int) -> int:
        """Record one more conflict of a task's work; returns how many it has had."""
        with self._tx() as db:
            db.execute("UPDATE tasks SET conflicts = conflicts + 1 WHERE id = ?", (task_id,))
            row = db.execute("SELECT conflicts FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return int(row[0])

    def promote_unblocked(self, generation: str) -> list[TaskStateChanged]:
        """Move ``proposed`` tasks whose dependencies are all done to ``ready`` (idempotent).

        Checked and moved in one transaction: two tasks finishing at once (two threads, two
        processes) never promote the same dependent twice."""
        with self._tx() as db:
            return self._promote(db, generation)

    def _promote(self, db: sqlite3.Connection, generation: str) -> list[TaskStateChanged]:
        states, deps, own = self._graph(db, generation)
        return [
            self._transition(db, task_id, TaskState.READY, "dependencies done")
            for task_id in graph.unblocked(states, deps, among=own)
        ]

    def _graph(
        self, db: sqlite3.Connection, generation: str
    ) -> tuple[dict[int, TaskState], dict[int, list[int]], list[int]]:
        """A generation's task states and dependencies, read inside the caller's transaction,
        and the ids of its own tasks (``states`` also holds dependencies outside it, should
        there be any)."""
        deps: dict[int, list[int]] = {}
        for r in db.execute(
            "SELECT d.task_id, d.depends_on FROM task_deps d JOIN tasks t ON t.id = d.task_id "
            "WHERE t.generation = ? ORDER BY d.depends_on",
            (generation,),
        ):
            deps.setdefault(r[0], []).append(r[1])
        rows = db.execute(
            "SELECT id, state, generation FROM tasks WHERE generation = ? OR id IN "
            "(SELECT d.depends_on FROM task_deps d JOIN tasks t ON t.id = d.task_id "
            "WHERE t.generation = ?)",
            (generation, generation),
        ).fetchall()
        states = {r[0]: TaskState(r[1]) for r in rows}
        return states, deps, [r[0] for r in rows if r[2] == generation]

    def dependents(self, task_id: int) -> list[int]:
        """Every task that depends on ``task_id``, directly or not, in id order."""
        return graph.dependents(self._deps_map(), task_id)

    def block_dependents(
        self, generation: str, failed_id: int, why: str = "failed"
    ) -> list[TaskStateChanged]:
        """Block every open task that depends, directly or not, on a failed task, in one
        transaction."""
        with self._tx() as db:
            return self._block(db, failed_id, why)

    def stop_task(
        self, task_id: int, new: TaskState, reason: str, why: str, **fields: str
    ) -> list[TaskStateChanged]:
        """Record a task ``failed`` or ``blocked`` and block its open dependents (``why``: what
        their reason says it did), in one transaction: a crash never leaves them waiting on a
        task that will not finish. Returns the events, the task's own first."""
        with self._tx() as db:
            stopped = self._transition(db, task_id, new, reason, fields=fields)
            return [stopped, *self._block(db, task_id, why)]

    def _block(self, db: sqlite3.Connection, failed_id: int, why: str) -> list[TaskStateChanged]:
        reason = graph.blocked_reason(failed_id, why)
        deps: dict[int, list[int]] = {}
        for r in db.execute("SELECT task_id, depends_on FROM task_deps"):
            deps.setdefault(r[0], []).append(r[1])
        states = {r[0]: TaskState(r[1]) for r in db.execute("SELECT id, state FROM tasks")}
        return [
            self._transition(db, child, TaskState.BLOCKED, reason)
            for child in graph.blocked_by_failure(states, deps, failed_id)
        ]
