"""The merge queue: verified attempts land on the generation branch one at a time.

One merge at a time, in the order tasks ask (asyncio locks are fair), and a file lock
(``merge_file_lock``) so that another process (an approval from the command line) waits its
turn too. A squash merge gives one commit per task in the main worktree; on a conflict the task
branch is rebased onto the new head without the agent and merged once more. The gates marked
``after_merge`` then run on the merge commit in a detached worktree, still inside the queue, so
a failure there is this task's and its merge is reverted. The queue returns what happened; the
pipeline (``engine/stitch.py``) decides what that means for the task.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path

from shoemaker.crashpoints import crash_point
from shoemaker.engine.attempts import Attempt, log, measure_change
from shoemaker.engine.furnish import Furnished, furnish
from shoemaker.engine.gates import Failure, fingerprint, run_gates, task_gates
from shoemaker.engine.project import Project, merge_file_lock
from shoemaker.engine.prompts import FAILURE_CONTEXT
from shoemaker.engine.uncut import uncut
from shoemaker.engine.worktrees import WorktreePool, kept_entries
from shoemaker.errors import ShoemakerError
from shoemaker.events import MergeResult
from shoemaker.git import GitError, MergeOutcome
from shoemaker.model import Generation, Task
from shoemaker.sources.writeback import write_back


@dataclass(frozen=True, slots=True)
class Landing:
    """What the queue did with an attempt."""

    outcome: MergeOutcome
    rebased: bool = False
    """The branch was rebased onto the new head: the attempt's base, commit and diff stat
    are now those of the rebased commit."""
    failure: Failure | None = None
    """The gates after the merge failed (the merge was reverted)."""
    refused: str = ""
    """The main checkout is not on the generation branch: nothing was merged."""


class MergeQueue:
    """One generation's merge queue; shared by every task of a run."""

    def __init__(self, project: Project, generation: Generation, pool: WorktreePool) -> None:
        self.project = project
        self.generation = generation
        self.pool = pool
        self.lock = asyncio.Lock()

    async def merge(self, attempt: Attempt) -> Landing:
        """Land a verified attempt (its task is ``merging``); on a rebase the attempt's base
        and commit become those that were merged."""
        async with self.lock:
            # A cancel waits for the landing's end: the merge may land whatever the caller
            # does, and the caller must know whether it did (``AttemptEndings._interrupted``).
            landing = await uncut(asyncio.to_thread(self._land, attempt))
            if landing.refused:
                return landing
            crash_point("merge-landed")
            outcome = landing.outcome
            if outcome.merged and outcome.commit != attempt.base:
                failure = await self.verify(attempt, outcome.commit)
                crash_point("merge-verified")
                if failure:
                    landing = Landing(outcome, landing.rebased, failure)
        self.project.bus.emit(
            MergeResult(
                generation=self.generation.name,
                task_id=attempt.task.id,
                branch=attempt.branch,
                merged=outcome.merged,
                commit=outcome.commit,
                conflict_files=list(outcome.conflict_files),
                reason=outcome.reason,
            )
        )
        return landing

    async def settle(self, attempt: Attempt, merge: str) -> Landing:
        """A merge that landed before shoemaker died: its post-merge gates, in the queue."""
        async with self.lock:
            refused = await asyncio.to_thread(self.checkout_problem)
            if refused:
                return Landing(MergeOutcome(False, ""), refused=refused)
            failure = await self.verify(attempt, merge)
        return Landing(MergeOutcome(True, merge), failure=failure)

    def checkout_problem(self) -> str:
        """Why the main checkout cannot take a merge now ("" when it can)."""
        return self._refusal(self.project.git.current_branch())

    def _refusal(self, current: str | None) -> str:
        """Why a main checkout on ``current`` (None: detached) cannot take a merge ("")."""
        git = self.project.git
        if current == self.generation.branch:
            return ""
        return (
            f"the repository at {git.root} has {current or 'a detached HEAD'} checked out; "
            f"shoemaker merges into {self.generation.branch} there: "
            f"`git checkout {self.generation.branch}` and run again"
        )

    def _land(self, attempt: Attempt) -> Landing:
        """Squash-merge the attempt's branch; on a conflict rebase it onto the new head (no
        agent) and try once more."""
        git, branch = self.project.git, attempt.branch
        assert attempt.commit is not None
        with merge_file_lock(self.project):
            # One `git status`: the branch checked out, and the person's changes the merge
            # must leave alone.
            current, dirty = git.checkout_state()
            refused = self._refusal(current)
            if refused:
                return Landing(MergeOutcome(False, ""), refused=refused)
            message = attempt.message or git.commit_message(attempt.commit)
            # The plan file's progress is written on the head it lands on, in its commit
            # (a task from no plan file has none to write).
            plan = (
                functools.partial(write_back, attempt.task)
                if attempt.task.origin is not None
                else None
            )
            outcome = git.squash_merge(branch, message, before_commit=plan, dirty=dirty)
            if outcome.merged or not outcome.conflict_files:
                return Landing(outcome)
            head = git.rev_parse(self.generation.branch)
            if not self._rebase(branch, head):
                return Landing(outcome)
            commit = git.rev_parse(branch)
            log(self.project, attempt.task, f"rebased {branch} onto {head[:10]} after a conflict")
            retried = git.squash_merge(branch, git.commit_message(commit), before_commit=plan)
            if not retried.merged:
                return Landing(outcome)
            attempt.base, attempt.commit, attempt.message = head, commit, ""
            measure_change(self.project, attempt)  # what the rebased commit changes
            return Landing(retried, rebased=True)

    def _rebase(self, branch: str, onto: str) -> bool:
        worktree = self.pool.reserve()
        try:
            self.pool.prepare(worktree, None, onto)
            git = self.project.git
            git.checkout_branch(worktree, branch, kept_entries(git, worktree))
            ok, _ = self.project.git.rebase(worktree, onto)
            return ok
        finally:
            self.pool.release(worktree)

    def conflict_detail(self, base: str, outcome: MergeOutcome) -> str:
        """What the generation branch changed in the conflicted files since the task began."""
        head = self.generation.branch
        diff = self.project.git.diff_text(base, head, paths=outcome.conflict_files)
        return (
            f"the generation branch changed them since your base {base[:10]}; redo the task "
            f"on top of these changes:\n{diff[:FAILURE_CONTEXT]}"
        )

    # -- after the merge ----------------------------------------------------------------------

    async def verify(self, attempt: Attempt, merge: str) -> Failure | None:
        """The gates again, on the generation branch as it is now, inside the merge queue:
        nothing else merges meanwhile, so a failure is this task's and ``merge`` is reverted."""
        task = attempt.task
        if not task_gates(self.project.config, task, attempt.changed, "merged"):
            return None
        # Never in the person's checkout: what the gates execute is the agent's work.
        try:
            worktree = await asyncio.to_thread(self._verify_worktree, task, merge)
        except (GitError, OSError) as exc:
            # Unverified is not verified: the merge is undone like a failed gate's.
            reason = f"no worktree for the gates after the merge: {exc}"
            failure: Failure | None = Failure(reason, fingerprint("verify", reason))
        else:
            try:
                try:
                    # Like the task's own worktree: the person's local files, setup, ports.
                    furnished = await furnish(self.project, worktree, task)
                except (ShoemakerError, OSError) as exc:
                    reason = f"the worktree for the gates after the merge: {exc}"
                    furnished = Furnished({}, Failure(reason, fingerprint("verify", reason)))
                failure = furnished.failure or await run_gates(
                    self.project,
                    task,
                    worktree,
                    attempt.run_id,
                    attempt.changed,
                    "merged",
                    furnished.env,
                )
            finally:
                await asyncio.shield(
                    asyncio.to_thread(self._remove_verify_worktree, task, worktree)
                )
        if failure:
            await asyncio.to_thread(self._revert, task, merge, failure.reason)
        return failure

    def _verify_worktree(self, task: Task, merge: str) -> Path:
        """A detached worktree of ``merge``, for the gates that run after the merge."""
        git = self.project.git
        path = self.project.worktree_root / f"verify-{self.generation.name}-{task.id}"
        git.clear_worktree_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        git.add_detached_worktree(path, merge)
        return path

    def _remove_verify_worktree(self, task: Task, path: Path) -> None:
        try:
            self.project.git.restore_gitfile(path)  # a gate may have replaced it
            self.project.git.remove_worktree(path)
        except (GitError, OSError) as exc:
            # The merge's fate is decided by its gates; a worktree left here goes with the
            # next recovery.
            log(self.project, task, f"could not remove {path}: {exc}", "warning")

    def _revert(self, task: Task, commit: str, reason: str) -> None:
        git = self.project.git
        with merge_file_lock(self.project):
            reverted = git.revert(
                commit,
                f"Revert task #{task.id}: {task.title}",
                f"A gate failed after the merge: {reason}",
                {"Shoemaker-Reverts-Task": str(task.id)},
            )
        log(self.project, task, f"reverted its merge {commit[:10]} with {reverted[:10]}", "warning")
