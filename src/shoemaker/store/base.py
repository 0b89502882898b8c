"""The store's connection: one SQLite file (WAL), its schema version, migrations and
transactions. Every table's reads and writes build on ``StoreBase``."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoemaker.errors import BadInput
from shoemaker.secrets import NO_SECRETS, Redactor
from shoemaker.store.schema import MIGRATIONS, SCHEMA_VERSION

# The event models (pydantic) are imported where an event is written or read back, so that a
# command that only lists the store's rows (``shoemaker tasks``) does not build them.
if TYPE_CHECKING:
    from shoemaker.events import Event


class StoreError(BadInput, RuntimeError):
    """The store cannot do what was asked (unknown generation, newer schema, a file that is
    no store, …)."""


class StoreBusy(StoreError):
    """Another process held the store's write lock for longer than the configured wait."""


#: Called with the events of each committed transaction, in the order they were written.
OnCommit = Callable[[list["Event"]], None]


class StoreBase:
    """The connection: opening, migrations, transactions and queries, behind one lock.

    ``on_commit`` (set by whoever delivers events: the project's bus) hears the events of
    every transaction right after it commits, still under the lock, so that successive calls
    come in commit order; a rolled-back transaction announces nothing.
    """

    on_commit: OnCommit | None = None

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
        self._written: list[Event] = []  # the events of the transaction in progress
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
            self._written = []
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._written = []
                with suppress(sqlite3.Error):  # a corrupt file may refuse even this
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and (failure := self._failure(exc)):
                    raise failure from None
                raise
            written, self._written = self._written, []
            if written and self.on_commit is not None:
                self.on_commit(written)

    def _insert_event(self, db: sqlite3.Connection, event: Event) -> int:
        """Append ``event`` to the log inside the caller's transaction (announced once it
        commits); returns its sequence number.

        The event is serialised once and the redactor reads those bytes once; only when it
        found a secret is the event read back from the clean JSON, and that clean event is
        what gets announced."""
        data = event.json_bytes()
        if self.redactor.active:
            clean = self.redactor.data(data)
            if clean != data:
                from shoemaker.events import parse_event

                data, event = clean, parse_event(clean)
        cur = db.execute(
            "INSERT INTO events (ts, generation, kind, task_id, data) VALUES (?, ?, ?, ?, ?)",
            (
                event.ts,
                event.generation,
                event.kind,
                getattr(event, "task_id", None),
                data.decode("utf-8"),
            ),
        )
        self._wrote(event)
        return int(cur.lastrowid or 0)

    def _wrote(self, event: Event) -> None:
        """Note an event the transaction in progress wrote, to announce once it commits."""
        self._written.append(event)

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
