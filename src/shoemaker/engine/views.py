"""Read-only views of a project for presentation: what the dashboard shows, loaded in one call.

The dashboard never runs SQL or git itself; it calls these functions through a thread and
renders the plain dataclasses they return. The same functions serve a dashboard attached to a
run that another process drives, because they read only the store and the repository.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shoemaker.agents.adapters import adapter_for
from shoemaker.agents.protocol import LineBuilder
from shoemaker.config import Config
from shoemaker.engine.budgets import BudgetLine, budget_lines
from shoemaker.events import CycleFinished
from shoemaker.model import ACTIVE_TASK_STATES, Generation, GenerationState, Task, TaskState, Usage
from shoemaker.store import RunRecord, Store, TaskUsage


@dataclass(frozen=True, slots=True)
class GenerationRow:
    name: str
    state: str
    branch: str
    base_branch: str
    cycle: int
    done: int
    total: int
    cost_usd: float
    created_at: float
    stopped_at: float | None
    rate_limited_until: float | None = None
    """When the rate limit that holds the generation resets (the dashboard counts down)."""


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    title: str
    state: TaskState
    depends_on: tuple[int, ...]
    attempts: int
    usage: Usage
    cost_usd: float
    duration_s: float
    reason: str
    branch: str
    priority: int
    started_at: float | None = None
    """When the task's latest run started (None before its first)."""
    so_far: SoFar | None = None
    """What its running agent spent so far (None when no agent of it runs)."""
    external_id: str = ""
    """The task's id in the plan file it was imported from ("" for measure's tasks)."""
    plan: str = ""
    """The plan it belongs to (``epics docs/plans/core``: a module, a master plan, a beads
    file), for the plans view; "" for measure's tasks."""


@dataclass(frozen=True, slots=True)
class SoFar:
    """A running agent's spend so far, from the per-message usage of its stream: the tokens
    its messages reported, and their cost at the configured price (an estimate)."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Totals:
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    insertions: int = 0
    deletions: int = 0
    done: int = 0
    failed: int = 0
    total: int = 0
    runs: int = 0
    blocked: int = 0
    conflict: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the main screen shows, as of one moment."""

    generations: tuple[GenerationRow, ...] = ()
    current: GenerationRow | None = None
    tasks: tuple[TaskRow, ...] = ()
    totals: Totals = field(default_factory=Totals)
    cost_per_task: tuple[float, ...] = ()
    duration_per_task: tuple[float, ...] = ()
    cycles: tuple[CycleFinished, ...] = ()
    budgets: tuple[BudgetLine, ...] = ()
    """Spend against each configured generation and day budget."""
    run_spans: tuple[tuple[float, float | None], ...] = ()
    """(start, end) of every agent run of the generation; end is None while it runs."""

    def active_s(self, now: float) -> float:
        """How long at least one agent was at work, up to ``now``."""
        return active_time(self.run_spans, now)

    def eta_s(self, now: float, parallel: int) -> float | None:
        """The time the tasks that will still run should take, from the measured wall time of
        the tasks done so far (agent, gates and merge); None when nothing will run or nothing
        was measured yet."""
        gen = self.current
        if gen is None or gen.state in (GenerationState.STOPPED, GenerationState.ABANDONED):
            return None
        active = [r for r in self.tasks if r.state in ACTIVE_TASK_STATES]
        waiting = [] if gen.state == GenerationState.PAUSED else will_start(self.tasks)
        if not active and not waiting:
            return None
        if not self.duration_per_task:
            return float("nan")
        mean = sum(self.duration_per_task) / len(self.duration_per_task)
        left = sum(max(0.0, mean - (now - (r.started_at or now))) for r in active)
        return (left + mean * len(waiting)) / max(1, parallel)


#: Task states that end a task's chances: what depends on them will not run.
_DEAD_ENDS = (TaskState.FAILED, TaskState.BLOCKED, TaskState.CONFLICT, TaskState.CANCELLED)


def will_start(tasks: Iterable[TaskRow]) -> list[TaskRow]:
    """Tasks that have not started and will: ready ones, and proposed ones none of whose
    dependencies failed, is blocked, in conflict or cancelled."""
    rows = list(tasks)
    dead = {r.id for r in rows if r.state in _DEAD_ENDS}
    return [
        r
        for r in rows
        if r.state == TaskState.READY
        or (r.state == TaskState.PROPOSED and not dead.intersection(r.depends_on))
    ]


def active_time(spans: Iterable[tuple[float, float | None]], now: float) -> float:
    """The length of the union of ``spans`` (an open span ends at ``now``)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted((s, now if e is None else e) for s, e in spans):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def _choose(generations: list[Generation], prefer: str | None) -> Generation | None:
    by_name = {g.name: g for g in generations}
    if prefer and prefer in by_name:
        return by_name[prefer]
    open_ = [
        g
        for g in generations
        if g.state not in (GenerationState.STOPPED, GenerationState.ABANDONED)
    ]
    if open_:
        return open_[-1]
    return generations[-1] if generations else None


def plan_group(task: Task) -> str:
    """Which plan a task belongs to: its epic's module directory, its master plan, its beads or
    measure file ("" when no plan file gave it)."""
    origin = task.origin
    if origin is None:
        return ""
    where = origin.path
    if origin.format == "epics":
        where = where.rsplit("/", 1)[0] if "/" in where else "."
    elif origin.format == "phases":
        where = str(task.extras.get("master_plan", where))
    return f"{origin.format} {where}"


def load_snapshot(
    store: Store,
    prefer: str | None = None,
    config: Config | None = None,
    live: LiveUsage | None = None,
) -> Snapshot:
    """Generations, the chosen one's tasks with their spend, totals and per-task series, and
    (given the configuration) spend against its budgets; given ``live``, what running agents
    spent so far."""
    generations = store.list_generations()
    rows = []
    for gen in generations:
        tasks = store.list_tasks(gen.name)
        spent = store.generation_totals(gen.name)
        rows.append(
            GenerationRow(
                gen.name,
                gen.state.value,
                gen.branch,
                gen.base_branch,
                gen.cycle,
                sum(1 for t in tasks if t.state == TaskState.DONE),
                len(tasks),
                spent.cost_usd,
                gen.created_at,
                gen.stopped_at,
                gen.rate_limited_until,
            )
        )
    chosen = _choose(generations, prefer)
    if chosen is None:
        return Snapshot(generations=tuple(rows))
    current = next(r for r in rows if r.name == chosen.name)
    usage = store.task_usage(chosen.name)
    tasks = store.list_tasks(chosen.name)
    runs = store.runs(generation=chosen.name)
    started = {r.task_id: r.started_at for r in runs if r.task_id is not None}
    running = [r for r in runs if r.ended_at is None]
    so_far = live.read(running) if live is not None else {}
    task_rows = []
    for t in tasks:
        u = usage.get(t.id, TaskUsage())
        task_rows.append(
            TaskRow(
                t.id,
                t.title,
                t.state,
                tuple(t.depends_on),
                t.attempts,
                u.usage,
                u.cost_usd,
                u.wall_s,
                t.reason,
                t.branch,
                t.priority,
                started_at=started.get(t.id),
                so_far=so_far.get(t.id),
                external_id=t.external_id,
                plan=plan_group(t),
            )
        )
    g = store.generation_totals(chosen.name)
    done = [r for r in task_rows if r.state == TaskState.DONE]
    done.sort(key=lambda r: next(t.updated_at for t in tasks if t.id == r.id))
    totals = Totals(
        g.usage,
        g.cost_usd,
        g.insertions,
        g.deletions,
        len(done),
        sum(1 for r in task_rows if r.state == TaskState.FAILED),
        len(task_rows),
        g.runs,
        sum(1 for r in task_rows if r.state == TaskState.BLOCKED),
        sum(1 for r in task_rows if r.state == TaskState.CONFLICT),
    )
    cycles = tuple(
        e
        for e in store.events_of_kind(chosen.name, ["cycle_finished"])
        if isinstance(e, CycleFinished)
    )
    return Snapshot(
        tuple(rows),
        current,
        tuple(task_rows),
        totals,
        tuple(r.cost_usd for r in done),
        tuple(_task_wall(store, r) for r in done),
        cycles,
        tuple(budget_lines(store, config, chosen.name)) if config is not None else (),
        tuple((r.started_at, r.ended_at) for r in runs),
    )


def _task_wall(store: Store, row: TaskRow) -> float:
    """A done task's measured wall time: from its attempt's start to its merge, gates and
    merge queue included; at least its agents' own time (a reviewed or recovered task's
    attempt was timed from its approval or recovery)."""
    measured = store.metrics(row.id)
    return max(measured.duration_s if measured else 0.0, row.duration_s)


class LiveUsage:
    """What running agents spent so far: the usage each message reported (the latest per
    message id, as the final accounting does), priced at the configured price of the model
    the stream names.

    A run this process's engine runs is read from what its parser has seen
    (``reported``: ``Project.spent_so_far``); any other (another process drives it, or a
    cluster's worker) from its transcript on disk as it grows, each call reading only what
    was appended since the last one. A run that ended is forgotten. Safe to call from
    several threads.
    """

    def __init__(
        self,
        runs_dir: Path,
        config: Config,
        reported: Mapping[int, tuple[str | None, Usage | None]] | None = None,
    ) -> None:
        self.runs_dir = runs_dir
        self.config = config
        self.reported = reported if reported is not None else {}
        self._lock = threading.Lock()
        self._read: dict[int, tuple[int, LineBuilder, tuple[bytes, ...]]] = {}

    def read(self, running: Iterable[RunRecord]) -> dict[int, SoFar]:
        """Per task id: the spend so far of its running agent(s)."""
        out: dict[int, SoFar] = {}
        with self._lock:
            keep: dict[int, tuple[int, LineBuilder, tuple[bytes, ...]]] = {}
            for run in running:
                if run.task_id is None:
                    continue
                # One lookup: the engine's thread adds and removes runs meanwhile.
                model, usage = self.reported.get(run.id) or self._from_transcript(run, keep)
                if usage is None:
                    continue
                _, price = self.config.price(model)
                before = out.get(run.task_id, SoFar())
                out[run.task_id] = SoFar(before.usage + usage, before.cost_usd + price.cost(usage))
            self._read = keep
        return out

    def _from_transcript(
        self, run: RunRecord, keep: dict[int, tuple[int, LineBuilder, tuple[bytes, ...]]]
    ) -> tuple[str | None, Usage | None]:
        offset, builder, markers = self._read.get(run.id) or self._start(run)
        offset = self._feed(run.id, offset, builder, markers)
        keep[run.id] = (offset, builder, markers)
        summary = builder.summary()
        return summary.model, summary.message_usage

    def _start(self, run: RunRecord) -> tuple[int, LineBuilder, tuple[bytes, ...]]:
        # The parser of the kind the run runs as, and the markers of its lines that carry
        # usage (each CLI names it its own way: claude "usage", gemini "stats").
        agent = self.config.agent_for(run.agent_kind)
        adapter = adapter_for(agent.kind)
        return 0, adapter.builder(agent), adapter.usage_markers

    def _feed(
        self, run_id: int, offset: int, builder: LineBuilder, markers: tuple[bytes, ...]
    ) -> int:
        try:
            with (self.runs_dir / f"{run_id}.jsonl").open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return offset
        whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        for line in whole.splitlines():
            # Only the lines that name the model or report usage are parsed: tool results,
            # the bulk of a transcript, are skipped unread.
            if any(marker in line for marker in markers):
                builder.feed(line)
        return offset + len(whole)
