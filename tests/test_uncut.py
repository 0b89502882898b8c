"""``uncut``: work a cancel must not cut short is awaited to its end, then the cancel goes on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from shoemaker.engine.uncut import uncut


async def test_a_cancelled_caller_waits_for_the_thread_then_is_cancelled() -> None:
    entered, release = threading.Event(), threading.Event()
    ended: list[str] = []

    def work() -> str:
        entered.set()
        release.wait(30)
        ended.append("work")
        return "landed"

    async def caller() -> str:
        result = await uncut(asyncio.to_thread(work))
        ended.append("caller")  # never: the cancel is raised after the work
        return result

    task = asyncio.create_task(caller())
    await asyncio.to_thread(entered.wait, 30)
    task.cancel()
    for _ in range(20):  # the cancel is delivered and handled; the work still holds it
        await asyncio.sleep(0)
    assert not task.done() and ended == []
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["work"]


async def test_the_works_own_error_wins_over_the_cancel() -> None:
    entered, release = threading.Event(), threading.Event()

    def work() -> None:
        entered.set()
        release.wait(30)
        raise OSError("disk full")

    task = asyncio.create_task(uncut(asyncio.to_thread(work)))
    await asyncio.to_thread(entered.wait, 30)
    task.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(OSError, match="disk full"):
        await task


async def test_uncancelled_it_is_the_work_itself() -> None:
    assert await uncut(asyncio.to_thread(lambda: 7)) == 7
