"""How an attempt of a task ends, each way in a named task state with its reason stored:
done (metrics and history written), given back for another try or failed when retries are
used up, blocked by its agent's word, cut short by the provider's rate limit, interrupted,
or failed by git. The work of an attempt that does not land stays on a branch.

:class:`AttemptEndings` is the half of :class:`~shoemaker.engine.stitch.Stitcher` that
closes attempts; the pipeline that leads to them is ``stitch.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoemaker.agents.ratelimit import RateLimit
from shoemaker.clock import utc
from shoemaker.crashpoints import crash_point
from shoemaker.engine.attempts import Attempt, keep_for_retry, log, preserve, record_metrics
from shoemaker.engine.gates import Failure, fingerprint
from shoemaker.engine.history import write_task_history
from shoemaker.engine.project import Project
from shoemaker.engine.rate_limits import RateLimits
from shoemaker.engine.recovery import landed_on
from shoemaker.engine.uncut import uncut
from shoemaker.engine.worktrees import WorktreePool
from shoemaker.errors import Failed
from shoemaker.git import GitError
from shoemaker.model import Generation, Task, TaskState
from shoemaker.store import MetricsRecord


class EngineError(Failed):
    """A problem no retry can fix (an agent that cannot start, a repository in the wrong state);
    the run stops and the message says what to do."""


@dataclass(frozen=True, slots=True)
class StitchOutcome:
    """Where one task's pass through the pipeline left it, and why."""

    task_id: int
    state: TaskState
    reason: str


class AttemptEndings:
    """The ways an attempt ends, for a stitcher of one generation."""

    project: Project
    generation: Generation
    pool: WorktreePool
    limits: RateLimits | None

    def _transition(self, task_id: int, state: TaskState, reason: str = "", **kw: Any) -> None:
        self.project.store.transition_task(task_id, state, reason, **kw)

    async def _done(
        self, attempt: Attempt, merge: str, duration: float, reason: str
    ) -> StitchOutcome:
        metrics = await asyncio.to_thread(record_metrics, self.project, attempt, merge, duration)
        crash_point("metrics-recorded")
        await self._after_done(attempt, reason, merge, metrics)
        if attempt.branch:
            await asyncio.to_thread(
                self.project.git.delete_branch, attempt.branch, force=True, missing_ok=True
            )
        return StitchOutcome(attempt.task.id, TaskState.DONE, reason)

    async def _after_done(
        self,
        attempt: Attempt,
        reason: str,
        merge: str | None = None,
        metrics: MetricsRecord | None = None,
    ) -> None:
        """The task is done: recorded with the promotions it causes in one transaction."""
        task = attempt.task
        await asyncio.to_thread(self.project.store.finish_task, task.id, reason, merge)
        crash_point("done-recorded")
        done = dataclasses.replace(
            task,
            state=TaskState.DONE,
            reason=reason,
            attempts=attempt.number,
            merged_commit=merge or task.merged_commit,
        )
        await asyncio.to_thread(write_task_history, self.project, done, attempt.runs, metrics)
        crash_point("history-written")

    async def _give_back(self, attempt: Attempt, failure: Failure) -> StitchOutcome:
        """After a failed attempt: ready for another try (its work set aside, or kept for a
        targeted fix), or failed with dependents blocked, when retries are used up or the
        failure is the same as the last one."""
        task, store = attempt.task, self.project.store
        # Since a person's retry, if there was one: it gives the task a fresh allowance.
        failed_attempts = attempt.number - task.interruptions - task.failures_before_retry
        if task.fingerprint and task.fingerprint == failure.fingerprint:
            final = f"the same failure twice in a row, so retrying stops: {failure.reason}"
        elif failed_attempts > self.project.config.max_retries:
            final = f"{failure.reason} (after {failed_attempts} failed attempts)"
        else:
            if failure.remediation != "fix":
                await asyncio.to_thread(
                    keep_for_retry, self.project, self.generation, task, attempt.number
                )
            self._transition(
                task.id, TaskState.READY, failure.reason, fingerprint=failure.fingerprint
            )
            return StitchOutcome(task.id, TaskState.READY, failure.reason)
        await asyncio.to_thread(
            store.stop_task,
            task.id,
            TaskState.FAILED,
            final,
            "failed",
            fingerprint=failure.fingerprint,
        )
        failed = dataclasses.replace(
            task,
            state=TaskState.FAILED,
            reason=final,
            attempts=attempt.number,
            fingerprint=failure.fingerprint,
        )
        await asyncio.to_thread(write_task_history, self.project, failed, attempt.runs)
        return StitchOutcome(task.id, TaskState.FAILED, final)

    async def _setup_failed(self, attempt: Attempt, failure: Failure) -> StitchOutcome:
        """The worktree's setup failed: the worktree goes (a half set-up one is never given
        to an agent; the next attempt gets a new one and its setup runs again), and the
        attempt fails with the setup's output as its reason."""
        assert attempt.worktree is not None
        await asyncio.to_thread(self.pool.discard, attempt.worktree)
        return await self._give_back(attempt, failure)

    async def _blocked(self, attempt: Attempt, why: str) -> StitchOutcome:
        """The agent signalled that the task needs a person: blocked with its reason, no
        retry; its work kept on attempt/*, its dependents blocked, the person told."""
        project, task, store = self.project, attempt.task, self.project.store
        assert attempt.worktree is not None
        await asyncio.to_thread(
            preserve, project, self.pool, task, attempt.worktree, "agent-blocked"
        )
        await asyncio.to_thread(keep_for_retry, project, self.generation, task, attempt.number)
        # The agent's words are kept and shown, so no secret value may be among them.
        reason = f"its agent is blocked: {project.redactor.text(why)}"
        await asyncio.to_thread(store.stop_task, task.id, TaskState.BLOCKED, reason, "is blocked")
        # The state change is the dashboard's notification; this is the story's line.
        log(project, task, f"task #{task.id} needs you: {reason}")
        blocked = await asyncio.to_thread(store.get_task, task.id)
        await asyncio.to_thread(write_task_history, project, blocked, attempt.runs)
        return StitchOutcome(task.id, TaskState.BLOCKED, reason)

    async def _rate_limited(self, attempt: Attempt, limit: RateLimit) -> StitchOutcome:
        """The provider refused the agent: the attempt was cut short, not failed. Its work
        stays on the task branch, the task goes back to ready without using up a retry, and
        the generation waits for the reset (``engine/rate_limits.py``)."""
        task, worktree = attempt.task, attempt.worktree
        assert worktree is not None
        if self.limits is not None:
            until = self.limits.observe(limit, task.id, attempt.run_id)
        else:
            until = None
        if until is None:
            wait = self.project.config.rate_limits.wait_sec
            until = limit.reset_time(self.project.clock.now(), wait)
        reason = (
            f"rate limited until {utc(until)} (agent run {attempt.run_id}); "
            "the attempt does not count against max_retries"
        )
        await self._put_back(task.id, worktree, reason)
        return StitchOutcome(task.id, TaskState.READY, reason)

    async def _put_back(self, task_id: int, worktree: Path, reason: str) -> None:
        """:meth:`_interrupted`, awaited to its end even when this attempt is cancelled
        meanwhile (``uncut``). The run cancels the attempts still at work when one of them
        stops it (a lost scheduler fails them all at once); a cancel that cut this wait short
        would let the run end, its generation paused, while the task is still ``running``."""
        await uncut(asyncio.to_thread(self._interrupted, task_id, worktree, reason))

    def _interrupted(self, task_id: int, worktree: Path, reason: str) -> None:
        task = self.project.store.get_task(task_id)
        self._keep(task, worktree, "interrupted")
        if task.state == TaskState.MERGING and task_id in landed_on(self.project, self.generation):
            # Cut short after its merge landed (during the gates after the merge): it stays
            # merging, and the next run's recovery runs those gates and records it done, as
            # for a process that died there. Back to ready, it would run again on top of
            # its own work.
            log(self.project, task, "its merge landed; the next run checks it after the merge")
            return
        if task.state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
            self._transition(task_id, TaskState.READY, reason, interrupted=True)

    async def _git_failed(self, task: Task, worktree: Path, exc: GitError) -> StitchOutcome:
        """A git command of this task failed: what can be kept is committed to its branch, the
        task fails with the reason (no retry: the same step would fail again) and its
        dependents are blocked."""
        await asyncio.to_thread(self._keep, task, worktree, "git-failed")
        store = self.project.store
        current = await asyncio.to_thread(store.get_task, task.id)
        if current.state not in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
            # It had already ended (done, back to ready): only a clean-up step failed.
            log(self.project, task, f"after it ended: {exc}", "warning")
            return StitchOutcome(task.id, current.state, current.reason)
        broken = worktree.is_dir() and not worktree.joinpath(".git").exists()
        reason = f"{exc}" + (f" (its worktree {worktree} has no .git any more)" if broken else "")
        await asyncio.to_thread(
            store.stop_task,
            task.id,
            TaskState.FAILED,
            reason,
            "failed",
            fingerprint=fingerprint("git", reason),
        )
        failed = await asyncio.to_thread(store.get_task, task.id)
        await asyncio.to_thread(write_task_history, self.project, failed)
        return StitchOutcome(task.id, TaskState.FAILED, reason)

    def _keep(self, task: Task, worktree: Path, why: str) -> None:
        with contextlib.suppress(Exception):  # a broken worktree cannot even be committed
            preserve(self.project, self.pool, task, worktree, why)
