"""The JSON of ``/api/status``: the generations, the current one's tasks and totals, read from
the store through the same view the dashboard draws (``engine/views.load_snapshot``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from shoemaker.engine.views import load_snapshot
from shoemaker.store import Store


def status(store: Store) -> dict[str, Any]:
    """What a script or a phone widget needs to know, as plain JSON values."""
    snapshot = load_snapshot(store)
    generations = [
        {
            "name": g.name,
            "state": g.state,
            "branch": g.branch,
            "base_branch": g.base_branch,
            "cycle": g.cycle,
            "tasks_done": g.done,
            "tasks_total": g.total,
            "cost_usd": round(g.cost_usd, 6),
        }
        for g in snapshot.generations
    ]
    tasks = [
        {
            "id": t.id,
            "title": t.title,
            "state": t.state.value,
            "depends_on": list(t.depends_on),
            "attempts": t.attempts,
            "tokens": dataclasses.asdict(t.usage),
            "cost_usd": round(t.cost_usd, 6),
            "duration_s": round(t.duration_s, 3),
            "reason": t.reason,
        }
        for t in snapshot.tasks
    ]
    totals = snapshot.totals
    return {
        "current": snapshot.current.name if snapshot.current is not None else None,
        "generations": generations,
        "tasks": tasks,
        "totals": {
            "tasks": totals.total,
            "done": totals.done,
            "failed": totals.failed,
            "blocked": totals.blocked,
            "conflict": totals.conflict,
            "runs": totals.runs,
            "tokens": dataclasses.asdict(totals.usage),
            "cost_usd": round(totals.cost_usd, 6),
            "lines_added": totals.insertions,
            "lines_removed": totals.deletions,
        },
    }
