"""The one typed event stream: everything the engine does that a person may want to see.

Each event is a pydantic model with a ``kind`` literal, so the whole stream is one discriminated
union (:data:`Event`) that round-trips through JSON: the store appends every event to its log,
``shoemaker run --events ndjson`` prints them, and a dashboard in another process reads them back
with :func:`parse_event`. An event is serialised once (:meth:`_Event.json_bytes`): the store
writes those bytes and the NDJSON printer prints them.

Agent output is the one event that comes at the agent's pace: one :class:`AgentOutput` per read
from the agent's stdout, not one event per line, naming the read's lines in the transcript;
they are condensed only where and when they are shown.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from shoemaker.events.agent_output import AgentOutput as AgentOutput
from shoemaker.events.agent_output import OutputLine as OutputLine
from shoemaker.events.agent_output import OutputSource as OutputSource
from shoemaker.events.base import _Event
from shoemaker.model import GenerationState, TaskState, Usage


def _usage(event: AgentFinished | MetricsRecorded) -> Usage:
    return Usage(
        event.input_tokens,
        event.output_tokens,
        event.cache_creation_input_tokens,
        event.cache_read_input_tokens,
    )


class GenerationStateChanged(_Event):
    """A generation was started, began running, went idle, was stopped or abandoned."""

    kind: Literal["generation_state"] = "generation_state"
    old: GenerationState | None
    new: GenerationState
    reason: str = ""
    branch: str = ""
    base_branch: str = ""


class CycleStarted(_Event):
    """A measure+stitch cycle began."""

    kind: Literal["cycle_started"] = "cycle_started"
    cycle: int


class CycleFinished(_Event):
    """A cycle ended; ``merged`` tasks landed on the generation branch during it."""

    kind: Literal["cycle_finished"] = "cycle_finished"
    cycle: int
    merged: int
    failed: int
    loc_delta: int = 0


class TaskStateChanged(_Event):
    """A task moved from one state to another (``old`` is None when it was just created)."""

    kind: Literal["task_state"] = "task_state"
    task_id: int
    title: str
    old: TaskState | None
    new: TaskState
    reason: str = ""
    attempt: int = 0
    depends_on: list[int] = Field(default_factory=list)


class AgentStarted(_Event):
    """An agent process was launched."""

    kind: Literal["agent_started"] = "agent_started"
    run_id: int
    task_id: int | None
    phase: str
    attempt: int = 0
    argv: list[str]
    cwd: str
    pid: int | None = None
    worker: str = ""
    """The cluster worker it runs on (``executor: dask``); empty: this machine."""
    sandbox: str = ""
    """The sandbox its worker runs it in (a cluster's run, whose ``argv`` is the bare
    command line); empty: the one ``argv`` shows."""


class AgentFinished(_Event):
    """An agent process ended, and what its transcript says about how."""

    kind: Literal["agent_finished"] = "agent_finished"
    run_id: int
    task_id: int | None
    phase: str
    ok: bool
    exit_code: int | None
    ended: str
    """``result`` when a result line arrived, else ``no_result``."""
    subtype: str | None = None
    is_error: bool | None = None
    reason: str = ""
    """Why the run is not ok, or why shoemaker killed it (``timeout``, ``idle``…)."""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    cost_estimated: bool = False
    """No result line gave the cost: the run's message usage at the configured price."""
    wall_s: float = 0.0

    @property
    def usage(self) -> Usage:
        """The token counts as one value (on the wire they stay four fields)."""
        return _usage(self)


class GateResult(_Event):
    """A configured gate ran in a task's worktree or on the generation branch."""

    kind: Literal["gate_result"] = "gate_result"
    task_id: int
    name: str
    where: str
    passed: bool
    exit_code: int | None
    expected_exit: int = 0
    duration_s: float = 0.0
    output_tail: str = ""
    reason: str = ""


class MergeResult(_Event):
    """A task branch was merged into the generation branch, or the merge was aborted."""

    kind: Literal["merge_result"] = "merge_result"
    task_id: int
    branch: str
    merged: bool
    commit: str = ""
    conflict_files: list[str] = Field(default_factory=list)
    reason: str = ""


class MetricsRecorded(_Event):
    """What a merged task cost and changed."""

    kind: Literal["metrics"] = "metrics"
    task_id: int
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    prod_loc_before: int = 0
    prod_loc_after: int = 0
    test_loc_before: int = 0
    test_loc_after: int = 0

    @property
    def usage(self) -> Usage:
        """The token counts as one value (on the wire they stay four fields)."""
        return _usage(self)


class MeasureFinished(_Event):
    """measure ended: the ids of the tasks it added (empty when it proposed none)."""

    kind: Literal["measure_finished"] = "measure_finished"
    run_id: int | None
    task_ids: list[int]
    source: str = ""
    """Where the proposals were read from: the JSON file, the fenced YAML in the text, or none."""


class PlanStateChanged(_Event):
    """A plan moved: created, validated, approved, executing, complete, rejected, failed,
    rolled back."""

    kind: Literal["plan_state"] = "plan_state"
    plan_id: int
    old: str | None
    new: str
    reason: str = ""


class BudgetCrossed(_Event):
    """A spending limit was reached: the generation pauses (running agents finish, or are
    cancelled when ``budgets.on_cross`` says so)."""

    kind: Literal["budget_crossed"] = "budget_crossed"
    scope: str
    """``task #ID``, ``cycle``, ``generation`` or ``day``."""
    metric: str
    """``tokens``, ``usd`` or ``wall_sec``."""
    spent: float
    limit: float
    action: str
    """``finish`` or ``cancel``: what happens to running agents."""
    message: str


RateLimitStatus = Literal["allowed_warning", "rejected"]


class RateLimited(_Event):
    """The provider rate-limits the agents. ``rejected``: an agent was refused, the generation
    is ``rate_limited`` and starts no agent until ``resets_at``, then resumes by itself (the
    interrupted attempts do not count against ``max_retries``). ``allowed_warning``: agents
    still run, but at most ``parallel`` at once until ``resets_at``."""

    kind: Literal["rate_limited"] = "rate_limited"
    status: RateLimitStatus
    resets_at: float
    """When the limit resets (seconds since the epoch)."""
    task_id: int | None = None
    """The task whose agent met the limit (None: measure, or a limit restored after a restart)."""
    run_id: int | None = None
    parallel: int | None = None
    """With ``allowed_warning``: how many agents may run at once until the reset."""
    reason: str = ""


class RateLimitCleared(_Event):
    """The reset time of a rate limit passed: the generation runs again (``rejected``) or at
    its full parallelism again (``allowed_warning``)."""

    kind: Literal["rate_limit_cleared"] = "rate_limit_cleared"
    status: RateLimitStatus
    resets_at: float
    """The reset time that passed."""


class Recovered(_Event):
    """Before a run, recovery reconciled what a dead shoemaker process left (see
    ``engine/recovery.py``); each list holds what was found, ``summary`` says it in words."""

    kind: Literal["recovered"] = "recovered"
    killed_pids: list[int] = Field(default_factory=list)
    landed: list[int] = Field(default_factory=list)
    requeued: list[int] = Field(default_factory=list)
    closed_runs: list[int] = Field(default_factory=list)
    worktrees_removed: int = 0
    merge_undone: bool = False
    summary: str = ""


class BatchFinished(_Event):
    """A scheduled batch ended (``shoemaker schedule run`` or the schedule daemon): ran to its
    end or a limit, was skipped, or failed. ``notify`` is the schedule's
    ``notify_on_complete``: whether the notification channels should hear of it."""

    kind: Literal["batch_finished"] = "batch_finished"
    schedule: str
    outcome: Literal["finished", "skipped", "failed"]
    """finished: it ran (to its end or a limit); skipped: it did not start; failed: an error
    ended it."""
    reason: str
    """Why it ended, in words: ``max_tasks reached``, ``another run in progress``, …"""
    tasks_done: int = 0
    tasks_failed: int = 0
    started: float = 0.0
    """When the batch began (seconds since the epoch); ``ts`` is when it ended."""
    notify: bool = False


NoticeLevel = Literal["debug", "info", "warning", "error"]


class Notice(_Event):
    """Free text for a person: what is happening that no other event describes."""

    # Serialised as "log", as it always was: stored events and the NDJSON stream keep their shape.
    kind: Literal["log"] = "log"
    level: NoticeLevel = "info"
    message: str
    task_id: int | None = None


Event = Annotated[
    GenerationStateChanged
    | CycleStarted
    | CycleFinished
    | TaskStateChanged
    | AgentStarted
    | AgentOutput
    | AgentFinished
    | GateResult
    | MergeResult
    | MetricsRecorded
    | MeasureFinished
    | Recovered
    | BudgetCrossed
    | RateLimited
    | RateLimitCleared
    | PlanStateChanged
    | BatchFinished
    | Notice,
    Field(discriminator="kind"),
]


@functools.cache
def _adapter() -> TypeAdapter[Event]:
    return TypeAdapter(Event)


def parse_event(data: str | bytes | dict[str, Any]) -> Event:
    """Turn a stored or printed event (JSON text or a dict) back into its typed model."""
    if isinstance(data, dict):
        return _adapter().validate_python(data)
    return _adapter().validate_json(data)


def event_task_id(event: Event) -> int | None:
    """The task an event is about, if any."""
    return getattr(event, "task_id", None)
