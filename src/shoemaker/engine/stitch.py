"""stitch: one task, from a fresh worktree to a commit on the generation branch.

The pipeline: record intent (running, worktree W, branch B) → worktree from the generation head
→ agent → commit what it left, with metrics as trailers → gates, run by shoemaker itself → one
squash merge into the generation branch through the merge queue → metrics and history →
worktree removed → task closed. Every way out ends in a named task state with its reason stored,
and whatever the agent produced stays on a branch until it is merged.

One :class:`~shoemaker.engine.attempts.Attempt` travels through the steps. The steps live
beside this file: ``attempts.py`` (branches, commit, metrics), ``prompts.py`` (the prompt),
``agent_verdict.py`` (what the agent's end says beyond its exit), ``attempt_endings.py``
(each way an attempt ends), ``gates.py`` (the gates),
``merge_queue.py`` (landing), ``review.py`` (approve / reject). Where the agent and the gates
run (this machine, a cluster's workers) is the attempt's place, ``places.py``: the pipeline
asks it the same things whichever it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from shoemaker.agents.ratelimit import rate_limit_of
from shoemaker.cluster.attempt import RunnerFailure
from shoemaker.config_raw import CONFIG_FILE
from shoemaker.crashpoints import crash_point
from shoemaker.engine.agent_call import AgentCall, DoneChannel, call_agent
from shoemaker.engine.agent_verdict import plan_shortfall, signal_failure_of
from shoemaker.engine.attempt_endings import AttemptEndings, EngineError, StitchOutcome
from shoemaker.engine.attempts import (
    Attempt,
    commit,
    keep_for_retry,
    log,
    measure_change,
    preserve,
    restore_gitfile,
)
from shoemaker.engine.gates import Failure, fingerprint
from shoemaker.engine.merge_queue import Landing, MergeQueue
from shoemaker.engine.places import AttemptPlace, PlacedAttempt, for_project
from shoemaker.engine.project import Project
from shoemaker.engine.prompts import render_stitch_prompt
from shoemaker.engine.rate_limits import RateLimits
from shoemaker.engine.remote import ClusterGone
from shoemaker.engine.worktrees import WorktreePool
from shoemaker.git import GitError
from shoemaker.globs import matches_any
from shoemaker.model import Generation, Phase, Task, TaskState, task_branch
from shoemaker.store import TaskMoved

#: Attempts cut short after which one more lost worker fails the task: it takes its worker
#: down (memory, a fork bomb) rather than meeting bad luck.
LOST_WORKERS_LIMIT = 3


class Stitcher(AttemptEndings):
    """Runs tasks of one generation; one instance is shared by all workers of a run."""

    def __init__(
        self,
        project: Project,
        generation: Generation,
        pool: WorktreePool | None = None,
        place: AttemptPlace | None = None,
    ) -> None:
        self.project = project
        self.generation = generation
        self.pool = pool or WorktreePool(
            project.git, project.worktree_root, generation.name, project.config.reuse_worktrees
        )
        self.queue = MergeQueue(project, generation, self.pool)
        self.limits: RateLimits | None = None
        """The run's rate limits (the engine sets them): told what agents' streams say."""
        self.place = place or for_project(project)
        """Where its attempts run (``executor``); the pipeline is the same for every place."""

    # -- the pipeline -------------------------------------------------------------------------

    async def stitch(
        self, task: Task, release_slot: Callable[[], None] | None = None
    ) -> StitchOutcome:
        """Take a ready task through the whole pipeline.

        ``release_slot`` is called once, when the task no longer needs an agent slot: before
        its merge, as soon as its agent has exited when no gate runs in its worktree, or when
        it ends earlier.
        """
        released = False

        def release() -> None:
            nonlocal released
            if not released and release_slot is not None:
                released = True
                release_slot()

        try:
            return await self._stitch(task, release)
        finally:
            release()

    async def _stitch(self, task: Task, release: Callable[[], None]) -> StitchOutcome:
        worktree = await asyncio.to_thread(self.pool.reserve)
        branch = task_branch(self.generation.name, task.id)
        attempt = Attempt(task, task.attempts + 1, branch, worktree, time.monotonic())
        # Intent first: the store says where the work happens before anything relies on it.
        # Only if the task is still ready: the listing it was chosen from is older than this
        # (a plan rejected, a task cancelled meanwhile by another process).
        try:
            self._transition(
                task.id,
                TaskState.RUNNING,
                f"attempt {attempt.number}",
                count_attempt=True,
                expect=(TaskState.READY,),
                branch=branch,
                worktree=str(worktree),
            )
        except TaskMoved:
            self.pool.unreserve(worktree)
            now = await asyncio.to_thread(self.project.store.get_task, task.id)
            return StitchOutcome(task.id, now.state, f"not started: {now.state} meanwhile")
        crash_point("running-recorded")
        try:
            placed = await self.place.prepare(self.generation, self.pool, attempt)
            if isinstance(placed, Failure):
                return await self._setup_failed(attempt, placed)
            return await self._run_attempt(attempt, placed, release)
        except asyncio.CancelledError:
            await self._put_back(task.id, worktree, "interrupted")
            raise
        except GitError as exc:
            # One task's git trouble (an agent that broke its worktree, a commit that fails)
            # ends that task, never the run: the other agents keep working.
            return await self._git_failed(task, worktree, exc)
        except Exception as exc:
            # Whatever went wrong, the task does not stay "running": it goes back to ready
            # with the reason, its work committed to its branch, and the run stops.
            stops = isinstance(exc, (EngineError, ClusterGone))
            reason = str(exc) if stops else f"{type(exc).__name__}: {exc}"
            await self._put_back(task.id, worktree, reason)
            if stops:
                raise
            raise EngineError(f"task {task.id}: {reason}") from exc

    async def _run_attempt(
        self, attempt: Attempt, placed: PlacedAttempt, release: Callable[[], None]
    ) -> StitchOutcome:
        """The attempt from its prompt on; its agent and gates run where it was placed, and
        its worktree holds its work once ``placed`` has settled it."""
        project, task, worktree = self.project, attempt.task, attempt.worktree
        assert worktree is not None
        prompt = await asyncio.to_thread(
            render_stitch_prompt, project, task, attempt.number, attempt.continuing
        )
        done = DoneChannel(task.id)
        agent = project.config.agent_for(task.extras.get("agent"))
        limits = self.limits
        runner = await placed.runner(agent)
        run, result = await call_agent(
            project,
            AgentCall(
                Phase.STITCH,
                self.generation.name,
                task.id,
                attempt.number,
                prompt,
                worktree,
                agent,
                attempt.env,
                None
                if limits is None
                else lambda fact, run_id: limits.observe(fact, task.id, run_id),
            ),
            done,
            runner,
        )
        attempt.run_id = run.id
        attempt.result = result
        crash_point("agent-finished")
        cut_short = await placed.settle()
        if cut_short is not None:
            return await self._cut_short(attempt, cut_short)
        if result.exit_code is None and result.killed is None:
            raise EngineError(result.reason)  # the agent could not even start
        await asyncio.to_thread(restore_gitfile, project, task, worktree)
        limit = rate_limit_of(result.summary)
        if limit is not None and limit.status == "rejected" and not result.ok:
            return await self._rate_limited(attempt, limit)
        if done.signal is not None and done.signal.status == "blocked":
            # The agent's word, whatever its exit: another attempt would meet the same wall.
            return await self._blocked(attempt, done.signal.reason)
        signal_failure = signal_failure_of(project, attempt.run_id, result.ok, done)
        if signal_failure is not None:
            await asyncio.to_thread(preserve, project, self.pool, task, worktree, "agent-failed")
            return await self._give_back(attempt, signal_failure)
        if not result.ok:
            await asyncio.to_thread(preserve, project, self.pool, task, worktree, "agent-failed")
            detail = f"{result.reason}\n{result.summary.result_text or ''}"
            return await self._give_back(
                attempt,
                Failure(
                    f"agent run {attempt.run_id} failed: {result.reason}",
                    fingerprint("agent", detail),
                ),
            )

        short = await asyncio.to_thread(plan_shortfall, project, attempt)
        if short:
            await asyncio.to_thread(preserve, project, self.pool, task, worktree, "agent-failed")
            return await self._give_back(attempt, Failure(short, fingerprint("plan", short)))

        if not project.config.gates and not task.plan_gates:
            # No gate will run in the worktree, only shoemaker's own commit: the slot goes
            # to the next agent now.
            release()
        self._transition(task.id, TaskState.VERIFYING, "committing and running gates")
        crash_point("verifying-recorded")
        await asyncio.to_thread(commit, project, attempt, time.monotonic() - attempt.started)
        crash_point("committed")
        if attempt.commit is None:
            await asyncio.to_thread(self.pool.release, worktree)
            await asyncio.to_thread(project.git.delete_branch, attempt.branch, True)
            self._transition(task.id, TaskState.MERGING, "nothing to merge")
            await self._after_done(attempt, "the agent changed nothing")
            return StitchOutcome(task.id, TaskState.DONE, "the agent changed nothing")

        failure = await placed.gates()
        crash_point("gates-done")
        await asyncio.to_thread(self.pool.release, worktree)
        if failure:
            return await self._give_back(attempt, failure)
        reason = review_reason(task, attempt.changed, project.config.review_globs)
        if reason is not None:
            self._transition(task.id, TaskState.NEEDS_REVIEW, reason)
            return StitchOutcome(task.id, TaskState.NEEDS_REVIEW, reason)
        self._transition(task.id, TaskState.MERGING, "gates passed")
        crash_point("merging-recorded")
        release()  # the agent and gates are done: another task may start while this one merges
        return await self.land(attempt)

    async def _cut_short(self, attempt: Attempt, failure: RunnerFailure) -> StitchOutcome:
        """An attempt that never finished where it ran (its worker lost, its run cancelled):
        the task back to ready, not counted against max_retries; or failed, when it keeps
        taking its worker down."""
        assert attempt.worktree is not None
        task = attempt.task
        self.pool.unreserve(attempt.worktree)
        if failure.kind == "worker-lost" and task.interruptions + 1 >= LOST_WORKERS_LIMIT:
            # Not the cluster's bad luck any more: the task takes its worker down (memory?).
            reason = (
                f"attempt {attempt.number} cut short by a lost dask worker ({failure}), after "
                f"{task.interruptions} cut short before it: a task that takes its worker down "
                "is failed, not tried forever"
            )
            await asyncio.to_thread(
                self.project.store.stop_task,
                task.id,
                TaskState.FAILED,
                reason,
                "failed",
                fingerprint=fingerprint("worker", "lost"),
            )
            return StitchOutcome(task.id, TaskState.FAILED, reason)
        reason = f"attempt {attempt.number} cut short: {failure} ({failure.kind}); it runs again"
        log(self.project, task, reason, "warning")
        self._transition(task.id, TaskState.READY, reason, interrupted=True)
        return StitchOutcome(task.id, TaskState.READY, reason)

    async def land(self, attempt: Attempt) -> StitchOutcome:
        """Land a verified attempt through the merge queue (its task is ``merging``)."""
        task = attempt.task
        landing = await self.queue.merge(attempt)
        if landing.refused:
            raise EngineError(landing.refused)
        outcome = landing.outcome
        if landing.failure:
            return await self._give_back(attempt, landing.failure)
        if outcome.merged:
            duration = time.monotonic() - attempt.started
            return await self._done(attempt, outcome.commit, duration, "merged")
        conflicts = await asyncio.to_thread(self.project.store.count_conflict, task.id)
        if conflicts == 1 and outcome.conflict_files:
            # Once: the agent tries again on the new head, told what changed under it.
            detail = await asyncio.to_thread(self.queue.conflict_detail, attempt.base, outcome)
            reason = f"merge conflict in {', '.join(outcome.conflict_files)}: {detail}"
            await asyncio.to_thread(
                keep_for_retry, self.project, self.generation, task, attempt.number
            )
            self._transition(task.id, TaskState.READY, reason)
            return StitchOutcome(task.id, TaskState.READY, reason)
        reason = (
            f"merge into {self.generation.branch} failed: {outcome.reason}; "
            f"work kept on {attempt.branch}"
        )
        self._transition(task.id, TaskState.CONFLICT, reason)
        return StitchOutcome(task.id, TaskState.CONFLICT, reason)

    def landed_attempt(self, task: Task, base: str, head: str) -> Attempt:
        """The attempt of a task whose commit ``head`` was made earlier (a reviewed task, a
        merge that landed before a crash), read back from git and the store."""
        runs = self.project.store.runs(task_id=task.id)
        attempt = Attempt(
            task,
            task.attempts,
            task.branch,
            None,
            time.monotonic(),
            base=base,
            run_id=runs[-1].id if runs else None,
            commit=head,
            runs=runs,
        )
        measure_change(self.project, attempt)
        return attempt

    async def settle_landed(self, task_id: int, merge: str) -> StitchOutcome:
        """Finish a merge that landed before shoemaker died, as recovery found it (the task
        is ``merging``, ``merge`` its squash commit): the post-merge gates run now on the
        generation branch, then the task is done, or its merge is reverted and it goes back.
        """
        task = await asyncio.to_thread(self.project.store.get_task, task_id)
        if task.state != TaskState.MERGING:
            raise EngineError(f"task {task_id} is {task.state}, not a recovered merge")
        base = await asyncio.to_thread(self.project.git.rev_parse, f"{merge}^")
        attempt = await asyncio.to_thread(self.landed_attempt, task, base, merge)
        landing: Landing = await self.queue.settle(attempt, merge)
        if landing.refused:
            raise EngineError(landing.refused)
        if landing.failure:
            return await self._give_back(attempt, landing.failure)
        # The rest of that attempt's time died with the process; its agent's time did not.
        duration = next((r.wall_s or 0.0 for r in reversed(attempt.runs or []) if r.ok), 0.0)
        reason = "merged before a crash; its gates passed after recovery"
        return await self._done(attempt, merge, duration, reason)


def review_reason(task: Task, changed: Sequence[str], globs: Sequence[str]) -> str | None:
    """Why a task whose gates passed waits for a person before it merges (None: it merges)."""
    if CONFIG_FILE in changed:
        # The file says what shoemaker runs (the agent, the gates that check its work): an
        # agent's edit would take effect at the next run without anyone having read it.
        return (
            f"changes {CONFIG_FILE}, which says what shoemaker runs (agents, gates): "
            "approve or reject it"
        )
    sensitive = [path for path in changed if matches_any(path, globs)]
    if sensitive:
        return f"touches {', '.join(sensitive[:5])} (review_globs): approve or reject it"
    if task.needs_review:
        return "its plan file asks for review (needs_review): approve or reject it"
    return None


__all__ = ["EngineError", "StitchOutcome", "Stitcher", "review_reason"]
