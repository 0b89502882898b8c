"""History files: one YAML record per measure and per finished task, under ``.shoemaker/history/``.

They repeat what the store knows in a form a person can read, grep or keep after the store is
gone: what ran, what it cost, what it changed. Each file is written whole (temp file + rename).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from shoemaker.agents.sandbox import sandbox_label, sandbox_of

if TYPE_CHECKING:
    from shoemaker.engine.project import Project
    from shoemaker.events import AgentStarted
    from shoemaker.model import Generation, Task
    from shoemaker.store import MetricsRecord, RunRecord


def _write(project: Project, path: Path, record: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = yaml.safe_dump(record, sort_keys=False, allow_unicode=True)
    tmp.write_text(project.redactor.text(text), encoding="utf-8")
    os.replace(tmp, path)
    return path


def run_places(project: Project, task: Task) -> dict[int, AgentStarted]:
    """Run id → the event that started it, for the task's runs on a cluster's workers (they
    name the worker and the sandbox it ran in there). Empty with ``executor: local``: read
    for every finished task, it is not worth a query when no run can have been there."""
    from shoemaker.events import AgentStarted

    if project.config.executor != "dask":
        return {}
    started = project.store.events_of_kind(task.generation, ["agent_started"], task.id)
    return {e.run_id: e for e in started if isinstance(e, AgentStarted) and e.worker}


def run_sandbox(run: RunRecord, places: dict[int, AgentStarted]) -> str:
    """The run's sandbox as its records say it: ``bwrap``, or ``bwrap (on worker w1)``."""
    place = places.get(run.id)
    if place is None:
        return sandbox_of(run.argv)
    return sandbox_label(run.argv, place.worker, place.sandbox)


def _run_record(run: RunRecord, places: dict[int, AgentStarted] | None = None) -> dict[str, Any]:
    return {
        "run": run.id,
        "attempt": run.attempt,
        "sandbox": run_sandbox(run, places or {}),
        "ok": run.ok,
        "exit_code": run.exit_code,
        "subtype": run.subtype,
        "reason": run.reason,
        "session_id": run.session_id,
        "agent": run.agent_kind,
        "model": run.model,
        "tokens": {
            "input": run.usage.input_tokens,
            "output": run.usage.output_tokens,
            "cache_creation": run.usage.cache_creation_input_tokens,
            "cache_read": run.usage.cache_read_input_tokens,
        },
        "cost_usd": run.cost_usd,
        "cost_estimated": run.cost_estimated,
        "num_turns": run.num_turns,
        "wall_s": round(run.wall_s or 0.0, 3),
    }


def write_measure_history(
    project: Project, generation: Generation, cycle: int, run: RunRecord, tasks: list[Task]
) -> Path:
    record = {
        "kind": "measure",
        "generation": generation.name,
        "cycle": cycle,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **_run_record(run),
        "proposed": [{"id": t.id, "title": t.title, "depends_on": t.depends_on} for t in tasks],
    }
    path = project.history_dir / generation.name / f"cycle-{cycle:03d}-measure.yaml"
    return _write(project, path, record)


def task_history_path(project: Project, task: Task) -> Path:
    """Where a finished task's record is written."""
    return project.history_dir / task.generation / f"task-{task.id:04d}.yaml"


def write_task_history(
    project: Project,
    task: Task,
    task_runs: Sequence[RunRecord] | None = None,
    metrics: MetricsRecord | None = None,
) -> Path:
    """The record of a finished task; ``task_runs`` (its runs) and ``metrics`` (a merged
    task's), when the caller has them."""
    if metrics is None:
        metrics = project.store.metrics(task.id)
    if task_runs is None:
        task_runs = project.store.runs(task_id=task.id)
    places = run_places(project, task)
    runs = [_run_record(r, places) for r in task_runs]
    record = {
        "kind": "task",
        "generation": task.generation,
        "task": task.id,
        "title": task.title,
        "state": task.state.value,
        "reason": task.reason,
        "attempts": task.attempts,
        "depends_on": task.depends_on,
        "merged_commit": task.merged_commit,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": runs,
        # What the commit's trailers say: every run of the task, summed.
        "total": {
            "runs": len(runs),
            "tokens": {
                key: sum(r["tokens"][key] for r in runs)
                for key in ("input", "output", "cache_creation", "cache_read")
            },
            "cost_usd": sum(r["cost_usd"] for r in runs),
            "cost_estimated": any(r["cost_estimated"] for r in runs),
        },
        "gates": [
            {
                "name": g.name,
                "where": g.location,
                "passed": g.passed,
                "exit_code": g.exit_code,
                "duration_s": round(g.duration_s, 3),
            }
            for g in project.store.gate_results(task.id)
        ],
        "metrics": {
            k: v for k, v in (asdict(metrics) if metrics else {}).items() if k != "task_id"
        },
    }
    path = task_history_path(project, task)
    return _write(project, path, record)
