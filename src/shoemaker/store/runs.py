"""Agent runs: intent first, outcome and compressed transcript, spend."""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoemaker.model import Spend, Usage
from shoemaker.store.base import StoreBase, StoreError
from shoemaker.store.metrics import USAGE_SUMS, usage_of

if TYPE_CHECKING:
    from shoemaker.events import Event


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
    usage: Usage
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
    agent_kind: str = "claude"
    """The agent CLI the run was launched as (``agent.kind``, or its task's ``agent:``)."""
    model: str = ""
    """The model: configured (empty: the CLI's default), then the one its stream named."""


#: The token counts are four columns of ``runs``, one field (``usage``) of a record.
_USAGE_COLUMNS = list(Usage.__dataclass_fields__)
_RUN_COLUMNS = [
    c for f in RunRecord.__dataclass_fields__ for c in (_USAGE_COLUMNS if f == "usage" else [f])
]


@dataclass(frozen=True, slots=True)
class TaskUsage:
    """What every run of one task spent: tokens, dollars and agent wall time."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    wall_s: float = 0.0
    runs: int = 0


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


class RunStore(StoreBase):
    """The ``runs`` table."""

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
        agent_kind: str = "claude",
        model: str = "",
    ) -> int:
        """Record a run before its process starts (intent first); returns its id."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (generation, task_id, phase, attempt, prompt, argv, env_names, "
                "cwd, started_at, agent_kind, model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    agent_kind,
                    model,
                ),
            )
            return int(cur.lastrowid or 0)

    def set_run_pid(self, run_id: int, pid: int, announce: Event | None = None) -> None:
        """Record the process a run started, with the event that announces it."""
        with self._tx() as db:
            db.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run_id))
            if announce is not None:
                self._insert_event(db, announce)

    def finish_run(
        self,
        run_id: int,
        *,
        transcript: bytes | Path,
        usage: Usage | None = None,
        announce: Event | None = None,
        **values: Any,
    ) -> RunRecord:
        """Store a run's outcome (columns of ``runs`` by name, the token counts as ``usage``)
        and its raw transcript, compressed, with the event that announces it; returns the run
        as stored.

        ``transcript`` is the raw bytes or the file that holds them; a file is compressed in
        chunks, so a transcript of hundreds of megabytes never sits in memory whole. A
        missing file stores an empty transcript.
        """
        unknown = set(values) - (set(_RUN_COLUMNS) - set(_USAGE_COLUMNS))
        if unknown:
            raise ValueError(f"unknown run fields {sorted(unknown)}")
        if usage is not None:
            values.update(asdict(usage))
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
            if announce is not None:
                self._insert_event(db, announce)
            row = db.execute(
                f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        if row is None:
            raise StoreError(f"no run with id {run_id}")
        return self._run(row)

    def get_run(self, run_id: int) -> RunRecord:
        rows = self._query(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError(f"no run with id {run_id}")
        return self._run(rows[0])

    @staticmethod
    def _run(row: sqlite3.Row) -> RunRecord:
        data = dict(row)
        data["usage"] = Usage(*(int(data.pop(c) or 0) for c in _USAGE_COLUMNS))
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
            f"SELECT {USAGE_SUMS}, COALESCE(SUM(cost_usd), 0), "
            "COALESCE(SUM(COALESCE(wall_s, ? - started_at)), 0) "
            "FROM runs WHERE " + " AND ".join(where),
            [time.time(), *params],
        )[0]
        return Spend(usage_of(row), float(row[4]), float(row[5]))

    def task_usage(self, generation: str) -> dict[int, TaskUsage]:
        """Per task: tokens, dollars and agent wall time summed over all its runs."""
        rows = self._query(
            f"SELECT task_id, {USAGE_SUMS}, "
            "SUM(cost_usd) AS cost_usd, SUM(COALESCE(wall_s, 0)) AS wall_s, COUNT(*) AS runs "
            "FROM runs WHERE generation = ? AND task_id IS NOT NULL GROUP BY task_id",
            (generation,),
        )
        return {
            int(r["task_id"]): TaskUsage(
                usage_of(r), float(r["cost_usd"]), float(r["wall_s"]), int(r["runs"])
            )
            for r in rows
        }

    def transcript(self, run_id: int) -> bytes:
        """The raw stdout of a run, decompressed (empty while it is still running)."""
        rows = self._query("SELECT transcript FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError(f"no run with id {run_id}")
        blob = rows[0][0]
        return zlib.decompress(blob) if blob else b""
