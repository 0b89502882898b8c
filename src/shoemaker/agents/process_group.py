"""The process groups agents run in: signalled as a whole, and never left behind.

Every agent starts in a group of its own, so that a signal reaches the CLI and whatever it
started (a node launcher's child, a test suite the agent ran). Groups still alive when the
interpreter exits are killed then.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal

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
