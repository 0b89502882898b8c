"""stitch: one task, from a fresh worktree to a commit on the generation branch.

The pipeline: record intent (running, worktree W, branch B) → worktree from the generation head
→ agent → commit what it left, with metrics as trailers → gates, run by shoemaker itself → one
squash merge into the generation branch under the merge lock → metrics and history → worktree
removed → task closed. Every way out ends in a named task state with its reason stored, and
whatever the agent produced stays on a branch until it is merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoemaker.config import GateConfig
from shoemaker.crashpoints import crash_point
from shoemaker.engine.agent_call import AgentCall, call_agent
from shoemaker.engine.gates import (
    GateBox,
    describe_command,
    fingerprint,
    gates_for,
    gates_for_title,
    run_gate,
)
from shoemaker.engine.history import write_task_history
from shoemaker.engine.project import Project, merge_file_lock
from shoemaker.engine.worktrees import WorktreePool
from shoemaker.errors import BadInput, Failed
from shoemaker.events import GateResult, Log, LogLevel, MergeResult, MetricsRecorded
from shoemaker.git import GitError, MergeOutcome
from shoemaker.globs import matches_any
from shoemaker.loc import Loc
from shoemaker.model import Generation, Phase, Task, TaskState, task_branch
from shoemaker.resources import render_prompt


class EngineError(Failed):
    """A problem no retry can fix (an agent that cannot start, a repository in the wrong state);
    the run stops and the message says what to do."""


class ReviewRefused(BadInput):
    """A review verb for a task that is not waiting for review; nothing was changed."""


_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FAILURE_CONTEXT = 6_000


@dataclass(frozen=True, slots=True)
class StitchOutcome:
    task_id: int
    state: TaskState
    reason: str


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt was not merged, how alike failures are recognised, and what comes next:
    ``retry`` (a fresh attempt) or ``fix`` (the next attempt keeps this work)."""

    reason: str
    fingerprint: str
    remediation: str = "retry"


def attempt_branch(generation: str, task_id: int, attempt: int) -> str:
    """Where an earlier attempt's unmerged work is kept when the task is tried again."""
    return f"attempt/{generation}-{task_id}-{attempt}"


def commit_message(task: Task) -> tuple[str, str]:
    """Subject and body of a task's commit: the title and the description without comments."""
    body = _HTML_COMMENT.sub("", task.description).strip()
    return f"{task.title} (task #{task.id})", body[:4000]


def _loc_trailer(loc: Loc) -> str:
    return f"production={loc.production} test={loc.test}"


def failure_context(project: Project, task: Task) -> str:
    """What went wrong in the task's last attempt, for the next attempt's prompt."""
    runs = project.store.runs(task_id=task.id)
    if not runs:
        return task.reason
    last = runs[-1]
    parts = [task.reason or last.reason]
    if not last.ok:
        if last.result_text:
            parts.append(f"The agent's final message: {last.result_text}")
        if last.stderr_tail.strip():
            parts.append(f"stderr:\n{last.stderr_tail.strip()[-2000:]}")
    for gate in project.store.gate_results(task.id):
        if gate["run_id"] == last.id and not gate["passed"]:
            parts.append(f"gate {gate['name']} output:\n{gate['output_tail'][-3000:]}")
    return "\n\n".join(p for p in parts if p)[-_FAILURE_CONTEXT:]


class Stitcher:
    """Runs tasks of one generation; one instance is shared by all workers of a run."""

    def __init__(
        self, project: Project, generation: Generation, pool: WorktreePool | None = None
    ) -> None:
        self.project = project
        self.generation = generation
        self.pool = pool or WorktreePool(
            project.git, project.worktree_root, generation.name, project.config.reuse_worktrees
        )
        # The merge queue: one merge at a time, in the order tasks ask (asyncio locks are
        # fair), and a file lock so that another process (an approval) waits its turn too.
        self.merge_lock = asyncio.Lock()

    # -- helpers ------------------------------------------------------------------------------

    def _transition(self, task_id: int, state: TaskState, reason: str = "", **kw: Any) -> None:
        event = self.project.store.transition_task(task_id, state, reason, **kw)
        self.project.bus.announce(event)

    def _log(self, task_id: int, message: str, level: LogLevel = "info") -> None:
        self.project.bus.emit(
            Log(generation=self.generation.name, task_id=task_id, level=level, message=message)
        )

    # -- the pipeline -------------------------------------------------------------------------

    async def stitch(
        self, task: Task, release_slot: Callable[[], None] | None = None
    ) -> StitchOutcome:
        """Take a ready task through the whole pipeline.

        ``release_slot`` is called once, when the task no longer needs an agent slot: before
        its merge, or when it ends earlier.
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
        gen = self.generation
        branch = task_branch(gen.name, task.id)
        worktree = await asyncio.to_thread(self.pool.reserve)
        attempt = task.attempts + 1
        started = time.monotonic()
        # Intent first: the store says where the work happens before anything relies on it.
        self._transition(
            task.id,
            TaskState.RUNNING,
            f"attempt {attempt}",
            count_attempt=True,
            branch=branch,
            worktree=str(worktree),
        )
        crash_point("running-recorded")
        try:
            base = await asyncio.to_thread(self._prepare_worktree, task, branch, worktree, attempt)
            crash_point("worktree-ready")
            return await self._run_attempt(task, branch, worktree, base, attempt, started, release)
        except asyncio.CancelledError:
            await asyncio.shield(
                asyncio.to_thread(self._interrupted, task.id, worktree, "interrupted")
            )
            raise
        except GitError as exc:
            # One task's git trouble (an agent that broke its worktree, a commit that fails)
            # ends that task, never the run: the other agents keep working.
            return await self._git_failed(task, worktree, exc)
        except Exception as exc:
            # Whatever went wrong, the task does not stay "running": it goes back to ready
            # with the reason, its work committed to its branch, and the run stops.
            reason = str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(self._interrupted, task.id, worktree, reason)
            if isinstance(exc, EngineError):
                raise
            raise EngineError(f"task {task.id}: {reason}") from exc

    def _prepare_worktree(self, task: Task, branch: str, worktree: Path, attempt: int) -> str:
        """A worktree on ``branch`` at the generation head. A task branch that is still there
        holds the work of an attempt cut short, or of one whose failure asks for a targeted fix
        (other failed attempts are set aside when they fail): that work is carried over, so
        the new attempt continues on top of it."""
        git = self.project.git
        base = git.rev_parse(self.generation.branch)
        if git.ref_exists(f"refs/heads/{branch}") and git.is_ancestor(branch, base):
            git.delete_branch(branch, force=True)  # nothing on it that is not merged
        if not git.ref_exists(f"refs/heads/{branch}"):
            self.pool.prepare(worktree, branch, base)
            return base
        # Squash the old work onto the new base in a detached worktree, then move the branch
        # there: at every moment the work is on the branch or already in the new commit.
        self.pool.prepare(worktree, None, base)
        carried = git.squash_merge(
            branch,
            git.format_message(
                f"Carried over: unfinished work on {task.title} (task #{task.id})",
                "Left by an attempt that shoemaker's stopping cut short.",
                {"Shoemaker-Task": str(task.id), "Shoemaker-Outcome": "interrupted"},
            ),
            cwd=worktree,
        )
        if carried.merged:
            git.move_branch_here(worktree, branch)
            self._log(task.id, "continuing the work of the earlier attempt")
        else:
            kept = self._set_aside(task.id, branch, attempt - 1)
            git.move_branch_here(worktree, branch)
            self._log(
                task.id,
                f"the interrupted attempt's work no longer applies ({carried.reason}); "
                f"kept on {kept}, starting afresh",
                "warning",
            )
        return base

    def _set_aside(self, task_id: int, branch: str, attempt: int) -> str:
        """Rename an attempt's unmerged ``branch`` to a free attempt/* name; returns it."""
        git = self.project.git
        kept = attempt_branch(self.generation.name, task_id, attempt)
        suffix = 1
        while git.ref_exists(f"refs/heads/{kept}"):
            suffix += 1
            kept = f"{attempt_branch(self.generation.name, task_id, attempt)}.{suffix}"
        git.rename_branch(branch, kept)
        return kept

    def _keep_for_retry(self, task: Task) -> None:
        """Before a task goes back for a fresh try: its branch's work is kept on attempt/*."""
        git = self.project.git
        branch = task_branch(self.generation.name, task.id)
        if git.ref_exists(f"refs/heads/{branch}") and not git.is_ancestor(
            branch, self.generation.branch
        ):
            current = self.project.store.get_task(task.id)
            kept = self._set_aside(task.id, branch, current.attempts)
            self._log(task.id, f"this attempt's work is kept on branch {kept}")

    async def _run_attempt(
        self,
        task: Task,
        branch: str,
        worktree: Path,
        base: str,
        attempt: int,
        started: float,
        release: Callable[[], None],
    ) -> StitchOutcome:
        project, gen = self.project, self.generation
        prompt = await asyncio.to_thread(self._render_prompt, task, attempt, worktree)
        run_id, result = await call_agent(
            project, AgentCall(Phase.STITCH, gen.name, task.id, attempt, prompt, worktree)
        )
        crash_point("agent-finished")
        if result.exit_code is None and result.killed is None:
            raise EngineError(result.reason)  # the agent could not even start
        await asyncio.to_thread(self._restore_gitfile, task, worktree)
        if not result.ok:
            await asyncio.to_thread(self._preserve, task, worktree, "agent-failed")
            detail = f"{result.reason}\n{result.summary.result_text or ''}"
            return await self._give_back(
                task,
                Failure(
                    f"agent run {run_id} failed: {result.reason}", fingerprint("agent", detail)
                ),
            )

        self._transition(task.id, TaskState.VERIFYING, "committing and running gates")
        crash_point("verifying-recorded")
        commit = await asyncio.to_thread(
            self._commit, task, worktree, base, attempt, run_id, time.monotonic() - started
        )
        crash_point("committed")
        if commit is None:
            await asyncio.to_thread(self.pool.release, worktree)
            await asyncio.to_thread(project.git.delete_branch, branch, True)
            self._transition(task.id, TaskState.MERGING, "nothing to merge")
            await self._after_done(task.id, "the agent changed nothing")
            return StitchOutcome(task.id, TaskState.DONE, "the agent changed nothing")

        changed = await asyncio.to_thread(self._changed, base, commit)
        failure = await self._run_gates(task, worktree, run_id, changed, "worktree")
        crash_point("gates-done")
        await asyncio.to_thread(self.pool.release, worktree)
        if failure:
            return await self._give_back(task, failure)
        sensitive = self._sensitive_paths(changed)
        if sensitive:
            reason = f"touches {', '.join(sensitive[:5])} (review_globs): approve or reject it"
            self._transition(task.id, TaskState.NEEDS_REVIEW, reason)
            return StitchOutcome(task.id, TaskState.NEEDS_REVIEW, reason)
        self._transition(task.id, TaskState.MERGING, "gates passed")
        crash_point("merging-recorded")
        release()  # the agent and gates are done: another task may start while this one merges
        return await self._merge(task, branch, base, commit, started)

    def _sensitive_paths(self, changed: list[str]) -> list[str]:
        return [path for path in changed if matches_any(path, self.project.config.review_globs)]

    def _render_prompt(self, task: Task, attempt: int, worktree: Path) -> str:
        git = self.project.git
        # Work already in the worktree (carried over) means: continue it, fix what failed.
        continuing = git.rev_parse("HEAD", worktree) != git.rev_parse(self.generation.branch)
        return self.render_prompt(task, attempt, continuing)

    def render_prompt(self, task: Task, attempt: int, continuing: bool = False) -> str:
        """The stitch prompt of ``task``'s attempt ``attempt`` (also used for estimates)."""
        cfg = self.project.config
        gates = gates_for_title(cfg.gates, task.title)
        return render_prompt(
            "stitch.md",
            {
                "task": {
                    "id": task.id,
                    "title": task.title,
                    "description": task.description,
                    "attempt": attempt,
                },
                "generation": self.generation.name,
                "branch": task_branch(self.generation.name, task.id),
                "gates": [{"name": g.name, "command": describe_command(g)} for g in gates],
                "previous_failure": failure_context(self.project, task) if attempt > 1 else "",
                "continuing": continuing,
            },
            repo=self.project.root,
            configured=cfg.stitch_prompt,
        )

    def _commit(
        self, task: Task, worktree: Path, base: str, attempt: int, run_id: int, elapsed: float
    ) -> str | None:
        """Commit what the agent left, with its metrics as trailers; the task's head commit."""
        git, cfg = self.project.git, self.project.config
        # The trailers account for every attempt of the task (failed and interrupted ones
        # too): what landing it cost. Each run's own figures are in its history file.
        runs = self.project.store.runs(task_id=task.id)
        before = git.loc(base, cfg.source_globs, cfg.test_globs)
        changed = git.changed_paths(worktree, base)
        after = git.loc_after(base, changed, cfg.source_globs, cfg.test_globs, cwd=worktree)
        subject, body = commit_message(task)
        # One commit per attempt: work carried over from an interrupted attempt (or committed
        # by the agent itself) is folded into it, so the task lands with its metrics.
        git.soft_reset(worktree, base)
        trailers = {
            "Shoemaker-Task": str(task.id),
            "Shoemaker-Generation": self.generation.name,
            "Shoemaker-Attempt": str(attempt),
            "Shoemaker-Run": str(run_id),
            "Shoemaker-Runs": str(len(runs)),
            "Shoemaker-Tokens-Input": str(sum(r.input_tokens for r in runs)),
            "Shoemaker-Tokens-Output": str(sum(r.output_tokens for r in runs)),
            "Shoemaker-Tokens-Cache-Read": str(sum(r.cache_read_input_tokens for r in runs)),
            "Shoemaker-Tokens-Cache-Creation": str(
                sum(r.cache_creation_input_tokens for r in runs)
            ),
            "Shoemaker-Cost-USD": f"{sum(r.cost_usd for r in runs):.6f}",
            "Shoemaker-LOC-Before": _loc_trailer(before),
            "Shoemaker-LOC-After": _loc_trailer(after),
            "Shoemaker-Duration-S": f"{elapsed:.1f}",
        }
        git.commit_all(worktree, subject, body, trailers)
        head = git.rev_parse("HEAD", worktree)
        return None if head == base else head

    def _restore_gitfile(self, task: Task, worktree: Path) -> None:
        """Before shoemaker's own git runs in a worktree the agent had: its ``.git`` points
        into this repository again (a repository of the agent's making would have its
        configuration executed by that git)."""
        if self.project.git.restore_gitfile(worktree):
            self._log(task.id, f"restored {worktree / '.git'}, which the agent had replaced")

    def _preserve(self, task: Task, worktree: Path, outcome: str) -> None:
        """Commit whatever an unsuccessful attempt left to its branch, then give the worktree
        back to the pool. A worktree that is no longer on the task's branch is not this task's
        any more (released, and maybe another task's now; or broken): it is left alone."""
        git = self.project.git
        if worktree.exists():
            self._restore_gitfile(task, worktree)
            if git.current_branch(worktree) != task_branch(self.generation.name, task.id):
                return
            with contextlib.suppress(Exception):
                git.commit_all(
                    worktree,
                    f"Unfinished: {task.title} (task #{task.id})",
                    "Work left by an attempt that was not merged.",
                    {"Shoemaker-Task": str(task.id), "Shoemaker-Outcome": outcome},
                )
        self.pool.release(worktree)

    def _interrupted(self, task_id: int, worktree: Path, reason: str) -> None:
        task = self.project.store.get_task(task_id)
        with contextlib.suppress(Exception):
            self._preserve(task, worktree, "interrupted")
        if task.state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
            self._transition(task_id, TaskState.READY, reason, interrupted=True)

    async def _git_failed(self, task: Task, worktree: Path, exc: GitError) -> StitchOutcome:
        """A git command of this task failed: what can be kept is committed to its branch, the
        task fails with the reason (no retry: the same step would fail again) and its
        dependents are blocked."""
        await asyncio.to_thread(self._interrupted_keep, task, worktree)
        current = await asyncio.to_thread(self.project.store.get_task, task.id)
        if current.state not in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
            # It had already ended (done, back to ready): only a clean-up step failed.
            self._log(task.id, f"after it ended: {exc}", "warning")
            return StitchOutcome(task.id, current.state, current.reason)
        broken = worktree.is_dir() and not worktree.joinpath(".git").exists()
        reason = f"{exc}" + (f" (its worktree {worktree} has no .git any more)" if broken else "")
        self._transition(task.id, TaskState.FAILED, reason, fingerprint=fingerprint("git", reason))
        store = self.project.store
        events = await asyncio.to_thread(store.block_dependents, self.generation.name, task.id)
        self.project.bus.announce(*events)
        failed = await asyncio.to_thread(store.get_task, task.id)
        await asyncio.to_thread(write_task_history, self.project, failed)
        return StitchOutcome(task.id, TaskState.FAILED, reason)

    def _interrupted_keep(self, task: Task, worktree: Path) -> None:
        with contextlib.suppress(Exception):  # a broken worktree cannot even be committed
            self._preserve(task, worktree, "git-failed")

    def _changed(self, base: str, commit: str) -> list[str]:
        return [f.path for f in self.project.git.diff_stat(base, commit).files]

    def _gates(self, task: Task, changed: list[str], where: str) -> list[GateConfig]:
        gates = gates_for(self.project.config.gates, task.title, changed)
        return [g for g in gates if g.after_merge] if where == "merged" else gates

    async def _run_gates(
        self, task: Task, cwd: Path, run_id: int | None, changed: list[str], where: str
    ) -> Failure | None:
        """Run the task's gates in ``cwd`` (its worktree, or a detached worktree of the merge
        commit), in the agent's sandbox if one is configured; the first failure that is not a
        warning, or None."""
        box = GateBox(self.project.config, self.project.git.common_dir)
        for gate in self._gates(task, changed, where):
            outcome = await run_gate(gate, cwd, box)
            await asyncio.to_thread(
                self.project.store.record_gate,
                task_id=task.id,
                run_id=run_id,
                name=gate.name,
                location=where,
                passed=outcome.passed,
                exit_code=outcome.exit_code,
                duration_s=outcome.duration_s,
                output_tail=outcome.output_tail,
            )
            self.project.bus.emit(
                GateResult(
                    generation=self.generation.name,
                    task_id=task.id,
                    name=gate.name,
                    where=where,
                    passed=outcome.passed,
                    exit_code=outcome.exit_code,
                    expected_exit=gate.expected_exit,
                    duration_s=outcome.duration_s,
                    output_tail=outcome.output_tail[-2000:],
                    reason=outcome.reason,
                )
            )
            if outcome.passed:
                continue
            if gate.severity == "warn":
                self._log(task.id, f"warning: {outcome.reason} (severity warn)", "warning")
                continue
            place = " after the merge" if where == "merged" else ""
            return Failure(
                f"{outcome.reason}{place}",
                fingerprint(f"gate:{gate.name}", outcome.output_tail or outcome.reason),
                gate.severity,
            )
        return None

    async def _merge(
        self, task: Task, branch: str, base: str, commit: str, started: float
    ) -> StitchOutcome:
        """Land a verified task through the merge queue (the task is ``merging``)."""
        gen = self.generation
        failure = None
        async with self.merge_lock:
            outcome, base, commit = await asyncio.to_thread(self._land, task, branch, base, commit)
            crash_point("merge-landed")
            if outcome.merged and outcome.commit != base:
                failure = await self._verify_merged(task, base, commit, outcome.commit)
                crash_point("merge-verified")
        self.project.bus.emit(
            MergeResult(
                generation=gen.name,
                task_id=task.id,
                branch=branch,
                merged=outcome.merged,
                commit=outcome.commit,
                conflict_files=list(outcome.conflict_files),
                reason=outcome.reason,
            )
        )
        if failure:
            return await self._give_back(task, failure)
        if outcome.merged:
            duration = time.monotonic() - started
            return await self._done(task, branch, base, commit, outcome.commit, duration, "merged")
        conflicts = await asyncio.to_thread(self.project.store.count_conflict, task.id)
        if conflicts == 1 and outcome.conflict_files:
            # Once: the agent tries again on the new head, told what changed under it.
            detail = await asyncio.to_thread(self._conflict_detail, base, outcome)
            reason = f"merge conflict in {', '.join(outcome.conflict_files)}: {detail}"
            await asyncio.to_thread(self._keep_for_retry, task)
            self._transition(task.id, TaskState.READY, reason)
            return StitchOutcome(task.id, TaskState.READY, reason)
        reason = f"merge into {gen.branch} failed: {outcome.reason}; work kept on {branch}"
        self._transition(task.id, TaskState.CONFLICT, reason)
        return StitchOutcome(task.id, TaskState.CONFLICT, reason)

    async def settle_landed(self, task_id: int, merge: str) -> StitchOutcome:
        """Finish a merge that landed before shoemaker died, as recovery found it (the task
        is ``merging``, ``merge`` its squash commit): the post-merge gates run now on the
        generation branch, then the task is done, or its merge is reverted and it goes back.
        """
        task = await asyncio.to_thread(self.project.store.get_task, task_id)
        if task.state != TaskState.MERGING:
            raise EngineError(f"task {task_id} is {task.state}, not a recovered merge")
        base = await asyncio.to_thread(self.project.git.rev_parse, f"{merge}^")
        async with self.merge_lock:
            await asyncio.to_thread(self._check_checkout)
            failure = await self._verify_merged(task, base, merge, merge)
        if failure:
            return await self._give_back(task, failure)
        runs = await asyncio.to_thread(self.project.store.runs, task.id)
        # The rest of that attempt's time died with the process; its agent's time did not.
        duration = next((r.wall_s or 0.0 for r in reversed(runs) if r.ok), 0.0)
        reason = "merged before a crash; its gates passed after recovery"
        return await self._done(task, task.branch, base, merge, merge, duration, reason)

    async def _verify_merged(
        self, task: Task, base: str, commit: str, merge: str
    ) -> Failure | None:
        """The gates again, on the generation branch as it is now, inside the merge queue:
        nothing else merges meanwhile, so a failure is this task's and ``merge`` is reverted."""
        runs = await asyncio.to_thread(self.project.store.runs, task.id)
        changed = await asyncio.to_thread(self._changed, base, commit)
        if not self._gates(task, changed, "merged"):
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
                failure = await self._run_gates(
                    task, worktree, runs[-1].id if runs else None, changed, "merged"
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
            self._log(task.id, f"could not remove {path}: {exc}", "warning")

    async def _done(
        self,
        task: Task,
        branch: str | None,
        base: str,
        commit: str,
        merge: str,
        duration: float,
        reason: str,
    ) -> StitchOutcome:
        metrics = await asyncio.to_thread(self._record_metrics, task, base, commit, merge, duration)
        self.project.bus.emit(metrics)
        crash_point("metrics-recorded")
        await self._after_done(task.id, reason, merge)
        if branch:
            await asyncio.to_thread(self._delete_branch, branch)
        return StitchOutcome(task.id, TaskState.DONE, reason)

    def _delete_branch(self, branch: str) -> None:
        if self.project.git.ref_exists(f"refs/heads/{branch}"):
            self.project.git.delete_branch(branch, force=True)

    def _revert(self, task: Task, commit: str, reason: str) -> None:
        git = self.project.git
        with merge_file_lock(self.project):
            reverted = git.revert(
                commit,
                f"Revert task #{task.id}: {task.title}",
                f"A gate failed after the merge: {reason}",
                {"Shoemaker-Reverts-Task": str(task.id)},
            )
        self._log(task.id, f"reverted its merge {commit[:10]} with {reverted[:10]}", "warning")

    def _land(
        self, task: Task, branch: str, base: str, commit: str
    ) -> tuple[MergeOutcome, str, str]:
        """Squash-merge ``branch``; on a conflict rebase it onto the new head (no agent) and
        try once more. Returns the outcome and the base and commit that were merged."""
        git = self.project.git
        with merge_file_lock(self.project):
            self._check_checkout()
            outcome = git.squash_merge(branch, git.commit_message(commit))
            if outcome.merged or not outcome.conflict_files:
                return outcome, base, commit
            head = git.rev_parse(self.generation.branch)
            rebased = self._rebase(task, branch, head)
            if not rebased:
                return outcome, base, commit
            commit = git.rev_parse(branch)
            self._log(task.id, f"rebased {branch} onto {head[:10]} after a conflict")
            retried = git.squash_merge(branch, git.commit_message(commit))
            return (retried, head, commit) if retried.merged else (outcome, base, commit)

    def _rebase(self, task: Task, branch: str, onto: str) -> bool:
        worktree = self.pool.reserve()
        try:
            self.pool.prepare(worktree, None, onto)
            self.project.git.checkout_branch(worktree, branch)
            ok, _ = self.project.git.rebase(worktree, onto)
            return ok
        finally:
            self.pool.release(worktree)

    def _conflict_detail(self, base: str, outcome: MergeOutcome) -> str:
        """What the generation branch changed in the conflicted files since the task began."""
        head = self.generation.branch
        diff = self.project.git.diff_text(base, head, paths=outcome.conflict_files)
        return (
            f"the generation branch changed them since your base {base[:10]}; redo the task "
            f"on top of these changes:\n{diff[:_FAILURE_CONTEXT]}"
        )

    def _check_checkout(self) -> None:
        git = self.project.git
        current = git.current_branch()
        if current != self.generation.branch:
            raise EngineError(
                f"the repository at {git.root} has {current or 'a detached HEAD'} checked out; "
                f"shoemaker merges into {self.generation.branch} there: "
                f"`git checkout {self.generation.branch}` and run again"
            )

    # -- review -------------------------------------------------------------------------------

    async def approve(self, task_id: int) -> StitchOutcome:
        """A person approved a task waiting in review: merge it."""
        task = await asyncio.to_thread(self.project.store.get_task, task_id)
        if task.state != TaskState.NEEDS_REVIEW:
            raise ReviewRefused(
                f"task {task_id} is {task.state}, not waiting for review; see `shoemaker review`"
            )
        git = self.project.git
        base = await asyncio.to_thread(git.merge_base, task.branch, self.generation.branch)
        commit = await asyncio.to_thread(git.rev_parse, task.branch)
        self._transition(task_id, TaskState.MERGING, "approved")
        return await self._merge(task, task.branch, base, commit, time.monotonic())

    async def reject(self, task_id: int, note: str) -> StitchOutcome:
        """A person rejected a task in review: it runs again with their note in its prompt."""
        task = await asyncio.to_thread(self.project.store.get_task, task_id)
        if task.state != TaskState.NEEDS_REVIEW:
            raise ReviewRefused(
                f"task {task_id} is {task.state}, not waiting for review; see `shoemaker review`"
            )
        reason = f"review rejected it: {note.strip() or 'no note given'}"
        await asyncio.to_thread(self._keep_for_retry, task)
        self._transition(task_id, TaskState.READY, reason)
        return StitchOutcome(task_id, TaskState.READY, reason)

    def _record_metrics(
        self, task: Task, base: str, commit: str, merge: str, duration: float
    ) -> MetricsRecorded:
        git, cfg, store = self.project.git, self.project.config, self.project.store
        stat = git.diff_stat(base, commit)
        before = git.loc(base, cfg.source_globs, cfg.test_globs)
        changed = [f.path for f in stat.files]
        after = git.loc_after(base, changed, cfg.source_globs, cfg.test_globs, head=commit)
        store.record_metrics(
            task.id,
            commit_sha=commit,
            merge_sha=merge,
            files_changed=stat.files_changed,
            insertions=stat.insertions,
            deletions=stat.deletions,
            prod_loc_before=before.production,
            prod_loc_after=after.production,
            test_loc_before=before.test,
            test_loc_after=after.test,
            duration_s=duration,
        )
        runs = store.runs(task_id=task.id)
        return MetricsRecorded(
            generation=self.generation.name,
            task_id=task.id,
            input_tokens=sum(r.input_tokens for r in runs),
            output_tokens=sum(r.output_tokens for r in runs),
            cache_creation_input_tokens=sum(r.cache_creation_input_tokens for r in runs),
            cache_read_input_tokens=sum(r.cache_read_input_tokens for r in runs),
            cost_usd=sum(r.cost_usd for r in runs),
            duration_s=duration,
            files_changed=stat.files_changed,
            insertions=stat.insertions,
            deletions=stat.deletions,
            prod_loc_before=before.production,
            prod_loc_after=after.production,
            test_loc_before=before.test,
            test_loc_after=after.test,
        )

    async def _after_done(self, task_id: int, reason: str, merge: str | None = None) -> None:
        """The task is done: recorded with the promotions it causes in one transaction."""
        store = self.project.store
        events = await asyncio.to_thread(store.finish_task, task_id, reason, merge)
        crash_point("done-recorded")
        self.project.bus.announce(*events)
        task = await asyncio.to_thread(store.get_task, task_id)
        await asyncio.to_thread(write_task_history, self.project, task)
        crash_point("history-written")

    async def _give_back(self, task: Task, failure: Failure) -> StitchOutcome:
        """After a failed attempt: ready for another try (its work set aside, or kept for a
        targeted fix), or failed with dependents blocked, when retries are used up or the
        failure is the same as the last one."""
        store, cfg = self.project.store, self.project.config
        current = await asyncio.to_thread(store.get_task, task.id)
        failed_attempts = current.attempts - current.interruptions
        if current.fingerprint and current.fingerprint == failure.fingerprint:
            final = f"the same failure twice in a row, so retrying stops: {failure.reason}"
        elif failed_attempts > cfg.max_retries:
            final = f"{failure.reason} (after {failed_attempts} failed attempts)"
        else:
            if failure.remediation != "fix":
                await asyncio.to_thread(self._keep_for_retry, task)
            self._transition(
                task.id, TaskState.READY, failure.reason, fingerprint=failure.fingerprint
            )
            return StitchOutcome(task.id, TaskState.READY, failure.reason)
        self._transition(task.id, TaskState.FAILED, final, fingerprint=failure.fingerprint)
        events = await asyncio.to_thread(store.block_dependents, self.generation.name, task.id)
        self.project.bus.announce(*events)
        failed = await asyncio.to_thread(store.get_task, task.id)
        await asyncio.to_thread(write_task_history, self.project, failed)
        return StitchOutcome(task.id, TaskState.FAILED, final)
