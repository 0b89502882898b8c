"""An event loop on a thread of its own, for an engine embedded in an application that has
its own loop (the dashboard).

The engine's work on its loop (reading agents' output, parsing and storing it, starting gates)
then never queues in front of the application's key presses and redraws; what the engine
commits reaches the application's listeners through the bus, on the application's loop
(``engine/bus.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A daemon thread that runs one asyncio event loop until :meth:`close`."""

    def __init__(self, name: str = "shoemaker-engine") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this thread's loop; its result (or error) is the caller's.

        Cancelling the caller cancels ``coro`` there, and the caller waits until it has
        handled that (agents stopped, the store consistent) before it is cancelled itself.
        """
        caller = asyncio.get_running_loop()
        result: asyncio.Future[T] = caller.create_future()
        tasks: list[asyncio.Task[T]] = []

        def settle(task: asyncio.Task[T]) -> None:
            if result.done():
                return
            if task.cancelled():
                result.cancel()
            elif (error := task.exception()) is not None:
                result.set_exception(error)
            else:
                result.set_result(task.result())

        def start() -> None:
            task = self.loop.create_task(coro)
            tasks.append(task)
            task.add_done_callback(lambda t: _call_soon(caller, settle, t))

        self.loop.call_soon_threadsafe(start)
        try:
            return await asyncio.shield(result)
        except asyncio.CancelledError:
            if result.done():
                raise
            # `start` was handed over before this, so it has run by the time this does.
            self.loop.call_soon_threadsafe(lambda: tasks[0].cancel())
            with contextlib.suppress(BaseException):  # it ends as the caller: cancelled
                await asyncio.shield(result)
            raise

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` on this thread's loop (e.g. to set an event a task awaits)."""
        self.loop.call_soon_threadsafe(callback)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel what still runs on the loop, stop it and wait for the thread to end."""
        if self.loop.is_closed():
            return

        async def wind_down() -> None:
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.loop.shutdown_default_executor()
            self.loop.stop()

        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(wind_down()))
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


def _call_soon(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: Any
) -> None:
    """``callback(*args)`` on ``loop``; nothing when that loop has been closed meanwhile."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
