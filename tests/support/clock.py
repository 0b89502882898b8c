"""A wall clock the test moves: rate-limit resets come when the test says, never by sleeping."""

from __future__ import annotations

import asyncio


class ManualClock:
    """``now()`` stays where the test put it; :meth:`advance` moves it and wakes whoever waits
    for a time that has come. :meth:`waiting_until` lets a test await the moment the engine
    starts waiting for a given time (so it knows the engine is idle, waiting)."""

    def __init__(self, start: float) -> None:
        self.time = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._waited: dict[float, asyncio.Event] = {}

    def now(self) -> float:
        return self.time

    async def sleep_until(self, when: float) -> None:
        self._signal(when)
        if self.time >= when:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((when, future))
        try:
            await future
        finally:
            self._sleepers = [(t, f) for t, f in self._sleepers if f is not future]

    def advance(self, seconds: float) -> None:
        """Move the clock on; each waiter whose time has come wakes."""
        self.time += seconds
        for when, future in self._sleepers:
            if when <= self.time and not future.done():
                future.set_result(None)

    def _signal(self, when: float) -> None:
        self._waited.setdefault(when, asyncio.Event()).set()

    async def waiting_until(self, when: float) -> None:
        """Return once something has asked to sleep until ``when``."""
        await self._waited.setdefault(when, asyncio.Event()).wait()
