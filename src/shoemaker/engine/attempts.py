"""Attempts: one try at a task, on its branch, from its worktree to its commit.

An :class:`Attempt` carries what the pipeline learns as it goes (worktree, base, run, commit,
what the change touched and the LOC it leaves), so that no step asks git or the store again
for a fact an earlier one had. Here too: the attempt's branch (work carried over from an attempt
cut short, or set aside on ``attempt/*`` when it is tried afresh), its commit with trailers,
and its metrics.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shoemaker.agents.runner import RunResult
from shoemaker.engine.gates import task_gates
from shoemaker.engine.project import Project
from shoemaker.engine.worktrees import WorktreePool
from shoemaker.events import MetricsRecorded, Notice, NoticeLevel
from shoemaker.git import DiffStat, Git, GitError
from shoemaker.loc import Loc
from shoemaker.model import Generation, Task, Usage, task_branch
from shoemaker.sources.writeback import write_back
from shoemaker.store import MetricsRecord, RunRecord

_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@dataclass(slots=True)
class Attempt:
    """One try at a task: where it works and what it has produced so far."""

    task: Task
    """The task as it was when the attempt began (its last failure's reason and fingerprint)."""
    number: int
    """The task's attempts counted so far, this one included."""
    branch: str
    worktree: Path | None
    started: float
    """``time.monotonic()`` when the attempt began."""
    base: str = ""
    continuing: bool = False
    """The worktree starts from earlier work of the task (carried over)."""
    run_id: int | None = None
    result: RunResult | None = None
    commit: str | None = None
    message: str = ""
    """The commit's message, which its squash merge carries."""
    stat: DiffStat = field(default_factory=lambda: DiffStat(()))
    """``base`` → ``commit``: the files the change touches, with their line counts."""
    loc_before: Loc | None = None
    loc_after: Loc | None = None
    runs: list[RunRecord] | None = None
    """Every run of the task (earlier attempts too) as of the commit."""
    env: dict[str, str] = field(default_factory=dict)
    """The worktree's own variables for its agent and gates (``SHOEMAKER_PORT_BASE``)."""

    @property
    def changed(self) -> list[str]:
        return [f.path for f in self.stat.files]


def attempt_branch(generation: str, task_id: int, attempt: int) -> str:
    """Where an earlier attempt's unmerged work is kept when the task is tried again."""
    return f"attempt/{generation}-{task_id}-{attempt}"


def commit_message(task: Task) -> tuple[str, str]:
    """Subject and body of a task's commit: the title and the description without comments."""
    body = _HTML_COMMENT.sub("", task.description).strip()
    return f"{task.title} (task #{task.id})", body[:4000]


def log(project: Project, task: Task, message: str, level: NoticeLevel = "info") -> None:
    project.bus.emit(
        Notice(generation=task.generation, task_id=task.id, level=level, message=message)
    )


def _loc_trailer(loc: Loc) -> str:
    return f"production={loc.production} test={loc.test}"


# -- branches --------------------------------------------------------------------------------


def prepare_worktree(
    project: Project, generation: Generation, pool: WorktreePool, attempt: Attempt
) -> tuple[str, bool]:
    """A worktree on the attempt's branch at the generation head; returns the base and
    whether the worktree continues earlier work. A task branch that is still there holds the
    work of an attempt cut short, or of one whose failure asks for a targeted fix (other
    failed attempts are set aside when they fail): that work is carried over, so the new
    attempt continues on top of it."""
    git, task, branch = project.git, attempt.task, attempt.branch
    assert attempt.worktree is not None
    # The generation head and whether the task branch is still there, from one process.
    head_ref, branch_ref = f"refs/heads/{generation.branch}", f"refs/heads/{branch}"
    tips = git.ref_tips([head_ref, branch_ref])
    if head_ref not in tips:
        gone = f"the branch {generation.branch} of generation {generation.name} is gone"
        raise GitError(["git", "for-each-ref", head_ref], 1, gone)
    base, exists = tips[head_ref], branch_ref in tips
    if exists and git.is_ancestor(branch, base):
        git.delete_branch(branch, force=True)  # nothing on it that is not merged
        exists = False
    if not exists:
        pool.prepare(attempt.worktree, branch, base)
        return base, False
    # Squash the old work onto the new base in a detached worktree, then move the branch
    # there: at every moment the work is on the branch or already in the new commit.
    pool.prepare(attempt.worktree, None, base)
    carried = git.squash_merge(
        branch,
        carried_over_message(git, task),
        cwd=attempt.worktree,
    )
    if carried.merged:
        git.move_branch_here(attempt.worktree, branch)
        log(project, task, "continuing the work of the earlier attempt")
        return base, carried.commit != base
    set_aside_stale(project, task, branch, attempt.number - 1, carried.reason)
    git.move_branch_here(attempt.worktree, branch)
    return base, False


def carried_over_message(git: Git, task: Task) -> str:
    """The message of the commit an interrupted attempt's work is carried over in."""
    return git.format_message(
        f"Carried over: unfinished work on {task.title} (task #{task.id})",
        "Left by an attempt that shoemaker's stopping cut short.",
        {"Shoemaker-Task": str(task.id), "Shoemaker-Outcome": "interrupted"},
    )


def set_aside_stale(project: Project, task: Task, branch: str, number: int, why: str) -> None:
    """Keep the work of attempt ``number`` that no longer applies (``why``) on attempt/*,
    and say so in the task's log: the new attempt starts afresh."""
    kept = set_aside(project, task, branch, number)
    message = f"the interrupted attempt's work no longer applies ({why}); kept on {kept}"
    log(project, task, f"{message}, starting afresh", "warning")


def set_aside(project: Project, task: Task, branch: str, number: int) -> str:
    """Rename an attempt's unmerged ``branch`` to a free attempt/* name; returns it."""
    git = project.git
    kept = attempt_branch(task.generation, task.id, number)
    suffix = 1
    while git.ref_exists(f"refs/heads/{kept}"):
        suffix += 1
        kept = f"{attempt_branch(task.generation, task.id, number)}.{suffix}"
    git.rename_branch(branch, kept)
    return kept


def keep_for_retry(project: Project, generation: Generation, task: Task, number: int) -> None:
    """Before a task goes back for a fresh try: its branch's work is kept on attempt/*
    (``number``: the attempts counted so far, this one included)."""
    git = project.git
    branch = task_branch(task.generation, task.id)
    if git.ref_exists(f"refs/heads/{branch}") and not git.is_ancestor(branch, generation.branch):
        kept = set_aside(project, task, branch, number)
        log(project, task, f"this attempt's work is kept on branch {kept}")


# -- the attempt's work -------------------------------------------------------------------------


def restore_gitfile(project: Project, task: Task, worktree: Path) -> None:
    """Before shoemaker's own git runs in a worktree the agent had: its ``.git`` points
    into this repository again (a repository of the agent's making would have its
    configuration executed by that git)."""
    if project.git.restore_gitfile(worktree):
        log(project, task, f"restored {worktree / '.git'}, which the agent had replaced")


def preserve(
    project: Project, pool: WorktreePool, task: Task, worktree: Path, outcome: str
) -> None:
    """Commit whatever an unsuccessful attempt left to its branch, then give the worktree
    back to the pool. A worktree that is no longer on the task's branch is not this task's
    any more (released, and maybe another task's now; or broken): it is left alone."""
    git = project.git
    if worktree.exists():
        restore_gitfile(project, task, worktree)
        if git.current_branch(worktree) != task_branch(task.generation, task.id):
            return
        with contextlib.suppress(Exception):
            git.commit_all(
                worktree,
                f"Unfinished: {task.title} (task #{task.id})",
                "Work left by an attempt that was not merged.",
                {"Shoemaker-Task": str(task.id), "Shoemaker-Outcome": outcome},
            )
    pool.release(worktree)


def commit(project: Project, attempt: Attempt, elapsed: float) -> None:
    """Commit what the agent left, with its metrics as trailers; fills in the attempt's
    commit (None: nothing changed), message, diff stat, LOC and runs."""
    git, cfg, task = project.git, project.config, attempt.task
    worktree, base = attempt.worktree, attempt.base
    assert worktree is not None
    # The trailers account for every attempt of the task (failed and interrupted ones
    # too): what landing it cost. Each run's own figures are in its history file.
    runs = project.store.runs(task_id=task.id)
    stat = git.stage_all_stat(worktree, base)
    if not stat.files and write_back(task, worktree):
        # Nothing to merge, so no merge to carry the plan's progress: this commit does.
        stat = git.stage_all_stat(worktree, base)
    changed = [f.path for f in stat.files]
    before = git.loc(base, cfg.source_globs, cfg.test_globs)
    after = git.loc_after(base, changed, cfg.source_globs, cfg.test_globs, cwd=worktree)
    subject, body = commit_message(task)
    spent = sum_runs(runs)
    message = git.format_message(
        subject,
        body,
        {
            "Shoemaker-Task": str(task.id),
            "Shoemaker-Generation": task.generation,
            "Shoemaker-Attempt": str(attempt.number),
            "Shoemaker-Run": str(attempt.run_id),
            "Shoemaker-Runs": str(len(runs)),
            "Shoemaker-Tokens-Input": str(spent.usage.input_tokens),
            "Shoemaker-Tokens-Output": str(spent.usage.output_tokens),
            "Shoemaker-Tokens-Cache-Read": str(spent.usage.cache_read_input_tokens),
            "Shoemaker-Tokens-Cache-Creation": str(spent.usage.cache_creation_input_tokens),
            "Shoemaker-Cost-USD": f"{spent.cost_usd:.6f}",
            "Shoemaker-LOC-Before": _loc_trailer(before),
            "Shoemaker-LOC-After": _loc_trailer(after),
            "Shoemaker-Duration-S": f"{elapsed:.1f}",
            **({"Shoemaker-Source": task.origin.label} if task.origin else {}),
        },
    )
    # One commit per attempt: work carried over from an interrupted attempt (or committed
    # by the agent itself) is folded into it, so the task lands with its metrics. What is
    # staged is the whole change against the base, so an empty stat means nothing to commit.
    # With no gate to run in the worktree it is done with: its HEAD is detached in the same
    # step, and giving it back to the pool needs no checkout.
    attempt.commit = (
        git.commit_index(
            worktree,
            base,
            message,
            attempt.branch,
            detach=not task_gates(cfg, task, changed, "worktree"),
        )
        if stat.files
        else None
    )
    attempt.message, attempt.stat, attempt.runs = message, stat, runs
    attempt.loc_before, attempt.loc_after = before, after


def measure_change(project: Project, attempt: Attempt) -> None:
    """The diff stat and LOC of ``base`` → ``commit`` from git, for an attempt that did not
    commit in this process (approved, recovered) or whose commit changed (rebased)."""
    git, cfg = project.git, project.config
    assert attempt.commit is not None
    attempt.stat = git.diff_stat(attempt.base, attempt.commit)
    attempt.loc_before = git.loc(attempt.base, cfg.source_globs, cfg.test_globs)
    attempt.loc_after = git.loc_after(
        attempt.base, attempt.changed, cfg.source_globs, cfg.test_globs, head=attempt.commit
    )


@dataclass(frozen=True, slots=True)
class RunTotals:
    """What several runs spent: their tokens and dollars, summed."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0


def sum_runs(runs: list[RunRecord]) -> RunTotals:
    return RunTotals(sum((r.usage for r in runs), Usage()), sum(r.cost_usd for r in runs))


#: The figures of ``MetricsRecorded`` that the ``metrics`` row keeps as well.
_STORED_FIGURES = set(MetricsRecord.__dataclass_fields__) - {
    "task_id",
    "commit_sha",
    "merge_sha",
    "recorded_at",
}


def record_metrics(
    project: Project, attempt: Attempt, merge: str, duration: float
) -> MetricsRecord:
    """Store the landed attempt's metrics, announced in the same transaction."""
    task, stat = attempt.task, attempt.stat
    before, after = attempt.loc_before, attempt.loc_after
    assert before is not None and after is not None and attempt.commit is not None
    if attempt.runs is None:
        attempt.runs = project.store.runs(task_id=task.id)
    spent = sum_runs(attempt.runs)
    announce = MetricsRecorded(
        generation=task.generation,
        task_id=task.id,
        **asdict(spent.usage),
        cost_usd=spent.cost_usd,
        duration_s=duration,
        files_changed=stat.files_changed,
        insertions=stat.insertions,
        deletions=stat.deletions,
        prod_loc_before=before.production,
        prod_loc_after=after.production,
        test_loc_before=before.test,
        test_loc_after=after.test,
    )
    # The store's row holds the same figures as the event (and the commits).
    figures = announce.model_dump(include=_STORED_FIGURES)
    return project.store.record_metrics(
        task.id, announce, commit_sha=attempt.commit, merge_sha=merge, **figures
    )
