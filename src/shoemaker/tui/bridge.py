"""The one adapter between the engine's events and Textual.

Agent output is far too frequent for a message per line: each batch of lines (one
:class:`AgentOutput` per read of an agent's stdout) goes into bounded per-task buffers that
the output pane drains at about 30 Hz. Every other event becomes one
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
from shoemaker.engine.task_detail import MARK, gate_verdict
from shoemaker.events import AgentFinished, AgentOutput, Event, GateResult, MergeResult
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
    pending: dict[int | None, deque[str]] = field(default_factory=dict)
    """Lines not yet taken by the output pane; bounded too, in case nothing takes them."""
    received: int = 0

    def add(self, task_id: int | None, text: str) -> None:
        self.lines.setdefault(task_id, deque(maxlen=OUTPUT_LINES)).append(text)
        self.pending.setdefault(task_id, deque(maxlen=OUTPUT_LINES)).append(text)
        self.received += 1

    def extend(self, task_id: int | None, texts: list[str]) -> None:
        """Add a batch of lines; a batch longer than the buffers keeps only its tail."""
        self.lines.setdefault(task_id, deque(maxlen=OUTPUT_LINES)).extend(texts)
        self.pending.setdefault(task_id, deque(maxlen=OUTPUT_LINES)).extend(texts)
        self.received += len(texts)

    def take(self, task_id: int | None) -> list[str]:
        """Lines that arrived for ``task_id`` since the last take."""
        return list(self.pending.pop(task_id, ()))

    def history(self, task_id: int | None) -> list[str]:
        self.pending.pop(task_id, None)
        return list(self.lines.get(task_id, ()))

    def drop_pending(self) -> None:
        self.pending.clear()

    def keep_pending(self, task_id: int | None, most: int) -> None:
        """Drop every task's pending lines but the last ``most`` of ``task_id``."""
        kept = self.pending.get(task_id)
        self.pending.clear()
        if kept:
            while len(kept) > most:
                kept.popleft()
            self.pending[task_id] = kept


def story_lines(event: Event) -> list[str]:
    """What shoemaker itself did, as lines of the task's output: gate verdicts, the merge,
    how an agent run ended when it did not end well."""
    if isinstance(event, GateResult):
        return [gate_verdict(event.name, event.where, event.passed, event.exit_code)]
    if isinstance(event, MergeResult):
        if event.merged:
            return [f"{MARK}merged as {event.commit[:7]}"]
        files = f": {', '.join(event.conflict_files[:5])}" if event.conflict_files else ""
        return [
            f"{MARK}merge failed{files} ({event.reason})"
            if event.reason
            else f"{MARK}merge failed{files}"
        ]
    if isinstance(event, AgentFinished) and not event.ok:
        return [f"{MARK}ended: {event.reason or event.ended}"]
    return []


class EventBridge:
    """Feeds one Textual message pump (the app) from a live bus or from a store."""

    def __init__(self, target: MessagePump, buffers: OutputBuffers) -> None:
        self.target = target
        self.buffers = buffers
        self.seen = 0

    def __call__(self, event: Event) -> None:
        self.seen += 1
        if isinstance(event, AgentOutput):
            self.buffers.extend(event.task_id, event.texts)
            return
        for line in story_lines(event):
            self.buffers.add(getattr(event, "task_id", None), line)
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
