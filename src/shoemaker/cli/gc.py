"""``gc``: list, and with ``--yes`` remove, what no open generation owns."""

from __future__ import annotations

import argparse

from shoemaker.cli.common import _open_project
from shoemaker.errors import EXIT_FAILED


def cmd_gc(args: argparse.Namespace) -> int:
    """A dry run by default: every orphan on its own line; ``--yes`` removes them (refused
    while a run is in progress, so nothing a run is about to use goes)."""
    from shoemaker.engine.gc import find_orphans, remove_orphans
    from shoemaker.engine.generation import no_run_in_progress

    project = _open_project(args)
    orphans = find_orphans(project)
    lines = [f"worktree  {path}  (generation {g})" for path, g in orphans.worktrees]
    lines += [f"branch    {branch}  (generation {g})" for branch, g in orphans.branches]
    lines += [f"directory {path}  (generation {g})" for path, g in orphans.directories]
    if not lines:
        print("nothing to collect: every worktree and task branch belongs to an open generation")
        return 0
    if not args.yes:
        print("\n".join(lines))
        print(
            f"{orphans.count} belong to no open generation; `shoemaker gc --yes` removes them "
            "(unmerged work on those branches goes with them)"
        )
        return 0
    with no_run_in_progress(project, "collect garbage"):
        orphans = find_orphans(project)  # again, under the lock
        problems = remove_orphans(project, orphans)
    for line in lines:
        print(f"removed {line}")
    for problem in problems:
        print(f"not removed: {problem}")
    return EXIT_FAILED if problems else 0
