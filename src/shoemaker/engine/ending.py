"""What ends a generation: stop (tag, merge into the base, tag, delete its branch) and reset
(tag as abandoned, delete its branches and worktrees).

Like every lifecycle verb, each checks everything it can before it changes anything, so a
refusal leaves the repository and the store as they were, and says why.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

from shoemaker.engine.generation import current_generation, no_run_in_progress, refuse_dirty
from shoemaker.engine.project import Project
from shoemaker.engine.recovery import recover
from shoemaker.errors import GenerationError
from shoemaker.model import (
    ACTIVE_TASK_STATES,
    DRIVEN_GENERATION_STATES,
    Generation,
    GenerationState,
    TaskState,
    task_branch,
)


@dataclass(frozen=True, slots=True)
class ResetReport:
    generation: Generation
    tag: str
    branches_removed: list[str]
    worktrees_removed: int


def reset_generation(project: Project, generation: Generation | None = None) -> ResetReport:
    """Abandon a generation: tag its last commit ``<name>-abandoned``, check out its base,
    remove its branches and worktrees (the tags stay), and remove ``cleanup_dirs``.

    Running it again on an abandoned generation finishes a reset that was cut short."""
    git, store = project.git, project.store
    gen = generation or current_generation(project)
    if gen.state == GenerationState.STOPPED:
        raise GenerationError(f"generation {gen.name} was stopped (merged); nothing to reset")
    tag = f"{gen.name}-abandoned"
    with no_run_in_progress(project, "reset"):
        refuse_dirty(project, "reset")
        if gen.state in DRIVEN_GENERATION_STATES:
            # Its process died: its agents may still run, and they must not outlive it.
            recover(project, gen)
        if not git.ref_exists(f"refs/heads/{gen.base_branch}"):
            raise GenerationError(
                f"the base branch {gen.base_branch} no longer exists; create it again first"
            )
        has_branch = git.ref_exists(f"refs/heads/{gen.branch}")
        if has_branch and not git.ref_exists(f"refs/tags/{tag}"):
            git.tag(tag, gen.branch, f"shoemaker generation {gen.name} abandoned")
        # Intent first: the store says abandoned before the branches go.
        store.set_generation_state(gen.name, GenerationState.ABANDONED, "reset")
        if git.current_branch() != gen.base_branch:
            git.checkout(gen.base_branch)
        branches = [
            branch
            for t in store.list_tasks(gen.name)
            for branch in [
                task_branch(gen.name, t.id),
                *git.branches(f"attempt/{gen.name}-{t.id}-*"),
            ]
            if git.ref_exists(f"refs/heads/{branch}")
        ]
        worktrees = _remove_worktrees(project, gen, set(branches))
        for branch in branches:
            git.delete_branch(branch, force=True)
        removed = list(branches)
        if has_branch:
            git.delete_branch(gen.branch, force=True)
            removed.append(gen.branch)
        _cleanup_dirs(project)
    return ResetReport(store.get_generation(gen.name), tag, removed, worktrees)


def _remove_worktrees(project: Project, gen: Generation, branches: set[str]) -> int:
    """Remove the generation's worktrees: on one of its ``branches``, or its pool's detached
    ones."""
    git = project.git
    pooled = re.compile(rf"^{re.escape(gen.name)}-\d+$")
    count = 0
    for wt in git.worktrees():
        if wt.path == git.root or project.worktree_root not in wt.path.parents:
            continue
        if wt.branch in branches or (wt.branch is None and pooled.match(wt.path.name)):
            git.remove_worktree(wt.path)
            count += 1
    return count


def _cleanup_dirs(project: Project) -> None:
    for directory in project.config.cleanup_dirs:
        target = (project.root / directory).resolve()
        if target == project.root or project.root not in target.parents:
            continue  # the configuration validates this; never remove outside the repository
        shutil.rmtree(target, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class StopReport:
    generation: Generation
    merge_commit: str
    kept_branches: list[str]


def stop_generation(project: Project, generation: Generation | None = None) -> StopReport:
    """Tag the finished generation, merge it into its base branch, tag that, delete its branch."""
    gen = generation or current_generation(project)
    with no_run_in_progress(project, "stop the generation"):
        return _stop(project, project.store.get_generation(gen.name))


def _stop(project: Project, gen: Generation) -> StopReport:
    git, store = project.git, project.store
    busy = [t for t in store.list_tasks(gen.name) if t.state in ACTIVE_TASK_STATES]
    if busy or gen.state in DRIVEN_GENERATION_STATES:
        ids = ", ".join(f"#{t.id}" for t in busy)
        raise GenerationError(
            f"generation {gen.name} was running{f' (tasks {ids})' if busy else ''} when its "
            "shoemaker process ended; `shoemaker resume` recovers it first"
        )
    refuse_dirty(project, "stop the generation")
    for tag in (f"{gen.name}-finished", f"{gen.name}-merged"):
        if git.ref_exists(f"refs/tags/{tag}"):
            raise GenerationError(f"tag {tag} already exists; remove it or rename the generation")
    if not git.ref_exists(f"refs/heads/{gen.base_branch}"):
        raise GenerationError(f"the base branch {gen.base_branch} no longer exists")
    clean, conflicts = git.would_merge_cleanly(gen.branch, gen.base_branch)
    if not clean:
        raise GenerationError(
            f"merging {gen.branch} into {gen.base_branch} would conflict in "
            f"{', '.join(conflicts) or 'some files'}; resolve that on {gen.base_branch} first"
        )

    git.tag(f"{gen.name}-finished", gen.branch, f"shoemaker generation {gen.name} finished")
    git.checkout(gen.base_branch)
    outcome = git.merge(
        gen.branch, f"Merge generation {gen.name}", {"Shoemaker-Generation": gen.name}
    )
    if not outcome.merged:
        git.checkout(gen.branch)
        raise GenerationError(
            f"merging {gen.branch} into {gen.base_branch} failed: {outcome.reason}"
        )
    git.tag(f"{gen.name}-merged", outcome.commit, f"shoemaker generation {gen.name} merged")
    git.delete_branch(gen.branch, force=True)
    store.set_generation_state(gen.name, GenerationState.STOPPED, "merged")
    _cleanup_dirs(project)
    kept = [
        t.branch
        for t in store.list_tasks(gen.name)
        if t.state in (TaskState.CONFLICT, TaskState.FAILED)
        and t.branch
        and git.ref_exists(f"refs/heads/{t.branch}")
    ]
    return StopReport(store.get_generation(gen.name), outcome.commit, kept)
