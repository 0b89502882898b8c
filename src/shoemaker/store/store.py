"""The store: one SQLite file (WAL) that is the source of truth for generations, tasks and runs.

Every state change is one transaction that also appends the event announcing it, so the log and
the tables never disagree. Calls are blocking and thread-safe (one connection behind a lock);
async code calls them through ``asyncio.to_thread`` where they may take a while.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoemaker.errors import BadInput
from shoemaker.events import (
    Event,
    GenerationStateChanged,
    PlanStateChanged,
    TaskStateChanged,
    parse_event,
)
from shoemaker.model import (
    Generation,
    GenerationState,
    Plan,
    PlanState,
    Spend,
    Task,
    TaskState,
    check_generation_transition,
    check_plan_transition,
    check_task_transition,
)
from shoemaker.secrets import NO_SECRETS, Redactor
from shoemaker.store.schema import MIGRATIONS, SCHEMA_VERSION


class StoreError(BadInput, RuntimeError):
    """The store cannot do what was asked (unknown generation, newer schema, a file that is
    no store, …)."""


class StoreBusy(StoreError):
    """Another process held the store's write lock for longer than the configured wait."""


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


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One agent invocation as stored (the transcript is fetched separately)."""

    id: int
    generation: str | None
    task_id: int | None
    phase: str
    attempt: int
    prompt: str
    argv: list[str]
    env_names: list[str]
    cwd: str
    pid: int | None
    started_at: float
    ended_at: float | None
    exit_code: int | None
    ended: str | None
    subtype: str | None
    is_error: bool | None
    ok: bool | None
    reason: str
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float
    num_turns: int | None
    session_id: str | None
    duration_ms: int | None
    duration_api_ms: int | None
    wall_s: float | None
    model_usage: dict[str, Any] | None
    result_text: str | None
    stderr_tail: str
    transcript_lines: int
    cost_estimated: bool
    """No result line reported the cost: ``cost_usd`` is the run's message usage at the
    configured price (``prices``), a floor."""


_RUN_COLUMNS = [f for f in RunRecord.__dataclass_fields__]


def _compress(source: bytes | Path) -> bytes:
    if isinstance(source, bytes):
        return zlib.compress(source, 6)
    packer = zlib.compressobj(6)
    parts = []
    try:
        with source.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                parts.append(packer.compress(chunk))
    except FileNotFoundError:
        pass
    parts.append(packer.flush())
    return b"".join(parts)


class Store:
    """All reads and writes of shoemaker's state."""

    def __init__(
        self,
        path: Path,
        redactor: Redactor = NO_SECRETS,
        wait_sec: float = 10.0,
        holder: Callable[[], str | None] | None = None,
    ) -> None:
        """Open (or create) the store at ``path``. ``wait_sec`` bounds how long a call waits
        for another process's write; ``holder`` says who that may be, for the message."""
        self.path = path
        self.redactor = redactor
        self.wait_sec = wait_sec
        self._holder = holder
        if path.is_dir():
            raise StoreError(
                f"{path}: is a directory, not shoemaker's store; move it away (a new store "
                "is created in its place)"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(
                f"{path.parent}: is a file, where shoemaker keeps its state directory; move it away"
            ) from None
        self._lock = threading.RLock()
        try:
            # isolation_level=None: we issue BEGIN ourselves so each transaction is explicit.
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=wait_sec
            )
        except sqlite3.Error as exc:
            raise self._failure(exc) or StoreError(self._unusable(exc)) from None
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout={int(wait_sec * 1000)}")
            self._check_version()  # before anything writes, even the journal mode
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.Error):
                raise self._failure(exc) or StoreError(self._unusable(exc)) from None
            raise

    # -- plumbing -----------------------------------------------------------------------------

    def _unusable(self, exc: sqlite3.Error) -> str:
        return (
            f"{self.path}: is not a usable shoemaker store (SQLite says: {exc}); move it aside "
            "to start a new one, or restore it from a backup"
        )

    def _failure(self, exc: sqlite3.Error) -> StoreError | None:
        """The error a person should see for ``exc``; None for errors of shoemaker's own
        statements (constraints, programming errors), which are bugs to report as such."""
        if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError)):
            return None
        text = str(exc)
        if "locked" in text or "busy" in text:
            holder = self._holder() if self._holder is not None else None
            who = f"by {holder}" if holder else "by another process (not a shoemaker run)"
            return StoreBusy(
                f"{self.path}: locked {who} for more than {self.wait_sec:g} s (store_wait_sec); "
                "try again when it is done"
            )
        unusable = ("malformed", "not a database", "unable to open", "disk I/O", "readonly")
        if type(exc) is sqlite3.DatabaseError or any(word in text for word in unusable):
            return StoreError(self._unusable(exc))
        return None

    def _check_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this shoemaker "
                f"understands ({SCHEMA_VERSION}); upgrade shoemaker"
            )

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version + 1, SCHEMA_VERSION + 1):
                # executescript commits implicitly, so the version bump goes in the same script.
                self._db.executescript(
                    f"BEGIN IMMEDIATE;\n{MIGRATIONS[number - 1]}\nPRAGMA user_version = {number};\n"
                    "COMMIT;"
                )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failure(exc) or exc from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):  # a corrupt file may refuse even this
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and (failure := self._failure(exc)):
                    raise failure from None
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._failure(exc) or exc from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def integrity_check(self) -> str:
        return str(self._query("PRAGMA integrity_check")[0][0])

    # -- events -------------------------------------------------------------------------------

    def _insert_event(self, db: sqlite3.Connection, event: Event) -> int:
        cur = db.execute(
            "INSERT INTO events (ts, generation, kind, task_id, data) VALUES (?, ?, ?, ?, ?)",
            (
                event.ts,
                event.generation,
                event.kind,
                getattr(event, "task_id", None),
                self.redactor.text(event.model_dump_json()),
            ),
        )
        return int(cur.lastrowid or 0)

    def append_events(self, events: Iterable[Event]) -> int:
        """Append events in one transaction; returns the sequence number of the last one."""
        seq = 0
        with self._tx() as db:
            for event in events:
                seq = self._insert_event(db, event)
        return seq

    def events_after(
        self, seq: int, limit: int = 1000, generation: str | None = None
    ) -> list[tuple[int, Event]]:
        """Events with a sequence number above ``seq``, oldest first (for followers)."""
        if generation is None:
            rows = self._query(
                "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            )
        else:
            rows = self._query(
                "SELECT seq, data FROM events WHERE seq > ? AND generation = ? "
                "ORDER BY seq LIMIT ?",
                (seq, generation, limit),
            )
        return [(int(r["seq"]), parse_event(r["data"])) for r in rows]

    def events_of_kind(self, generation: str, kinds: Sequence[str]) -> list[Event]:
        """Every event of the given kinds for a generation, oldest first."""
        rows = self._query(
            f"SELECT data FROM events WHERE generation = ? AND kind IN "
            f"({','.join('?' * len(kinds))}) ORDER BY seq",
            (generation, *kinds),
        )
        return [parse_event(r["data"]) for r in rows]

    def last_event_seq(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    # -- generations --------------------------------------------------------------------------

    @staticmethod
    def _generation(row: sqlite3.Row) -> Generation:
        return Generation(
            name=row["name"],
            branch=row["branch"],
            base_branch=row["base_branch"],
            state=GenerationState(row["state"]),
            cycle=row["cycle"],
            start_commit=row["start_commit"],
            reason=row["reason"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            stopped_at=row["stopped_at"],
        )

    def create_generation(
        self, name: str, branch: str, base_branch: str, start_commit: str
    ) -> tuple[Generation, GenerationStateChanged]:
        """Insert a new, active generation and the event announcing it."""
        now = time.time()
        event = GenerationStateChanged(
            generation=name,
            old=None,
            new=GenerationState.ACTIVE,
            reason="started",
            branch=branch,
            base_branch=base_branch,
        )
        with self._tx() as db:
            if db.execute("SELECT 1 FROM generations WHERE name = ?", (name,)).fetchone():
                raise StoreError(f"a generation named {name!r} already exists; choose another name")
            db.execute(
                "INSERT INTO generations (name, branch, base_branch, state, start_commit, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, branch, base_branch, GenerationState.ACTIVE, start_commit, now, now),
            )
            self._insert_event(db, event)
        return self.get_generation(name), event

    def get_generation(self, name: str) -> Generation:
        rows = self._query("SELECT * FROM generations WHERE name = ?", (name,))
        if not rows:
            raise StoreError(f"no generation named {name!r}; see `shoemaker list`")
        return self._generation(rows[0])

    def list_generations(self) -> list[Generation]:
        return [
            self._generation(r)
            for r in self._query("SELECT * FROM generations ORDER BY created_at")
        ]

    def open_generations(self) -> list[Generation]:
        """Generations that are neither stopped nor abandoned."""
        return [
            g
            for g in self.list_generations()
            if g.state not in (GenerationState.STOPPED, GenerationState.ABANDONED)
        ]

    def set_generation_state(
        self, name: str, new: GenerationState, reason: str = ""
    ) -> GenerationStateChanged | None:
        """Move a generation to ``new`` (checked); returns the event, or None if already there."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM generations WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise StoreError(f"no generation named {name!r}")
            old = GenerationState(row["state"])
            if old == new:
                return None
            check_generation_transition(name, old, new)
            now = time.time()
            stopped = now if new in (GenerationState.STOPPED, GenerationState.ABANDONED) else None
            db.execute(
                "UPDATE generations SET state = ?, reason = ?, updated_at = ?, "
                "stopped_at = COALESCE(?, stopped_at) WHERE name = ?",
                (new, reason, now, stopped, name),
            )
            event = GenerationStateChanged(
                generation=name,
                old=old,
                new=new,
                reason=reason,
                branch=row["branch"],
                base_branch=row["base_branch"],
            )
            self._insert_event(db, event)
        return event

    def next_cycle(self, name: str) -> int:
        """Increment and return the generation's cycle counter."""
        with self._tx() as db:
            db.execute(
                "UPDATE generations SET cycle = cycle + 1, updated_at = ? WHERE name = ?",
                (time.time(), name),
            )
            row = db.execute("SELECT cycle FROM generations WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    # -- tasks --------------------------------------------------------------------------------

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
            for position, new in enumerate(tasks):
                missing = [d for d in new.depends_on if d not in known]
                if missing:
                    raise StoreError(f"task {new.title!r} depends on unknown task ids {missing}")
                if any(not 0 <= a < position for a in new.after):
                    raise StoreError(f"task {new.title!r} must come after its dependencies")
                deps = sorted({*new.depends_on, *(ids[a] for a in new.after)})
                state = TaskState.READY if all(d in done for d in deps) else TaskState.PROPOSED
                cur = db.execute(
                    "INSERT INTO tasks (generation, title, description, state, priority, cycle, "
                    "source, plan_id, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    ),
                )
                task_id = int(cur.lastrowid or 0)
                known.add(task_id)
                ids.append(task_id)
                db.executemany(
                    "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)",
                    [(task_id, d) for d in deps],
                )
                event = TaskStateChanged(
                    generation=generation,
                    task_id=task_id,
                    title=new.title,
                    old=None,
                    new=state,
                    reason=f"added by {source}",
                    depends_on=deps,
                )
                self._insert_event(db, event)
                events.append(event)
        return [self.get_task(i) for i in ids], events

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
        **fields: str,
    ) -> TaskStateChanged:
        """Move a task to ``new`` (checked against the state machine) in one transaction.

        ``fields`` may set ``branch``, ``worktree``, ``merged_commit`` or ``fingerprint`` in the
        same transaction (intent first: the worktree is recorded before the agent relies on it).
        ``interrupted`` counts the attempt that ends here as cut short by shoemaker stopping.
        """
        with self._tx() as db:
            return self._transition(
                db,
                task_id,
                new,
                reason,
                count_attempt=count_attempt,
                interrupted=interrupted,
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
        fields: dict[str, str] | None = None,
    ) -> TaskStateChanged:
        """``transition_task`` inside a transaction the caller holds."""
        fields = fields or {}
        allowed = {"branch", "worktree", "merged_commit", "fingerprint"}
        if set(fields) - allowed:
            raise ValueError(f"cannot set {sorted(set(fields) - allowed)} on a task")
        row = db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise StoreError(f"no task with id {task_id}; see `shoemaker tasks`")
        old = TaskState(row["state"])
        check_task_transition(task_id, old, new)
        attempts = row["attempts"] + (1 if count_attempt else 0)
        sets = ["state = ?", "reason = ?", "attempts = ?", "updated_at = ?"]
        params: list[Any] = [new, reason, attempts, time.time()]
        if interrupted:
            sets.append("interruptions = interruptions + 1")
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            params.append(value)
        db.execute(f"UPDATE tasks SET {', '.join(sets)} WHERE id = ?", [*params, task_id])
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
        waiting = db.execute(
            "SELECT t.id FROM tasks t WHERE t.generation = ? AND t.state = ? AND NOT EXISTS "
            "(SELECT 1 FROM task_deps d JOIN tasks dep ON dep.id = d.depends_on "
            "WHERE d.task_id = t.id AND dep.state != ?) ORDER BY t.id",
            (generation, TaskState.PROPOSED, TaskState.DONE),
        ).fetchall()
        return [
            self._transition(db, row["id"], TaskState.READY, "dependencies done") for row in waiting
        ]

    def dependents(self, task_id: int) -> list[int]:
        """Every task that depends on ``task_id``, directly or not, in id order."""
        children: dict[int, list[int]] = {}
        for child, deps in self._deps_map().items():
            for d in deps:
                children.setdefault(d, []).append(child)
        frontier, seen = [task_id], set()
        while frontier:
            for child in children.get(frontier.pop(), []):
                if child not in seen:
                    seen.add(child)
                    frontier.append(child)
        return sorted(seen)

    def block_dependents(
        self, generation: str, failed_id: int, why: str = "failed"
    ) -> list[TaskStateChanged]:
        """Block every open task that depends, directly or not, on a failed task."""
        events = []
        for child in self.dependents(failed_id):
            if self.get_task(child).state in (TaskState.PROPOSED, TaskState.READY):
                events.append(
                    self.transition_task(
                        child, TaskState.BLOCKED, f"depends on task {failed_id}, which {why}"
                    )
                )
        return events

    # -- plans --------------------------------------------------------------------------------

    @staticmethod
    def _plan(row: sqlite3.Row) -> Plan:
        return Plan(
            row["id"],
            row["generation"],
            PlanState(row["state"]),
            row["path"],
            row["reason"],
            row["created_at"],
        )

    def create_plan(self, generation: str) -> tuple[Plan, PlanStateChanged]:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO plans (generation, state, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (generation, PlanState.CREATED, now, now),
            )
            plan_id = int(cur.lastrowid or 0)
            event = PlanStateChanged(
                generation=generation, plan_id=plan_id, old=None, new=PlanState.CREATED
            )
            self._insert_event(db, event)
        return self.get_plan(plan_id), event

    def get_plan(self, plan_id: int) -> Plan:
        rows = self._query("SELECT * FROM plans WHERE id = ?", (plan_id,))
        if not rows:
            raise StoreError(f"no plan {plan_id}; see `shoemaker plan list`")
        return self._plan(rows[0])

    def list_plans(self, generation: str | None = None) -> list[Plan]:
        if generation is None:
            rows = self._query("SELECT * FROM plans ORDER BY id")
        else:
            rows = self._query(
                "SELECT * FROM plans WHERE generation = ? ORDER BY id", (generation,)
            )
        return [self._plan(r) for r in rows]

    def set_plan_state(
        self, plan_id: int, new: PlanState, reason: str = "", path: str | None = None
    ) -> PlanStateChanged:
        """Move a plan to ``new``, checked against the plan state machine."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM plans WHERE id = ?", (plan_id,)).fetchone()
            if row is None:
                raise StoreError(f"no plan {plan_id}; see `shoemaker plan list`")
            old = PlanState(row["state"])
            check_plan_transition(plan_id, old, new)
            db.execute(
                "UPDATE plans SET state = ?, reason = ?, path = COALESCE(?, path), "
                "updated_at = ? WHERE id = ?",
                (new, reason, path, time.time(), plan_id),
            )
            event = PlanStateChanged(
                generation=row["generation"], plan_id=plan_id, old=old, new=new, reason=reason
            )
            self._insert_event(db, event)
        return event

    # -- runs ---------------------------------------------------------------------------------

    def start_run(
        self,
        *,
        generation: str | None,
        task_id: int | None,
        phase: str,
        attempt: int,
        prompt: str,
        argv: Sequence[str],
        env_names: Iterable[str],
        cwd: str,
    ) -> int:
        """Record a run before its process starts (intent first); returns its id."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (generation, task_id, phase, attempt, prompt, argv, env_names, "
                "cwd, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    generation,
                    task_id,
                    phase,
                    attempt,
                    self.redactor.text(prompt),
                    # An argument holding a secret is stored redacted; recovery then finds
                    # the process by its SHOEMAKER_RUN marker instead of its command line.
                    json.dumps([self.redactor.text(a) for a in argv]),
                    json.dumps(sorted(env_names)),
                    cwd,
                    time.time(),
                ),
            )
            return int(cur.lastrowid or 0)

    def set_run_pid(self, run_id: int, pid: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run_id))

    def finish_run(self, run_id: int, *, transcript: bytes | Path, **values: Any) -> None:
        """Store a run's outcome and its raw transcript, compressed.

        ``transcript`` is the raw bytes or the file that holds them; a file is compressed in
        chunks, so a transcript of hundreds of megabytes never sits in memory whole. A
        missing file stores an empty transcript.
        """
        unknown = set(values) - set(_RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown run fields {sorted(unknown)}")
        if "model_usage" in values and values["model_usage"] is not None:
            values["model_usage"] = json.dumps(values["model_usage"])
        for key, value in values.items():
            if isinstance(value, str):
                values[key] = self.redactor.text(value)
        if isinstance(transcript, bytes):
            transcript = self.redactor.data(transcript)
        values.setdefault("ended_at", time.time())
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._tx() as db:
            db.execute(
                f"UPDATE runs SET {cols}, transcript = ? WHERE id = ?",
                [*values.values(), _compress(transcript), run_id],
            )

    def get_run(self, run_id: int) -> RunRecord:
        rows = self._query(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError(f"no run with id {run_id}")
        return self._run(rows[0])

    @staticmethod
    def _run(row: sqlite3.Row) -> RunRecord:
        data = dict(row)
        data["argv"] = json.loads(data["argv"])
        data["env_names"] = json.loads(data["env_names"])
        data["model_usage"] = json.loads(data["model_usage"]) if data["model_usage"] else None
        for key in ("is_error", "ok"):
            data[key] = None if data[key] is None else bool(data[key])
        data["cost_estimated"] = bool(data["cost_estimated"])
        return RunRecord(**data)

    def runs(self, task_id: int | None = None, generation: str | None = None) -> list[RunRecord]:
        sql = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs"
        if task_id is not None:
            rows = self._query(sql + " WHERE task_id = ? ORDER BY id", (task_id,))
        elif generation is not None:
            rows = self._query(sql + " WHERE generation = ? ORDER BY id", (generation,))
        else:
            rows = self._query(sql + " ORDER BY id")
        return [self._run(r) for r in rows]

    def spend(
        self,
        *,
        generation: str | None = None,
        task_id: int | None = None,
        since: float | None = None,
    ) -> Spend:
        """What the runs matching every given filter spent (running ones count their
        wall time so far)."""
        where, params = ["1 = 1"], []
        for clause, value in (
            ("generation = ?", generation),
            ("task_id = ?", task_id),
            ("started_at >= ?", since),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        row = self._query(
            "SELECT COALESCE(SUM(input_tokens + output_tokens), 0), COALESCE(SUM(cost_usd), 0), "
            "COALESCE(SUM(COALESCE(wall_s, ? - started_at)), 0) FROM runs WHERE "
            + " AND ".join(where),
            [time.time(), *params],
        )[0]
        return Spend(int(row[0]), float(row[1]), float(row[2]))

    def task_usage(self, generation: str) -> dict[int, dict[str, float]]:
        """Per task: tokens, dollars and agent wall time summed over all its runs."""
        rows = self._query(
            "SELECT task_id, SUM(input_tokens) AS input_tokens, "
            "SUM(output_tokens) AS output_tokens, "
            "SUM(cache_creation_input_tokens) AS cache_creation_input_tokens, "
            "SUM(cache_read_input_tokens) AS cache_read_input_tokens, "
            "SUM(cost_usd) AS cost_usd, SUM(COALESCE(wall_s, 0)) AS wall_s, COUNT(*) AS runs "
            "FROM runs WHERE generation = ? AND task_id IS NOT NULL GROUP BY task_id",
            (generation,),
        )
        return {
            int(r["task_id"]): {k: float(r[k]) for k in r.keys() if k != "task_id"}  # noqa: SIM118
            for r in rows
        }

    def transcript(self, run_id: int) -> bytes:
        """The raw stdout of a run, decompressed (empty while it is still running)."""
        rows = self._query("SELECT transcript FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError(f"no run with id {run_id}")
        blob = rows[0][0]
        return zlib.decompress(blob) if blob else b""

    # -- gates and metrics --------------------------------------------------------------------

    def record_gate(
        self,
        *,
        task_id: int,
        run_id: int | None,
        name: str,
        location: str,
        passed: bool,
        exit_code: int | None,
        duration_s: float,
        output_tail: str,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO gate_results (task_id, run_id, name, location, passed, exit_code, "
                "duration_s, output_tail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    run_id,
                    name,
                    location,
                    int(passed),
                    exit_code,
                    duration_s,
                    self.redactor.text(output_tail),
                    time.time(),
                ),
            )

    def gate_results(self, task_id: int) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self._query(
                "SELECT * FROM gate_results WHERE task_id = ? ORDER BY id", (task_id,)
            )
        ]

    def record_metrics(self, task_id: int, **values: Any) -> None:
        values["task_id"] = task_id
        values.setdefault("recorded_at", time.time())
        cols = ", ".join(values)
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO metrics ({cols}) VALUES ({', '.join('?' * len(values))})",
                list(values.values()),
            )

    def metrics(self, task_id: int) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM metrics WHERE task_id = ?", (task_id,))
        return dict(rows[0]) if rows else None

    def generation_totals(self, generation: str) -> dict[str, float]:
        """Tokens and dollars spent by every run of a generation, and LOC it merged."""
        row = self._query(
            "SELECT COUNT(*) AS runs, COALESCE(SUM(input_tokens), 0) AS input_tokens, "
            "COALESCE(SUM(output_tokens), 0) AS output_tokens, "
            "COALESCE(SUM(cache_creation_input_tokens), 0) AS cache_creation_input_tokens, "
            "COALESCE(SUM(cache_read_input_tokens), 0) AS cache_read_input_tokens, "
            "COALESCE(SUM(cost_usd), 0) AS cost_usd FROM runs WHERE generation = ?",
            (generation,),
        )[0]
        loc = self._query(
            "SELECT COALESCE(SUM(m.insertions), 0), COALESCE(SUM(m.deletions), 0) "
            "FROM metrics m JOIN tasks t ON t.id = m.task_id WHERE t.generation = ?",
            (generation,),
        )[0]
        totals = {k: float(row[k]) for k in row.keys()}  # noqa: SIM118 - a Row is not a dict
        totals["insertions"], totals["deletions"] = float(loc[0]), float(loc[1])
        return totals
