"""Gate results and per-task metrics, and a generation's totals."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shoemaker.model import Usage
from shoemaker.store.base import StoreBase

if TYPE_CHECKING:
    from shoemaker.events import Event


@dataclass(frozen=True, slots=True)
class GateRecord:
    """One gate's outcome as stored: where it ran (``worktree``, ``merged``…) and its output."""

    id: int
    task_id: int
    run_id: int | None
    name: str
    location: str
    passed: bool
    exit_code: int | None
    duration_s: float
    output_tail: str
    created_at: float


@dataclass(frozen=True, slots=True)
class MetricsRecord:
    """What a merged task changed: its commits, diff size and lines of code before and after."""

    task_id: int
    commit_sha: str
    merge_sha: str
    files_changed: int
    insertions: int
    deletions: int
    prod_loc_before: int
    prod_loc_after: int
    test_loc_before: int
    test_loc_after: int
    duration_s: float
    recorded_at: float


@dataclass(frozen=True, slots=True)
class GenerationTotals:
    """What every run of a generation spent, and the lines its merged tasks changed."""

    runs: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    insertions: int = 0
    deletions: int = 0


#: SQL summing the token columns of ``runs``, each named after its column (see :func:`usage_of`).
USAGE_SUMS = ", ".join(f"COALESCE(SUM({c}), 0) AS {c}" for c in Usage.__dataclass_fields__)


def usage_of(row: sqlite3.Row) -> Usage:
    """The token columns of a row (a ``runs`` row or sums named after its columns)."""
    return Usage(
        int(row["input_tokens"] or 0),
        int(row["output_tokens"] or 0),
        int(row["cache_creation_input_tokens"] or 0),
        int(row["cache_read_input_tokens"] or 0),
    )


class MetricStore(StoreBase):
    """The ``gate_results`` and ``metrics`` tables (and the runs they sum)."""

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

    def gate_results(self, task_id: int) -> list[GateRecord]:
        rows = self._query("SELECT * FROM gate_results WHERE task_id = ? ORDER BY id", (task_id,))
        return [
            GateRecord(
                id=r["id"],
                task_id=r["task_id"],
                run_id=r["run_id"],
                name=r["name"],
                location=r["location"],
                passed=bool(r["passed"]),
                exit_code=r["exit_code"],
                duration_s=float(r["duration_s"] or 0.0),
                output_tail=r["output_tail"] or "",
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def record_metrics(
        self, task_id: int, announce: Event | None = None, **values: Any
    ) -> MetricsRecord:
        """Store a merged task's metrics (columns of ``metrics`` by name), with the event
        that announces them; returns them as stored."""
        values["task_id"] = task_id
        values.setdefault("recorded_at", time.time())
        record = MetricsRecord(**values)
        cols = ", ".join(values)
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO metrics ({cols}) VALUES ({', '.join('?' * len(values))})",
                list(values.values()),
            )
            if announce is not None:
                self._insert_event(db, announce)
        return record

    def metrics(self, task_id: int) -> MetricsRecord | None:
        rows = self._query("SELECT * FROM metrics WHERE task_id = ?", (task_id,))
        return MetricsRecord(**dict(rows[0])) if rows else None

    def generation_totals(self, generation: str) -> GenerationTotals:
        """Tokens and dollars spent by every run of a generation, and LOC it merged."""
        row = self._query(
            f"SELECT COUNT(*) AS runs, {USAGE_SUMS}, "
            "COALESCE(SUM(cost_usd), 0) AS cost_usd FROM runs WHERE generation = ?",
            (generation,),
        )[0]
        loc = self._query(
            "SELECT COALESCE(SUM(m.insertions), 0), COALESCE(SUM(m.deletions), 0) "
            "FROM metrics m JOIN tasks t ON t.id = m.task_id WHERE t.generation = ?",
            (generation,),
        )[0]
        return GenerationTotals(
            runs=int(row["runs"]),
            usage=usage_of(row),
            cost_usd=float(row["cost_usd"]),
            insertions=int(loc[0]),
            deletions=int(loc[1]),
        )
