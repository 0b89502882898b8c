"""The append-only event log, written in the same transaction as the rows an event announces."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from shoemaker.store.base import StoreBase

if TYPE_CHECKING:
    from shoemaker.events import Event


class EventStore(StoreBase):
    """The ``events`` table; every state change appends to it inside its own transaction."""

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
        from shoemaker.events import parse_event

        return [(int(r["seq"]), parse_event(r["data"])) for r in rows]

    def events_of_kind(
        self, generation: str, kinds: Sequence[str], task_id: int | None = None
    ) -> list[Event]:
        """Every event of the given kinds for a generation (and one of its tasks: read by
        the task's index), oldest first."""
        sql = f"generation = ? AND kind IN ({','.join('?' * len(kinds))})"
        args: tuple[object, ...] = (generation, *kinds)
        if task_id is not None:
            sql, args = f"task_id = ? AND {sql}", (task_id, *args)
        rows = self._query(f"SELECT data FROM events WHERE {sql} ORDER BY seq", args)
        from shoemaker.events import parse_event

        return [parse_event(r["data"]) for r in rows]

    def last_event_seq(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])
