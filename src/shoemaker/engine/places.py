"""Where an attempt runs: the stitcher asks its place, never which place it has.

A :class:`AttemptPlace` is chosen once per stitcher (:func:`for_project`, from ``executor``).
The stitcher records intent, renders the prompt, runs the agent through ``call_agent``, commits
and lands; between those steps it asks the attempt's place, through the same four calls
whatever the place is, to prepare the attempt, give the runner its agent starts on, settle the
work into the attempt's worktree, and judge its gates:

- :class:`LocalPlace` (``executor: local``): a worktree of the stitcher's pool, set up on the
  task branch at the generation head (``prepare_worktree``) and furnished; the agent is
  started on this machine (the project's runner); the gates run in that worktree.
- :class:`ClusterPlace` (``executor: dask``): a thin adapter over
  :class:`~shoemaker.engine.remote.ClusterAttempts`. The base is bundled; the agent, the commit
  and the gates run on a worker; the worker's bundle is checked out in a worktree of the pool
  and the gates it ran are recorded here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from shoemaker.agents.runner import AgentRunner
from shoemaker.cluster.attempt import RunnerFailure
from shoemaker.config import AgentConfig
from shoemaker.copied_files import CopyError
from shoemaker.crashpoints import crash_point
from shoemaker.engine.attempt_endings import EngineError
from shoemaker.engine.attempts import Attempt, prepare_worktree
from shoemaker.engine.furnish import furnish
from shoemaker.engine.gates import Failure, run_gates
from shoemaker.engine.ports import NoFreePorts
from shoemaker.engine.project import Project
from shoemaker.engine.remote import ClusterAgent, ClusterAttempts, ClusterGone
from shoemaker.engine.worktrees import WorktreePool
from shoemaker.model import Generation


class PlacedAttempt(Protocol):
    """One attempt at its place, once prepared: its runner, its work, its gates."""

    async def runner(self, agent: AgentConfig) -> AgentRunner:
        """What ``call_agent`` starts the attempt's agent with."""
        ...

    async def settle(self) -> RunnerFailure | None:
        """After the agent: its work on the task branch, checked out in the attempt's worktree;
        or why the attempt never finished where it ran, when another attempt may do better (a
        lost worker, a cancelled run). A place that cannot go on raises instead: ``ClusterGone``
        (the generation pauses) or ``EngineError`` (the run stops)."""
        ...

    async def gates(self) -> Failure | None:
        """The task's gates on the committed work, recorded; the first failure, or None."""
        ...


class AttemptPlace(Protocol):
    """Where a stitcher's attempts run; one per stitcher, chosen once."""

    async def prepare(
        self, generation: Generation, pool: WorktreePool, attempt: Attempt
    ) -> PlacedAttempt | Failure:
        """The attempt ready to start (its ``base`` set, ``continuing`` and ``env`` where the
        place has them), or the failure of its setup."""
        ...

    async def close(self) -> None:
        """Let go of what the place holds for the run (a cluster's client)."""
        ...


def for_project(project: Project) -> AttemptPlace:
    """The place ``executor`` names: this machine, or a Dask cluster's workers."""
    if project.config.executor == "dask":
        return ClusterPlace(ClusterAttempts(project))
    return LocalPlace(project)


class LocalPlace:
    """Attempts on this machine, each in a worktree of the stitcher's pool.

    The pool is kept rather than a clone from a bundle per attempt (what a cluster's worker
    does): a pooled worktree is reset, while a clone costs about 1.4 s per 5,000 files on a
    local disk, paid again by every attempt."""

    def __init__(self, project: Project) -> None:
        self.project = project

    async def prepare(
        self, generation: Generation, pool: WorktreePool, attempt: Attempt
    ) -> PlacedAttempt | Failure:
        project, worktree = self.project, attempt.worktree
        assert worktree is not None
        attempt.base, attempt.continuing = await asyncio.to_thread(
            prepare_worktree, project, generation, pool, attempt
        )
        crash_point("worktree-ready")
        try:
            furnished = await furnish(project, worktree, attempt.task)
        except (CopyError, NoFreePorts) as exc:
            raise EngineError(str(exc)) from None  # a setting to change: the run stops
        attempt.env = furnished.env
        if furnished.failure is not None:
            return furnished.failure
        return _LocalAttempt(project, attempt, worktree)

    async def close(self) -> None:
        return None


class _LocalAttempt:
    def __init__(self, project: Project, attempt: Attempt, worktree: Path) -> None:
        self.project, self.attempt, self.worktree = project, attempt, worktree

    async def runner(self, agent: AgentConfig) -> AgentRunner:
        return self.project.runner

    async def settle(self) -> RunnerFailure | None:
        return None  # the agent worked in the attempt's worktree itself

    async def gates(self) -> Failure | None:
        attempt = self.attempt
        return await run_gates(
            self.project,
            attempt.task,
            self.worktree,
            attempt.run_id,
            attempt.changed,
            "worktree",
            attempt.env,
        )


class ClusterPlace:
    """Attempts on a cluster's workers, through :class:`ClusterAttempts`; the worktree of the
    pool is checked out only once the worker's work is back."""

    def __init__(self, attempts: ClusterAttempts) -> None:
        self.attempts = attempts

    async def prepare(
        self, generation: Generation, pool: WorktreePool, attempt: Attempt
    ) -> PlacedAttempt | Failure:
        attempt.base, bundle = await asyncio.to_thread(self.attempts.prepare, generation, attempt)
        return _ClusterAttempt(self.attempts, pool, attempt, bundle)

    async def close(self) -> None:
        await self.attempts.close()


class _ClusterAttempt:
    def __init__(
        self, attempts: ClusterAttempts, pool: WorktreePool, attempt: Attempt, bundle: bytes
    ) -> None:
        self.attempts, self.pool, self.attempt, self.bundle = attempts, pool, attempt, bundle
        self.agent: ClusterAgent | None = None

    async def runner(self, agent: AgentConfig) -> AgentRunner:
        self.agent = await self.attempts.agent(self.attempt, self.bundle, agent)
        return self.agent

    async def settle(self) -> RunnerFailure | None:
        assert self.agent is not None
        failure, task = self.agent.failure, self.attempt.task
        if failure is None:
            await asyncio.to_thread(self.attempts.land_work, self.pool, self.attempt, self.agent)
            return None
        if failure.kind == "scheduler-gone":
            raise ClusterGone(self.attempts.paused_message(failure))
        if failure.kind == "error":
            raise EngineError(f"task {task.id}: on the cluster: {failure}")
        return failure

    async def gates(self) -> Failure | None:
        assert self.agent is not None
        return await self.attempts.gates(self.attempt, self.agent)  # they ran on the worker


__all__ = ["AttemptPlace", "ClusterPlace", "LocalPlace", "PlacedAttempt", "for_project"]
