"""The one adapter between the engine's events and Textual.

Agent output is far too frequent for a message per line: it goes into bounded per-task
buffers that the output pane drains at about 30 Hz. Every other event becomes one
:class:`EngineEvent` message. In attach mode the same happens with events read back from the
store of a run that another process drives.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from textual.message import Message
from textual.message_pump import MessagePump

from shoemaker.engine.bus import EventBus
from shoemaker.events import AgentOutput, Event
from shoemaker.store import Store

#: Lines kept in memory per task; the full transcript stays in the store.
OUTPUT_LINES = 5_000


class EngineEvent(Message):
    """An engine event other than a line of agent output."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


@dataclass
class OutputBuffers:
    """Condensed agent output per task (``None`` is measure), newest last, bounded."""

    lines: dict[int | None, deque[str]] = field(default_factory=dict)
    pending: dict[int | None, list[str]] = field(default_factory=dict)
    received: int = 0

    def add(self, task_id: int | None, text: str) -> None:
        self.lines.setdefault(task_id, deque(maxlen=OUTPUT_LINES)).append(text)
        self.pending.setdefault(task_id, []).append(text)
        self.received += 1

    def take(self, task_id: int | None) -> list[str]:
        """Lines that arrived for ``task_id`` since the last take."""
        return self.pending.pop(task_id, [])

    def history(self, task_id: int | None) -> list[str]:
        self.pending.pop(task_id, None)
        return list(self.lines.get(task_id, ()))

    def drop_pending(self) -> None:
        self.pending.clear()


class EventBridge:
    """Feeds one Textual message pump (the app) from a live bus or from a store."""

    def __init__(self, target: MessagePump, buffers: OutputBuffers) -> None:
        self.target = target
        self.buffers = buffers
        self.seen = 0

    def __call__(self, event: Event) -> None:
        self.seen += 1
        if isinstance(event, AgentOutput):
            self.buffers.add(event.task_id, event.text)
        else:
            self.target.post_message(EngineEvent(event))

    def attach_bus(self, bus: EventBus) -> None:
        bus.add_listener(self)

    async def follow_store(self, store: Store, interval: float = 0.25) -> None:
        """Read events another process appends to ``store``, forever (run it as a worker)."""
        seq = await asyncio.to_thread(store.last_event_seq)
        while True:
            batch = await asyncio.to_thread(store.events_after, seq, 2_000)
            for _, event in batch:
                self(event)
            if batch:
                seq = batch[-1][0]
            if len(batch) < 2_000:
                await asyncio.sleep(interval)
