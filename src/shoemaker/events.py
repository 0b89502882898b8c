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
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Self

import msgspec
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter

from shoemaker.model import GenerationState, TaskState, Usage


class _Event(BaseModel):
    # Each model's validator is built when the model is first used, not at import: a command
    # that only reads the store never builds them.
    model_config = ConfigDict(frozen=True, defer_build=True)

    ts: float = Field(default_factory=time.time)
    """Wall-clock time the event was emitted (seconds since the epoch)."""
    generation: str | None = None
    """The generation the event belongs to, when there is one."""

    _json: bytes | None = PrivateAttr(default=None)

    def json_bytes(self) -> bytes:
        """The event as JSON, serialised once however many times it is asked for."""
        if self._json is None:
            self._json = self._serialise()
        return self._json

    def _serialise(self) -> bytes:
        return self.model_dump_json().encode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        copy._json = None  # a copy with other values has other JSON
        return copy

    def __eq__(self, other: object) -> bool:
        # Equal by kind and fields alone: whether the JSON was cached is no part of the value.
        if not isinstance(other, _Event):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = BaseModel.__hash__


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


#: One line of agent output: the stream-json line's ``type`` or ``type/subtype`` (e.g.
#: ``assistant``, ``system/init``, ``invalid`` for a line that is not JSON) and its condensed
#: one-line rendering (``[Read: path]``, a text excerpt, ``[ERROR: …]``).
OutputLine = tuple[str, str]

#: Where a batch's condensed lines come from, made when asked: all of them (``None``) or only
#: the last ``most`` that show something. Secrets are out of what it returns.
OutputSource = Callable[[int | None], list[OutputLine]]


class AgentOutput(_Event):
    """The lines a running agent printed in one read of its stdout, by reference: the
    transcript's byte range ``[start, end)`` that holds them (the bytes as read, redacted
    when secrets exist) and how many lines that is (``read``). Nothing is condensed when the
    event is made: :meth:`shown` condenses the lines when they are shown, from the lines
    the engine keeps with the event in its own process (parsed again), or from the transcript for an
    event read back from the store (``engine/transcript_ranges.py`` gives it its source).
    Lines that show nothing (partial-message ``stream_event`` lines, an allowed rate limit)
    are left out of what it returns."""

    kind: Literal["agent_output"] = "agent_output"
    run_id: int
    task_id: int | None
    start: int = 0
    """Transcript offset of the batch's first byte."""
    end: int = 0
    """Transcript offset just past the batch's last line."""
    read: int = 0
    """Stream-json lines of the transcript this batch covers, shown or not."""

    _source: OutputSource | None = PrivateAttr(default=None)
    _lines: list[OutputLine] | None = PrivateAttr(default=None)

    @classmethod
    def of(
        cls,
        generation: str | None,
        run_id: int,
        task_id: int | None,
        span: tuple[int, int],
        read: int,
        source: OutputSource | None = None,
    ) -> AgentOutput:
        """A batch built by the engine from values it typed itself: not validated again (this
        is the per-read hot path; :func:`parse_event` validates what comes back from JSON)."""
        event = cls.model_construct(
            ts=time.time(),
            generation=generation,
            run_id=run_id,
            task_id=task_id,
            start=span[0],
            end=span[1],
            read=read,
        )
        event._source = source
        return event

    def with_source(self, source: OutputSource) -> AgentOutput:
        """This event, its lines to come from ``source`` (a reader of the store sets it)."""
        self._source = source
        self._lines = None
        return self

    @property
    def has_source(self) -> bool:
        return self._source is not None

    def shown(self, most: int | None = None) -> list[OutputLine]:
        """The batch's condensed lines in order, or only its last ``most``; condensed on the
        first call (a later call for fewer takes them from the first), none without a
        source."""
        lines = self._lines
        if lines is None:
            if self._source is None:
                return []
            if most is not None:
                return self._source(most)
            lines = self._lines = self._source(None)
        return lines if most is None or most >= len(lines) else lines[len(lines) - most :]

    @property
    def lines(self) -> list[OutputLine]:
        """Every condensed line of the batch, in order."""
        return self.shown()

    @property
    def texts(self) -> list[str]:
        """The condensed texts alone, in order."""
        return [text for _, text in self.shown()]

    def _serialise(self) -> bytes:
        return msgspec.json.encode(
            {
                "ts": self.ts,
                "generation": self.generation,
                "kind": self.kind,
                "run_id": self.run_id,
                "task_id": self.task_id,
                "start": self.start,
                "end": self.end,
                "read": self.read,
            }
        )

    def ndjson_bytes(self) -> bytes:
        """The event's JSON with its condensed lines added (``"lines": [[type, text], …]``):
        what ``--events ndjson`` prints, made only there."""
        lines = self.shown()
        try:
            encoded = msgspec.json.encode(lines)
        except UnicodeEncodeError:
            # A lone surrogate (a JSON "\ud800" escape the agent printed) cannot be UTF-8.
            encoded = msgspec.json.encode([(t, _utf8(x)) for t, x in lines])
        return self.json_bytes()[:-1] + b',"lines":' + encoded + b"}"


def _utf8(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


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
    | PlanStateChanged
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
