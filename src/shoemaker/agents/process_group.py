"""The process groups agents run in: signalled as a whole, and never left behind.

Every agent starts in a group of its own, so that a signal reaches the CLI and whatever it
started (a node launcher's child, a test suite the agent ran). Groups still alive when the
interpreter exits are killed then.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
from collections.abc import Callable

#: Process groups still running, so that an interpreter exit never leaves agents behind.
LIVE_GROUPS: set[int] = set()


def _reap_at_exit() -> None:
    for pgid in list(LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


atexit.register(_reap_at_exit)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the group; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still there."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child die (SIGKILL) when the process that starts it
    dies, so that a killed worker never leaves its agent running. Linux only; elsewhere it
    does nothing. The parent's pid is taken now, before the fork, so that a parent already
    gone by the time the child asks is noticed too."""
    parent = os.getpid()

    def arm() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:
            os._exit(1)  # the parent died between the fork and the prctl

    return arm


def chain(*steps: Callable[[], None] | None) -> Callable[[], None] | None:
    """One ``preexec_fn`` running ``steps`` in order (None among them: skipped)."""
    present = [s for s in steps if s is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def run() -> None:
        for step in present:
            step()

    return run
