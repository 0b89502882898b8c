"""Orphan hygiene: the worktrees, ``task/*`` and ``attempt/*`` branches and directories that
no open generation owns any more (a stopped or abandoned generation's leftovers, a crash's).

Ownership is read from names shoemaker gives: ``task/<generation>-<task>``,
``attempt/<generation>-<task>-<n>[.k]``, and under the worktree directory ``<generation>-<n>``
(a pool's), ``verify-<generation>-<task>`` (the gates after a merge) and such a name with a
``.stale-…`` suffix (moved aside, never registered again). Only names of generations the store
knows count, so a person's own branch that happens to start with ``task/`` is never listed,
nor is a worktree outside shoemaker's worktree directory, nor the main checkout. Anything an
open generation owns stays, whatever else is true of it.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from shoemaker.engine.project import Project
from shoemaker.model import GenerationState

_CLOSED = (GenerationState.STOPPED, GenerationState.ABANDONED)

_TASK_TAIL = re.compile(r"\d+")
_ATTEMPT_TAIL = re.compile(r"\d+-\d+(?:\.\d+)?")
_POOL_TAIL = re.compile(r"\d+(?:\.stale-[\d-]+)?")


@dataclass
class Orphans:
    """What no open generation owns; each entry with the generation it belonged to."""

    worktrees: list[tuple[Path, str]] = field(default_factory=list)
    branches: list[tuple[str, str]] = field(default_factory=list)
    directories: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.worktrees) + len(self.branches) + len(self.directories)


def _owner(rest: str, names: list[str], tail: re.Pattern[str]) -> str | None:
    """The generation among ``names`` (longest first) that ``rest`` is ``<name>-<tail>`` of."""
    for name in names:
        if rest.startswith(f"{name}-") and tail.fullmatch(rest[len(name) + 1 :]):
            return name
    return None


def branch_owner(branch: str, names: list[str]) -> str | None:
    """The generation a ``task/*`` or ``attempt/*`` branch belongs to, or None (not ours)."""
    if branch.startswith("task/"):
        return _owner(branch[5:], names, _TASK_TAIL)
    if branch.startswith("attempt/"):
        return _owner(branch[8:], names, _ATTEMPT_TAIL)
    return None


def _dir_owner(name: str, names: list[str]) -> str | None:
    return _owner(name.removeprefix("verify-"), names, _POOL_TAIL)


def find_orphans(project: Project) -> Orphans:
    """Everything of shoemaker's in this repository that no open generation owns."""
    git, store = project.git, project.store
    generations = store.list_generations()
    # Longest first: a generation named "g-1" must not be taken for "g" with task 1.
    known = sorted((g.name for g in generations), key=len, reverse=True)
    open_names = {g.name for g in generations if g.state not in _CLOSED}
    orphans = Orphans()
    if len(open_names) == len(known):
        return orphans  # every generation is open: nothing can be an orphan, git is not asked
    owned_branches = {
        branch: owner
        for branch in [*git.branches("task/"), *git.branches("attempt/")]
        if (owner := branch_owner(branch, known)) is not None
    }
    root = project.worktree_root
    registered: set[Path] = set()
    # Branches checked out in a worktree that stays (the person's checkout, a worktree of
    # theirs elsewhere, an open generation's) are left alone with it.
    in_use: set[str] = set()
    for wt in git.worktrees():
        registered.add(wt.path)
        owner = _dir_owner(wt.path.name, known)
        by_branch = owned_branches.get(wt.branch or "")
        ours = wt.path != git.root and root in wt.path.parents
        if not ours or by_branch in open_names or owner in open_names:
            in_use.add(wt.branch or "")
        elif owner is not None or by_branch is not None:
            orphans.worktrees.append((wt.path, owner or by_branch or ""))
        else:
            in_use.add(wt.branch or "")
    orphans.branches = [
        (branch, owner)
        for branch, owner in owned_branches.items()
        if owner not in open_names and branch not in in_use
    ]
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry in registered or not entry.is_dir() or entry.is_symlink():
                continue
            owner = _dir_owner(entry.name, known)
            if owner is not None and (owner not in open_names or ".stale-" in entry.name):
                orphans.directories.append((entry, owner))
    return orphans


def remove_orphans(project: Project, orphans: Orphans) -> list[str]:
    """Remove what :func:`find_orphans` found (worktrees first: their branches are checked
    out there); returns one line per thing that could not be removed."""
    git = project.git
    problems: list[str] = []
    for path, _ in orphans.worktrees:
        try:
            git.restore_gitfile(path)  # what ran there may have replaced it
            git.remove_worktree(path)
        except Exception as exc:  # one stuck worktree does not keep the rest
            problems.append(f"worktree {path}: {exc}")
    for branch, _ in orphans.branches:
        try:
            git.delete_branch(branch, force=True, missing_ok=True)
        except Exception as exc:
            problems.append(f"branch {branch}: {exc}")
    for path, _ in orphans.directories:
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            problems.append(f"directory {path}: could not be removed")
    git.prune_worktrees()
    return problems


def pile_up_warning(project: Project) -> str | None:
    """One line when more orphans than ``gc_warn_threshold`` have piled up, else None."""
    threshold = project.config.gc_warn_threshold
    if threshold == 0:
        return None
    count = find_orphans(project).count
    if count <= threshold:
        return None
    return (
        f"{count} worktrees, branches and directories belong to no open generation "
        f"(more than gc_warn_threshold {threshold}); `shoemaker gc` lists them, "
        "`shoemaker gc --yes` removes them"
    )
