"""The engine's wall clock: what time it is, and waiting until a given time.

Rate limits reset at a wall-clock time the provider names, hours away at times. The engine
asks :attr:`Project.clock <shoemaker.engine.project.Project.clock>` rather than the system, so
that a test moves "now" itself (``tests/support/clock.py``) and never sleeps for a reset.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A wall clock in seconds since the epoch."""

    def now(self) -> float:
        """The current time."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return once ``now() >= when`` (at once if it already is)."""
        ...


class SystemClock:
    """The machine's clock. Waits in steps of at most a minute, so that a suspended laptop
    or a clock set forward ends the wait soon after the time has come."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        import asyncio  # here: commands that never wait do not load asyncio (test_startup)

        while (left := when - time.time()) > 0:
            await asyncio.sleep(min(left, 60.0))


def utc(moment: float) -> str:
    """A wall-clock time for people: UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))
