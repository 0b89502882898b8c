"""Generations: their rows, states and cycle counters."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from shoemaker.model import Generation, GenerationState, check_generation_transition
from shoemaker.store.base import StoreError
from shoemaker.store.events import EventStore

if TYPE_CHECKING:
    from shoemaker.events import GenerationStateChanged, RateLimitCleared, RateLimited


class GenerationStore(EventStore):
    """The ``generations`` table."""

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
            rate_limited_until=row["rate_limited_until"],
        )

    def create_generation(
        self, name: str, branch: str, base_branch: str, start_commit: str
    ) -> tuple[Generation, GenerationStateChanged]:
        """Insert a new, active generation and the event announcing it."""
        now = time.time()
        from shoemaker.events import GenerationStateChanged

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
            self._generation(r)
            for r in self._query(
                "SELECT * FROM generations WHERE state NOT IN (?, ?) ORDER BY created_at",
                (GenerationState.STOPPED, GenerationState.ABANDONED),
            )
        ]

    def set_generation_state(
        self, name: str, new: GenerationState, reason: str = ""
    ) -> GenerationStateChanged | None:
        """Move a generation to ``new`` (checked); returns the event, or None if already there."""
        with self._tx() as db:
            return self._move(db, name, new, reason)

    def set_rate_limited(self, name: str, event: RateLimited) -> GenerationStateChanged | None:
        """A rejected rate limit holds the generation until ``event.resets_at``: the state
        ``rate_limited`` (a paused generation stays paused), the reset time and ``event``, in
        one transaction."""
        reason = f"rate limited: {event.reason}" if event.reason else "rate limited"
        with self._tx() as db:
            row = db.execute("SELECT state FROM generations WHERE name = ?", (name,)).fetchone()
            moved = None
            # A person's pause stands: the reset time is kept for the run that resumes it.
            if row is None or row["state"] != GenerationState.PAUSED:
                moved = self._move(db, name, GenerationState.RATE_LIMITED, reason, force=True)
            db.execute(
                "UPDATE generations SET rate_limited_until = ? WHERE name = ?",
                (event.resets_at, name),
            )
            self._insert_event(db, event)
        return moved

    def clear_rate_limit(
        self, name: str, new: GenerationState, reason: str, event: RateLimitCleared
    ) -> None:
        """The reset time passed: the generation moves to ``new`` (running again) unless it
        left ``rate_limited`` meanwhile (a person paused it), its reset time is forgotten, and
        ``event`` says so, in one transaction."""
        with self._tx() as db:
            row = db.execute("SELECT state FROM generations WHERE name = ?", (name,)).fetchone()
            if row is not None and row["state"] == GenerationState.RATE_LIMITED:
                self._move(db, name, new, reason)
            db.execute("UPDATE generations SET rate_limited_until = NULL WHERE name = ?", (name,))
            self._insert_event(db, event)

    def _move(
        self,
        db: sqlite3.Connection,
        name: str,
        new: GenerationState,
        reason: str,
        force: bool = False,
    ) -> GenerationStateChanged | None:
        """``force``: write the reason even when the state is unchanged (no event then)."""
        reason = self.redactor.text(reason)  # "run stopped: <the error>" may quote a secret
        row = db.execute("SELECT * FROM generations WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise StoreError(f"no generation named {name!r}")
        old = GenerationState(row["state"])
        if old == new:
            if force:
                db.execute("UPDATE generations SET reason = ? WHERE name = ?", (reason, name))
            return None
        check_generation_transition(name, old, new)
        now = time.time()
        stopped = now if new in (GenerationState.STOPPED, GenerationState.ABANDONED) else None
        db.execute(
            "UPDATE generations SET state = ?, reason = ?, updated_at = ?, "
            "stopped_at = COALESCE(?, stopped_at) WHERE name = ?",
            (new, reason, now, stopped, name),
        )
        from shoemaker.events import GenerationStateChanged

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

    def next_cycle(self, name: str, announce: bool = False) -> int:
        """Increment and return the generation's cycle counter; ``announce``: the cycle
        starts now (``CycleStarted``, in the same transaction)."""
        with self._tx() as db:
            db.execute(
                "UPDATE generations SET cycle = cycle + 1, updated_at = ? WHERE name = ?",
                (time.time(), name),
            )
            row = db.execute("SELECT cycle FROM generations WHERE name = ?", (name,)).fetchone()
            if announce:
                from shoemaker.events import CycleStarted

                self._insert_event(db, CycleStarted(generation=name, cycle=int(row[0])))
        return int(row[0])
