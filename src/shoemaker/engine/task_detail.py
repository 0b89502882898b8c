"""What the task screen shows of one task: its log with each attempt's ending, its gates, and
its own diff (live, merged, on its branch or an earlier attempt's), loaded in one call each.

Like ``engine/views.py``, read-only and free of Textual: the dashboard calls these through a
thread and renders the dataclasses they return.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shoemaker.agents.adapters import ClaudeAdapter, adapter_for
from shoemaker.agents.protocol import AgentAdapter, LineBuilder
from shoemaker.agents.streamjson import SummaryBuilder
from shoemaker.engine.history import run_places, run_sandbox
from shoemaker.engine.project import Project
from shoemaker.engine.views import TaskRow, load_snapshot
from shoemaker.git import DiffStat, GitError
from shoemaker.store import RunRecord


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
    log_skipped: int = 0
    """Lines of the log before ``log`` (cut to the last ``max_lines``); with a `LogCache`, a
    later detail's log continues this one's when the sum of these two grew by what it added."""
    raw_skipped: int = 0
    source: str = ""
    """The plan file the task came from (``epics core/E03 · docs/plans/…``), "" for none."""
    sandboxes: Mapping[int, str] = field(default_factory=dict)
    """Run id → the sandbox it ran in, with its cluster worker: ``bwrap (on worker w1)``."""


#: How shoemaker's own lines (gates, merges, an agent's end) begin in a log of agent output.
MARK = "» "


def gate_verdict(
    name: str, where: str, passed: bool, exit_code: int | None, duration_s: float | None = None
) -> str:
    """``verifying: tests… failed (exit 1)``: one gate's verdict as a line of the log."""
    phase = {"merged": "after the merge", "setup": "worktree"}.get(where, "verifying")
    took = f", {duration_s:.1f}s" if duration_s is not None else ""
    if passed:
        return f"{MARK}{phase}: {name}… passed{f' ({took[2:]})' if took else ''}"
    code = "no exit code" if exit_code is None else f"exit {exit_code}"
    return f"{MARK}{phase}: {name}… failed ({code}{took})"


def last_lines(text: str | None, count: int) -> list[str]:
    """The last ``count`` non-blank lines of ``text``."""
    return [line for line in (text or "").splitlines() if line.strip()][-count:]


@dataclass
class _RunLog:
    """What has been read of one run's transcript: the bytes parsed, the parser's state, and
    its last lines, condensed and raw (with how many there were in all)."""

    max_lines: int
    offset: int = 0
    adapter: AgentAdapter = field(default_factory=ClaudeAdapter)
    """The kind of CLI that wrote the transcript: how to parse and condense it."""
    builder: LineBuilder = field(default_factory=SummaryBuilder)
    log: deque[str] = field(init=False)
    raw: deque[str] = field(init=False)
    log_count: int = 0
    raw_count: int = 0
    complete: bool = False
    _joining: bool = False
    """The last line shown is a text delta (gemini prints replies in chunks): the next delta
    continues it."""

    def __post_init__(self) -> None:
        self.log = deque(maxlen=self.max_lines)
        self.raw = deque(maxlen=self.max_lines)

    def feed(self, data: bytes, cwd: str) -> None:
        """Parse the whole lines of ``data`` (which starts at ``offset``)."""
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            text = line.decode("utf-8", "replace")
            self.raw.append(text)
            self.raw_count += 1
            event = self.builder.feed(line)
            shown = self.adapter.condense(event, cwd) if event else f"[not JSON: {text[:160]}]"
            delta = event is not None and event.data.get("delta") is True
            if shown and delta and self._joining and self.log:
                self.log[-1] += shown
                continue
            self._joining = bool(shown) and delta
            if shown:
                self.log.append(shown)
                self.log_count += 1
        self.offset += end


class LogCache:
    """The transcripts a task screen has read: a reload parses only the lines each run wrote
    since the last (a running agent's log grows by thousands of lines a second)."""

    def __init__(self) -> None:
        self.runs: dict[int, _RunLog] = {}

    def read(self, project: Project, run: RunRecord, max_lines: int) -> _RunLog:
        entry = self.runs.get(run.id)
        # Each run is read as the kind it ran as (a generation may mix kinds).
        agent = project.config.agent_for(run.agent_kind)
        adapter = adapter_for(agent.kind)
        if entry is None or entry.max_lines != max_lines or entry.adapter.kind != adapter.kind:
            entry = self.runs[run.id] = _RunLog(
                max_lines, adapter=adapter, builder=adapter.builder(agent)
            )
        if entry.complete:
            return entry
        data, complete = _bytes_after(project, run, entry.offset)
        if data is None:  # not the bytes read so far: read it all again
            entry = self.runs[run.id] = _RunLog(
                max_lines, adapter=adapter, builder=adapter.builder(agent)
            )
            data, complete = _bytes_after(project, run, 0)
        if complete and data and not data.endswith(b"\n"):
            data += b"\n"  # a last line without its newline (a killed agent's) counts too
        entry.feed(data or b"", run.cwd)
        entry.complete = complete
        return entry


def _bytes_after(project: Project, run: RunRecord, offset: int) -> tuple[bytes | None, bool]:
    """What run ``run`` wrote after ``offset`` and whether that is all it will write; None
    when its transcript is shorter than ``offset``."""
    try:
        with (project.runs_dir / f"{run.id}.jsonl").open("rb") as handle:
            handle.seek(offset)
            return handle.read(), False
    except FileNotFoundError:
        pass
    if run.ended_at is None:
        return b"", False  # not started writing yet
    # Finished: the store holds the transcript now (the very bytes the file held).
    data = project.store.transcript(run.id)
    return (data[offset:] if len(data) >= offset else None), True


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


def load_task_detail(
    project: Project, task_id: int, max_lines: int = 5000, cache: LogCache | None = None
) -> TaskDetail:
    """Task ``task_id`` in full; its log is the last ``max_lines`` lines (with ``cache``, only
    what the runs wrote since the last call is parsed)."""
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
    log_count = raw_count = 0
    cache = cache or LogCache()
    places = run_places(project, task)
    for run in runs:
        worker = f" · on {places[run.id].worker}" if run.id in places else ""
        header = f"── attempt {run.attempt} · run {run.id}{worker} ──"
        entry = cache.read(project, run, max_lines)
        ending = (
            _ending(run, [g for g in gates if g.run_id == run.id])
            if run.ended_at is not None
            else []
        )
        log += [header, *entry.log, *ending]
        raw += [header, *entry.raw]
        log_count += 1 + entry.log_count + len(ending)
        raw_count += 1 + entry.raw_count
        # Only the last max_lines are kept: the lists stay short however many runs there are.
        del log[:-max_lines], raw[:-max_lines]
    return TaskDetail(
        task=row,
        description=task.description,
        runs=tuple(runs),
        sandboxes={run.id: run_sandbox(run, places) for run in runs},
        gates=tuple(gates),
        prompt=runs[-1].prompt if runs else "",
        log=tuple(log),
        raw=tuple(raw),
        log_skipped=log_count - len(log),
        raw_skipped=raw_count - len(raw),
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
