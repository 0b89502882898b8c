"""Crash points: named step boundaries of the stitch pipeline where shoemaker can be made to die.

With ``SHOEMAKER_CRASH_AT=<point>`` in its environment, the process ends at once
(``os._exit(CRASH_EXIT)``: no clean-up, no ``finally``, like a SIGKILL) the first time it reaches
that point; the recovery tests then check that ``shoemaker resume`` finishes the generation.
Unset, ``crash_point`` is one dictionary lookup and does nothing.
"""

from __future__ import annotations

import os

CRASH_ENV = "SHOEMAKER_CRASH_AT"
CRASH_EXIT = 86
"""The exit status of a process that crashed at its point (so a test knows it got there)."""

POINTS = (
    "running-recorded",  # the task is running, with its branch and worktree recorded
    "worktree-ready",  # its worktree is checked out on the task branch
    "agent-finished",  # the agent's run is recorded; what it wrote is not committed yet
    "verifying-recorded",  # the task is verifying; nothing committed yet
    "committed",  # the attempt's commit is on the task branch
    "gates-done",  # the gates ran in the worktree and their results are stored
    "merging-recorded",  # the task is merging; the merge has not started
    "squash-staged",  # a squash merge is staged in its checkout, not committed
    "merge-landed",  # the squash commit is on the generation branch; nothing recorded
    "merge-verified",  # the post-merge gates passed
    "metrics-recorded",  # the task's metrics are stored; it is not done yet
    "done-recorded",  # done and the promotions it causes are stored (one transaction)
    "history-written",  # the history record is written; the task branch is not deleted yet
)


def crash_point(name: str) -> None:
    """End the process here if ``SHOEMAKER_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        assert name in POINTS, name
        os._exit(CRASH_EXIT)
