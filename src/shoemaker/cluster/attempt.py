"""The runner boundary: what one attempt sends to where it runs, and what comes back.

The engine hands a runner an :class:`AttemptSpec` (the base commit and a git bundle of it, the
agent's argv and environment, its clocks, the gates that may apply) and a sink for
:data:`AttemptEvent` s; it gets an :class:`AttemptResult` back (the agent's result, the gates'
outcomes, a bundle of the task branch relative to the base) or a :class:`RunnerFailure` that
names why the attempt never finished (worker lost, scheduler gone, cancelled). Nothing here
imports Dask: the default install never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from shoemaker.agents.runner import RunResult
from shoemaker.config import AgentConfig, GateConfig
from shoemaker.engine.gates import GateOutcome


class Sealed(Mapping[str, str]):
    """An environment whose values never show in a repr: a task's arguments appear in a
    scheduler's logs and error messages, its secrets must not."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<environment: {len(self._values)} variables, values withheld>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[Sealed], tuple[dict[str, str]]]:
        return (Sealed, (self._values,))


@dataclass(frozen=True, slots=True)
class WorkerSandbox:
    """The sandbox the agent and the gates run in on the worker (``sandbox`` and
    ``sandbox_network`` of the configuration): the temporary clone is its writable tree."""

    kind: Literal["none", "bwrap"] = "none"
    network: Literal["host", "none"] = "host"


@dataclass(frozen=True, slots=True)
class AttemptSpec:
    """Everything one attempt needs where it runs; no path of the orchestrator's machine."""

    key: str
    """Unique per attempt: ``<generation>-<task>-<attempt>-<random>``."""
    task_id: int
    attempt: int
    base: str
    """The commit the attempt starts from (in ``bundle``)."""
    bundle: bytes
    """A git bundle holding ``base``."""
    branch: str
    """The task branch the worker commits to (and bundles back)."""
    agent: AgentConfig
    argv: tuple[str, ...]
    env: Sealed
    """Only what the run needs from the orchestrator (the agent's env, secrets, markers); the
    worker's own environment supplies the rest (PATH, HOME)."""
    prompt: str
    gates: tuple[GateConfig, ...]
    """The task's gates by title; those with ``paths`` run only if the change touches one."""
    max_time_sec: float
    idle_timeout_sec: float
    kill_grace_sec: float
    signal: bool = True
    """The agent may signal done (``shoemaker done``): the worker gives it a place to."""
    batch_sec: float = 0.03
    die_with_worker: bool = False
    """The agent and gates die with the process that runs them (``PR_SET_PDEATHSIG``): a
    worker that is killed takes its agent along."""
    sandbox: WorkerSandbox = WorkerSandbox()
    start: str = ""
    """The commit the worker checks out, when the attempt continues earlier work (carried
    over onto ``base``, in ``bundle``); empty: ``base``. What goes home is still relative to
    ``base``, so the carried work goes with it."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """What the attempt holds on its worker: ``dask.resources`` updated by the task's own
    (``{agent_slot: 1, gpu: 1}``); only a worker that has them all takes it."""
    login: Sealed = field(default_factory=lambda: Sealed({}))
    """The person's login files for the agent's config home, by name (codex's ``auth.json``),
    sealed as ``env`` is; empty: the worker's own login, if it has one."""

    def __repr__(self) -> str:
        return f"AttemptSpec({self.key}, base={self.base[:12]}, {len(self.bundle)} bytes)"


@dataclass(frozen=True, slots=True)
class Started:
    """The agent process runs: where, and as which pid on that machine."""

    worker: str
    pid: int
    worker_pid: int
    """The process that started it (the dask worker's, or the orchestrator's own)."""
    sandbox: str = "none"
    """The sandbox the worker runs it in (``bwrap``, ``none``): its own wrapping, which the
    command line sent from home does not show."""


@dataclass(frozen=True, slots=True)
class Lines:
    """Lines of the agent's stdout, as read there: ``(when read, lines)`` per read."""

    reads: tuple[tuple[float, tuple[bytes, ...]], ...]


@dataclass(frozen=True, slots=True)
class Waiting:
    """The attempt cannot start yet, and why (no worker has the resources it asks for)."""

    why: str


AttemptEvent = Started | Lines | Waiting
EventSink = Callable[[AttemptEvent], None]


@dataclass(frozen=True, slots=True)
class GateRun:
    gate: GateConfig
    outcome: GateOutcome


@dataclass(slots=True)
class AttemptResult:
    """How an attempt ended where it ran; ``run.summary`` is complete (what the agent left
    beside its stream, such as codex's session file, was read there)."""

    run: RunResult
    commit: str | None = None
    """The worker's commit of the task branch (None: the agent changed nothing)."""
    bundle: bytes = b""
    """The task branch relative to ``base`` (empty when there is no commit)."""
    gates: list[GateRun] = field(default_factory=list)
    """The gates that ran, in order, up to the first failure that is not a warning."""
    signal: bytes | None = None
    """The agent's done-signal file, as it wrote it (None: it wrote none)."""
    worker: str = ""


FailureKind = Literal["worker-lost", "scheduler-gone", "cancelled", "error"]


class RunnerFailure(Exception):
    """The attempt did not finish where it ran, for a reason that is not the agent's:
    ``worker-lost`` (its worker died: retried, not counted), ``scheduler-gone`` (the
    generation pauses), ``cancelled``, ``error`` (the worker could not even start it)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind


class AttemptRunner(Protocol):
    """Runs one attempt to its end: the local runner in this process, or a cluster's."""

    async def run(self, spec: AttemptSpec, on_event: EventSink) -> AttemptResult: ...

    async def close(self) -> None: ...


__all__ = [
    "AttemptEvent",
    "AttemptResult",
    "AttemptRunner",
    "AttemptSpec",
    "EventSink",
    "FailureKind",
    "GateRun",
    "Lines",
    "RunnerFailure",
    "Sealed",
    "Started",
    "Waiting",
    "WorkerSandbox",
]
