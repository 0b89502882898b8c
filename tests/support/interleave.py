"""Deterministic interleavings of two threads' store calls.

A ``Store`` serialises its calls behind one lock; another thread's calls can only come between
two of a thread's calls, where that thread has let go of the lock. ``PausingLock`` stands in
for that lock and stops one chosen thread at the n-th such point until the test lets it go
on, so a test can run another thread's calls exactly there — every point in turn, if it
likes — without a sleep or a lucky schedule.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

#: How long a paused thread or a waiting test waits before it gives up (a hung test is a
#: failure with a message, not a stuck suite).
PATIENCE = 60.0


class PausingLock:
    """A store's lock that pauses whichever thread lets go of it for the ``after``-th time
    (reentrant acquisitions count once; the first side's calls may come from the threads
    of its own event loop), until ``resume`` is set. Calls after the pause are not counted."""

    def __init__(self, inner: Any, after: int) -> None:
        self._inner = inner
        self.after = after
        self.paused = threading.Event()
        self.resume = threading.Event()
        self._depth = threading.local()
        self._released = 0

    def __enter__(self) -> None:
        self._inner.acquire()
        self._depth.n = getattr(self._depth, "n", 0) + 1

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._depth.n -= 1
        self._inner.release()
        if self._depth.n or self.paused.is_set():
            return
        self._released += 1
        if self._released == self.after:
            self.paused.set()
            if not self.resume.wait(timeout=PATIENCE):
                raise TimeoutError("the test never let the paused thread go on")


def interleave(
    store: Any, after: int, first: Callable[[], object], second: Callable[[], object]
) -> tuple[object, object, bool]:
    """Run ``first`` in a thread, stopped after its ``after``-th store call; run ``second``
    there (in this thread), then let ``first`` finish. Returns what each returned or raised,
    and whether ``first`` was stopped at all (False: it made fewer store calls)."""
    lock = PausingLock(store._lock, after)
    store._lock = lock
    results: dict[str, object] = {}

    def run_first() -> None:
        try:
            results["first"] = first()
        except Exception as exc:  # reported to the test, which asserts on it
            results["first"] = exc
        finally:
            lock.paused.set()  # finished without pausing: the test must not wait

    thread = threading.Thread(target=run_first, name="first")
    try:
        thread.start()
        if not lock.paused.wait(timeout=PATIENCE):
            raise TimeoutError("the first thread neither paused nor finished")
        stopped = "first" not in results
        try:
            results["second"] = second()
        except Exception as exc:
            results["second"] = exc
        lock.resume.set()
        thread.join(timeout=PATIENCE)
        if thread.is_alive():
            raise TimeoutError("the first thread did not finish")
    finally:
        store._lock = lock._inner
    return results["first"], results["second"], stopped
