"""The vocabulary every layer shares: task and generation states, their legal transitions, usage.

Kept free of I/O so that the store, the engine, the CLI and the dashboard can all import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    """Where a task is in its life. The happy path runs from ``proposed`` to ``done``."""

    PROPOSED = "proposed"
    READY = "ready"
    RUNNING = "running"
    VERIFYING = "verifying"
    MERGING = "merging"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"
    """A dependency failed or is blocked, or the task's agent signalled that it needs a person
    (``shoemaker done --status blocked``); the reason says which."""
    CONFLICT = "conflict"
    NEEDS_REVIEW = "needs_review"
    CANCELLED = "cancelled"


_T = TaskState

#: Every legal move of a task. Anything else is a bug and raises :class:`IllegalTransition`.
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _T.PROPOSED: frozenset({_T.READY, _T.BLOCKED, _T.CANCELLED}),
    _T.READY: frozenset({_T.RUNNING, _T.BLOCKED, _T.CANCELLED}),
    # running → ready: the attempt was interrupted (pause, crash) and counts, but the task
    # itself did not fail. running → blocked: its agent signalled that it cannot go on.
    _T.RUNNING: frozenset({_T.VERIFYING, _T.FAILED, _T.READY, _T.BLOCKED, _T.CANCELLED}),
    _T.VERIFYING: frozenset({_T.MERGING, _T.FAILED, _T.READY, _T.NEEDS_REVIEW, _T.CANCELLED}),
    _T.MERGING: frozenset({_T.DONE, _T.CONFLICT, _T.FAILED, _T.READY}),
    _T.NEEDS_REVIEW: frozenset({_T.MERGING, _T.READY, _T.CANCELLED}),
    _T.CONFLICT: frozenset({_T.READY, _T.MERGING, _T.CANCELLED}),
    _T.FAILED: frozenset({_T.READY, _T.CANCELLED}),
    # blocked → proposed: a person retried the task whose failure blocked it
    # (`shoemaker task retry`); it waits for that task again, and is promoted once it is done.
    _T.BLOCKED: frozenset({_T.READY, _T.PROPOSED, _T.CANCELLED}),
    # done → cancelled / ready: a person reverted the merged task (`shoemaker task revert`).
    _T.DONE: frozenset({_T.CANCELLED, _T.READY}),
    _T.CANCELLED: frozenset(),
}

#: States of a task yet to start. With no attempt, it may go ``done`` without running when
#: its plan file says a person finished it (``Store.mark_planned_done``). That move is kept out
#: of ``TASK_TRANSITIONS`` so that nothing else makes it: a merge landing on a task that
#: recovery sent back to ``ready`` must still fail.
NOT_STARTED_STATES = frozenset({_T.PROPOSED, _T.READY})
#: States in which a task will not move again without a person or a retry deciding so.
TERMINAL_TASK_STATES = frozenset({_T.DONE, _T.FAILED, _T.BLOCKED, _T.CONFLICT, _T.CANCELLED})
#: States in which an agent or shoemaker is working on the task right now.
ACTIVE_TASK_STATES = frozenset({_T.RUNNING, _T.VERIFYING, _T.MERGING})


class IllegalTransition(ValueError):
    """A state change that the state machine does not allow."""


def check_task_transition(task_id: int, old: TaskState, new: TaskState) -> None:
    """Raise :class:`IllegalTransition` unless ``old → new`` is a legal move for a task."""
    if new not in TASK_TRANSITIONS[old]:
        raise IllegalTransition(f"task {task_id}: illegal transition {old} → {new}")


class GenerationState(StrEnum):
    """Where a generation is. ``active`` means started and idle; ``running`` means cycles run."""

    ACTIVE = "active"
    RUNNING = "running"
    PAUSED = "paused"
    RATE_LIMITED = "rate_limited"
    """The provider refused the agents for now: no agent starts until the reset time
    (``Generation.rate_limited_until``), then the run goes on by itself."""
    STOPPED = "stopped"
    ABANDONED = "abandoned"


_G = GenerationState

GENERATION_TRANSITIONS: dict[GenerationState, frozenset[GenerationState]] = {
    _G.ACTIVE: frozenset({_G.RUNNING, _G.STOPPED, _G.ABANDONED, _G.PAUSED, _G.RATE_LIMITED}),
    _G.RUNNING: frozenset({_G.ACTIVE, _G.PAUSED, _G.STOPPED, _G.ABANDONED, _G.RATE_LIMITED}),
    _G.PAUSED: frozenset({_G.RUNNING, _G.ACTIVE, _G.STOPPED, _G.ABANDONED, _G.RATE_LIMITED}),
    # A run waits out the reset in this state (a restarted one too), then runs again.
    _G.RATE_LIMITED: frozenset({_G.RUNNING, _G.ACTIVE, _G.PAUSED, _G.STOPPED, _G.ABANDONED}),
    _G.STOPPED: frozenset(),
    _G.ABANDONED: frozenset(),
}


#: States in which a shoemaker process drives the generation (or did, until it died).
DRIVEN_GENERATION_STATES = frozenset({_G.RUNNING, _G.RATE_LIMITED})


def check_generation_transition(name: str, old: GenerationState, new: GenerationState) -> None:
    """Raise :class:`IllegalTransition` unless ``old → new`` is legal for a generation."""
    if new not in GENERATION_TRANSITIONS[old]:
        raise IllegalTransition(f"generation {name}: illegal transition {old} → {new}")


class PlanState(StrEnum):
    """A plan's life: measure's proposals wait for a person before they run."""

    CREATED = "created"
    VALIDATED = "validated"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETE = "complete"
    REJECTED = "rejected"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


_P = PlanState

PLAN_TRANSITIONS: dict[PlanState, frozenset[PlanState]] = {
    _P.CREATED: frozenset({_P.VALIDATED, _P.REJECTED, _P.FAILED}),
    _P.VALIDATED: frozenset({_P.APPROVED, _P.REJECTED}),
    _P.APPROVED: frozenset({_P.EXECUTING, _P.REJECTED}),
    _P.EXECUTING: frozenset({_P.COMPLETE, _P.FAILED}),
    _P.FAILED: frozenset({_P.ROLLED_BACK}),
    _P.COMPLETE: frozenset({_P.ROLLED_BACK}),
    _P.REJECTED: frozenset(),
    _P.ROLLED_BACK: frozenset(),
}
#: Plans whose tasks may run.
RUNNABLE_PLAN_STATES = frozenset({_P.APPROVED, _P.EXECUTING})


def check_plan_transition(plan_id: int, old: PlanState, new: PlanState) -> None:
    """Raise :class:`IllegalTransition` unless ``old → new`` is legal for a plan."""
    if new not in PLAN_TRANSITIONS[old]:
        raise IllegalTransition(f"plan {plan_id}: illegal transition {old} → {new}")


@dataclass(frozen=True, slots=True)
class Plan:
    """Proposed tasks held for approval: a row of ``plans``; ``path`` is its reviewable file."""

    id: int
    generation: str
    state: PlanState
    path: str = ""
    reason: str = ""
    created_at: float = 0.0


class Phase(StrEnum):
    """Why an agent was run."""

    MEASURE = "measure"
    STITCH = "stitch"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one run, as the last ``result`` line of its transcript reports them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


@dataclass(frozen=True, slots=True)
class TaskOrigin:
    """Where a task imported from a plan file comes from: the file's format (``epics``,
    ``beads``, ``measure``…), its path (relative to the repository when inside it) and the
    task's id there, kept as its external id."""

    format: str
    path: str
    external_id: str

    @property
    def label(self) -> str:
        """``format:id``, as the ``Shoemaker-Source`` trailer writes it."""
        return f"{self.format}:{self.external_id}"


@dataclass(frozen=True, slots=True)
class PlanGate:
    """A gate a plan file names for one task; ``command`` is empty when the file gives none
    (an error ``shoemaker plan check`` reports)."""

    name: str
    command: str = ""


@dataclass(slots=True)
class Task:
    """One unit of work: a row of the ``tasks`` table."""

    id: int
    generation: str
    title: str
    description: str
    state: TaskState
    priority: int = 0
    attempts: int = 0
    interruptions: int = 0
    failures_before_retry: int = 0
    """The failed attempts before a person last retried the task (``shoemaker task retry``):
    ``max_retries`` counts from there."""
    reason: str = ""
    fingerprint: str = ""
    """Of the last failure (gate, agent error, conflict): the same one twice stops retrying."""
    plan_id: int | None = None
    """The plan that proposed the task; it runs only once that plan is approved."""
    branch: str = ""
    worktree: str = ""
    cycle: int = 0
    source: str = "measure"
    merged_commit: str = ""
    depends_on: list[int] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    origin: TaskOrigin | None = None
    """The plan file the task was imported from (None: measure proposed it)."""
    needs_review: bool = False
    """The plan asks a person to review the task before it merges."""
    plan_gates: tuple[PlanGate, ...] = ()
    """Gates the plan file names for this task."""
    extras: dict[str, Any] = field(default_factory=dict)
    """What else the plan file says that is kept and shown (``github_issue``, comments)."""

    @property
    def external_id(self) -> str:
        return self.origin.external_id if self.origin else ""


@dataclass(slots=True)
class Generation:
    """A run of many measure+stitch cycles on a branch of its own: a row of ``generations``."""

    name: str
    branch: str
    base_branch: str
    state: GenerationState
    cycle: int = 0
    start_commit: str = ""
    reason: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    stopped_at: float | None = None
    rate_limited_until: float | None = None
    """When the provider's rate limit that holds the generation resets (seconds since the
    epoch); None when no limit holds it."""


def task_branch(generation: str, task_id: int) -> str:
    """The branch a task's agent works on. Derived from ids only, never from titles."""
    return f"task/{generation}-{task_id}"


@dataclass(frozen=True, slots=True)
class Spend:
    """Tokens, dollars and agent wall seconds of some runs."""

    usage: Usage = field(default_factory=Usage)
    usd: float = 0.0
    wall_s: float = 0.0

    @property
    def tokens(self) -> int:
        """What a token budget counts: input and output (the cache is priced, not counted)."""
        return self.usage.input_tokens + self.usage.output_tokens
