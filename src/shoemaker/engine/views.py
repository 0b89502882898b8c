"""Read-only views of a project for presentation: what the dashboard shows, loaded in one call.

The dashboard never runs SQL or git itself; it calls these functions through a thread and
renders the plain dataclasses they return. The same functions serve a dashboard attached to a
run that another process drives, because they read only the store and the repository.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shoemaker.agents.streamjson import SummaryBuilder, condense
from shoemaker.config import Config
from shoemaker.engine.budgets import BudgetLine, budget_lines
from shoemaker.engine.project import Project
from shoemaker.events import CycleFinished
from shoemaker.git import DiffStat, GitError
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
    """What running agents spent so far, read from their transcripts on disk as they grow:
    the usage each message reported (the latest per message id, as the final accounting
    does), priced at the configured price of the model the stream names.

    Each call reads only what was appended since the last one; a run that ended is
    forgotten. Safe to call from several threads.
    """

    def __init__(self, runs_dir: Path, config: Config) -> None:
        self.runs_dir = runs_dir
        self.config = config
        self._lock = threading.Lock()
        self._read: dict[int, tuple[int, SummaryBuilder]] = {}

    def read(self, running: Iterable[RunRecord]) -> dict[int, SoFar]:
        """Per task id: the spend so far of its running agent(s)."""
        out: dict[int, SoFar] = {}
        with self._lock:
            keep: dict[int, tuple[int, SummaryBuilder]] = {}
            for run in running:
                if run.task_id is None:
                    continue
                offset, builder = self._read.get(run.id, (0, SummaryBuilder()))
                offset = self._feed(run.id, offset, builder)
                keep[run.id] = (offset, builder)
                summary = builder.summary()
                if summary.message_usage is None:
                    continue
                _, price = self.config.price(summary.model)
                before = out.get(run.task_id, SoFar())
                out[run.task_id] = SoFar(
                    before.usage + summary.message_usage,
                    before.cost_usd + price.cost(summary.message_usage),
                )
            self._read = keep
        return out

    def _feed(self, run_id: int, offset: int, builder: SummaryBuilder) -> int:
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
            if b'"usage"' in line or b'"init"' in line:
                builder.feed(line)
        return offset + len(whole)


@dataclass(frozen=True, slots=True)
class GateRow:
    """One gate's verdict on one attempt, with the tail of what it printed."""

    name: str
    where: str
    """``worktree`` (after the agent) or ``merged`` (on the generation branch)."""
    passed: bool
    exit_code: int | None
    duration_s: float
    output_tail: str
    attempt: int | None
    """The attempt of the run the gate checked (None when it checked no run)."""
    run_id: int | None


@dataclass(frozen=True, slots=True)
class TaskDetail:
    """What the task screen shows, apart from the live diff."""

    task: TaskRow
    description: str
    runs: tuple[RunRecord, ...]
    gates: tuple[GateRow, ...]
    prompt: str
    log: tuple[str, ...]
    raw: tuple[str, ...]
    source: str = ""
    """The plan file the task came from (``epics core/E03 · docs/plans/…``), "" for none."""


#: How shoemaker's own lines (gates, merges, an agent's end) begin in a log of agent output.
MARK = "» "


def gate_verdict(
    name: str, where: str, passed: bool, exit_code: int | None, duration_s: float | None = None
) -> str:
    """``verifying: tests… failed (exit 1)``: one gate's verdict as a line of the log."""
    phase = "after the merge" if where == "merged" else "verifying"
    took = f", {duration_s:.1f}s" if duration_s is not None else ""
    if passed:
        return f"{MARK}{phase}: {name}… passed{f' ({took[2:]})' if took else ''}"
    code = "no exit code" if exit_code is None else f"exit {exit_code}"
    return f"{MARK}{phase}: {name}… failed ({code}{took})"


def last_lines(text: str | None, count: int) -> list[str]:
    """The last ``count`` non-blank lines of ``text``."""
    return [line for line in (text or "").splitlines() if line.strip()][-count:]


def _run_lines(project: Project, run: RunRecord) -> list[bytes]:
    data = project.store.transcript(run.id)
    if not data:  # still running: the transcript is only on disk so far
        with contextlib.suppress(FileNotFoundError):
            data = (project.runs_dir / f"{run.id}.jsonl").read_bytes()
    return [line for line in data.splitlines() if line.strip()]


def _ending(run: RunRecord, gates: list[GateRow]) -> list[str]:
    """How an attempt ended: the agent's verdict, its last words when it failed, then the
    gates' verdicts (with the tail of a failed gate's output)."""
    lines = [f"{MARK}ended: {'ok' if run.ok else run.reason or 'not ok'}"]
    if not run.ok:
        if run.is_error and run.result_text:
            lines += [f"{MARK}result: {line}" for line in last_lines(run.result_text, 3)]
        lines += [f"{MARK}stderr: {line}" for line in last_lines(run.stderr_tail, 8)]
    for g in gates:
        lines.append(gate_verdict(g.name, g.where, g.passed, g.exit_code, g.duration_s))
        if not g.passed:
            lines += [f"{MARK}  {line}" for line in last_lines(g.output_tail, 5)]
    return lines


def load_task_detail(project: Project, task_id: int, max_lines: int = 5000) -> TaskDetail:
    store = project.store
    task = store.get_task(task_id)
    snapshot = load_snapshot(store, task.generation)
    row = next(r for r in snapshot.tasks if r.id == task_id)
    runs = store.runs(task_id=task_id)
    attempt_of = {run.id: run.attempt for run in runs}
    gates = [
        GateRow(
            g.name,
            g.location,
            g.passed,
            g.exit_code,
            g.duration_s,
            g.output_tail,
            attempt_of.get(g.run_id) if g.run_id is not None else None,
            g.run_id,
        )
        for g in store.gate_results(task_id)
    ]
    log: list[str] = []
    raw: list[str] = []
    for run in runs:
        header = f"── attempt {run.attempt} · run {run.id} ──"
        log.append(header)
        raw.append(header)
        builder = SummaryBuilder()
        for line in _run_lines(project, run):
            text = line.decode("utf-8", "replace")
            raw.append(text)
            event = builder.feed(line)
            shown = condense(event, run.cwd) if event else f"[not JSON: {text[:160]}]"
            if shown:
                log.append(shown)
        if run.ended_at is not None:
            log += _ending(run, [g for g in gates if g.run_id == run.id])
    return TaskDetail(
        task=row,
        description=task.description,
        runs=tuple(runs),
        gates=tuple(gates),
        prompt=runs[-1].prompt if runs else "",
        log=tuple(log[-max_lines:]),
        raw=tuple(raw[-max_lines:]),
        source=(
            f"{task.origin.format} {task.origin.external_id} · {task.origin.path}"
            + (
                f" · GitHub issue {task.extras['github_issue']}"
                if task.extras.get("github_issue") is not None
                else ""
            )
            if task.origin
            else ""
        ),
    )


@dataclass(frozen=True, slots=True)
class TaskDiff:
    """A task's changes: live from its worktree while its branch is checked out there, else
    from its commits."""

    source: str
    """``worktree``, ``branch``, ``merged``, ``attempt`` or ``none``."""
    stat: DiffStat
    text: str
    ref: str = ""
    """The branch shown, for ``branch`` and ``attempt``."""


def _newest_attempt(branches: list[str]) -> str | None:
    """``attempt/G-ID-N[.K]`` with the highest N, then K."""

    def number(branch: str) -> tuple[int, ...]:
        tail = branch.rsplit("-", 1)[-1]
        return tuple(int(p) for p in tail.split(".") if p.isdigit())

    return max(branches, key=number, default=None)


def load_diff(project: Project, task_id: int) -> TaskDiff:
    """The changes of task ``task_id`` and nothing else.

    Pooled worktrees are reused: the one a task ran in may hold another task's branch by now
    (a task waiting for review, failed or in conflict has given its worktree back). So the
    worktree is shown only while it has this task's branch checked out; otherwise the merged
    commit, else the task branch against its merge base with the generation branch, else
    the newest ``attempt/*`` branch an earlier attempt's work was set aside on.
    """
    store, git = project.store, project.git
    task = store.get_task(task_id)
    gen = store.get_generation(task.generation)
    empty = TaskDiff("none", DiffStat(()), "")
    try:
        has_branch = bool(task.branch) and git.ref_exists(f"refs/heads/{task.branch}")
        target = gen.branch if git.ref_exists(f"refs/heads/{gen.branch}") else gen.base_branch
        worktree = Path(task.worktree) if task.worktree else None
        if (
            has_branch
            and worktree is not None
            and worktree.is_dir()
            and git.current_branch(worktree) == task.branch
        ):
            base = git.merge_base(task.branch, target)
            return TaskDiff(
                "worktree",
                git.diff_stat_worktree(worktree, base),
                git.diff_text(base, cwd=worktree),
            )
        if task.merged_commit:
            parent = f"{task.merged_commit}^"
            return TaskDiff(
                "merged",
                git.diff_stat(parent, task.merged_commit),
                git.diff_text(parent, task.merged_commit),
            )
        if has_branch:
            base = git.merge_base(task.branch, target)
            return TaskDiff(
                "branch",
                git.diff_stat(base, task.branch),
                git.diff_text(base, task.branch),
                task.branch,
            )
        kept = _newest_attempt(git.branches(f"attempt/{gen.name}-{task.id}-*"))
        if kept:
            base = git.merge_base(kept, target)
            return TaskDiff("attempt", git.diff_stat(base, kept), git.diff_text(base, kept), kept)
    except (GitError, OSError):
        return empty
    return empty
