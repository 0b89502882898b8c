"""An engine on a loop of its own: results, errors and cancellation cross back to the caller,
and the bus hands each listener its events on the loop it listens from."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoemaker.engine.bus import EventBus
from shoemaker.engine.loop_thread import LoopThread
from shoemaker.events import Event, Notice
from shoemaker.store import Store


@pytest.fixture
def engine_loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


async def test_a_coroutine_runs_on_the_thread_and_its_result_comes_back(
    engine_loop: LoopThread,
) -> None:
    async def where() -> int:
        await asyncio.sleep(0)
        return threading.get_ident()

    assert await engine_loop.run(where()) not in (threading.get_ident(), None)

    async def fails() -> None:
        raise ValueError("from the engine")

    with pytest.raises(ValueError, match="from the engine"):
        await engine_loop.run(fails())


async def test_cancelling_the_caller_waits_for_the_coroutine_to_wind_down(
    engine_loop: LoopThread,
) -> None:
    started = asyncio.Event()
    steps: list[str] = []
    caller = asyncio.get_running_loop()

    async def engine() -> None:
        caller.call_soon_threadsafe(started.set)
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            for _ in range(3):  # winding down takes a few turns of its loop (agents stopped)
                await asyncio.sleep(0)
            steps.append("wound down")
            raise

    waiting = asyncio.create_task(engine_loop.run(engine()))
    await started.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert steps == ["wound down"]


async def test_listeners_hear_events_on_the_loop_they_listen_from(
    tmp_path: Path, engine_loop: LoopThread
) -> None:
    store = Store(tmp_path / "shoemaker.db")
    bus = EventBus(store)
    store.on_commit = bus.announce_all
    here = threading.get_ident()
    heard: list[tuple[int, Event]] = []
    bus.add_listener(lambda e: heard.append((threading.get_ident(), e)))
    engine_heard: list[tuple[int, Event]] = []

    async def engine() -> int:
        bus.add_listener(lambda e: engine_heard.append((threading.get_ident(), e)))
        for n in range(50):
            bus.emit(Notice(message=f"line {n}"))  # committed on the engine's thread
            await asyncio.to_thread(bus.emit, Notice(message=f"worker {n}"))
        return threading.get_ident()

    engine_thread = await engine_loop.run(engine())
    committed = [e for _, e in store.events_after(0, limit=1000)]
    assert len(committed) == 100
    # The caller's listener: every event, in commit order, on the caller's thread, and all
    # of them before the engine's result (handed over after them).
    assert [e for _, e in heard] == committed
    assert {thread for thread, _ in heard} == {here}
    assert [e for _, e in engine_heard] == committed
    assert {thread for thread, _ in engine_heard} == {engine_thread}


def test_close_cancels_what_still_runs_and_ends_the_thread() -> None:
    thread = LoopThread()
    running, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    thread.call_soon(lambda: thread.loop.create_task(forever()) and None)
    assert running.wait(60)
    thread.close()
    assert cancelled.is_set() and thread.loop.is_closed()
