"""Gate results and per-task metrics, and a generation's totals."""

from __future__ import annotations

import time
from typing import Any

from shoemaker.store.base import StoreBase


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
