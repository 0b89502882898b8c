"""Work a cancel must not cut short: awaited to its end, then the cancel goes on.

A thread started by ``asyncio.to_thread`` runs to its end whatever happens to the coroutine
that awaits it; a cancel that stops the wait lets the caller go on (and a run end) while the
thread still writes. Where that thread moves a task's state or lands a merge, the caller must
see the end of it first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def uncut(work: Awaitable[T]) -> T:
    """``await work``, waited for to its end even when the caller is cancelled meanwhile;
    then the cancel is raised (after ``work``'s own error, if it failed: that is raised)."""
    job = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        while not job.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([job])
        if not job.cancelled():
            job.result()
        raise
