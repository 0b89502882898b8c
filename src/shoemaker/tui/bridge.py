"""The one adapter between the engine's events and Textual.

Agent output is far too frequent for a message per line: each batch of lines (one
:class:`AgentOutput` per read of an agent's stdout) goes into bounded per-task buffers that
the output pane drains about ten times a second, uncondensed: a task's lines are condensed
when the pane asks for them, and only as many as it keeps; a task nobody looks at keeps its
newest batches raw and is never condensed. Every other event becomes one
:class:`EngineEvent` message. In attach mode the same happens with events read back from the
store of a run that another process drives.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from textual.message import Message
from textual.message_pump import MessagePump

from shoemaker.engine.bus import EventBus
from shoemaker.engine.task_detail import MARK, gate_verdict
from shoemaker.engine.transcript_ranges import TranscriptRanges
from shoemaker.events import AgentFinished, AgentOutput, Event, GateResult, MergeResult
from shoemaker.store import Store
from shoemaker.tui.widgets import PANE_LINES

#: Lines kept in memory per task, as many as the output pane shows: condensing more of a
#: task that prints thousands a second only for the pane to drop them cost a tenth of the
#: dashboard's time. The full transcript stays in the store.
OUTPUT_LINES = PANE_LINES
#: Lines (and bytes) of a task's output kept uncondensed; beyond them its oldest batches
#: are dropped as they are, which bounds the memory a task nobody looks at takes without
#: condensing lines nobody may ever ask for.
UNREAD_LINES = 4 * OUTPUT_LINES
UNREAD_BYTES = 16 << 20
#: Lines condensed per intake of the output pane (ten a second): an agent printing faster
#: than anyone reads shows its newest lines and a line saying the others were skipped, and
#: the dashboard does not spend a tenth of the run's time condensing what scrolls by unseen.
TAKE_LINES = 200
#: The line in place of those skipped.
SKIPPED = f"{MARK}… more lines than can be shown: the older ones are in the log (l)"
#: Intakes passed over after one that skipped lines: while the shown task prints faster than
#: anyone reads, three redraws a second look as live as ten and cost a third.
FLOOD_REST = 2


class EngineEvent(Message):
    """An engine event other than a line of agent output."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


@dataclass
class OutputBuffers:
    """Agent output per task (``None`` is measure), newest last, bounded. Batches of agent
    output arrive uncondensed and wait; a task's lines are condensed when they are asked for
    (:meth:`take`, :meth:`history`, :meth:`shown`), and then only as many of the newest as
    the buffers keep. What waits is bounded by dropping its oldest batches raw."""

    _lines: dict[int | None, deque[str]] = field(default_factory=dict)
    pending: dict[int | None, deque[str]] = field(default_factory=dict)
    """Lines not yet taken by the output pane; bounded too, in case nothing takes them."""
    _unread: dict[int | None, deque[tuple[str | AgentOutput, int, int]]] = field(
        default_factory=dict
    )
    """What waits to be condensed per task: each item with its lines and bytes."""
    _unread_size: dict[int | None, tuple[int, int]] = field(default_factory=dict)
    received: int = 0
    """Lines of agent output and story lines that arrived, shown or not."""
    resting: int = 0
    """Intakes still to pass over (:data:`FLOOD_REST`) after one that skipped lines."""

    def add(self, task_id: int | None, text: str) -> None:
        self._queue(task_id, text, 1, 0)

    def extend(self, task_id: int | None, batch: AgentOutput) -> None:
        """Add a batch of agent output, to be condensed when its lines are asked for."""
        self._queue(task_id, batch, batch.read, batch.end - batch.start)

    def _queue(self, task_id: int | None, item: str | AgentOutput, lines: int, size: int) -> None:
        unread = self._unread.get(task_id)
        if unread is None:
            unread = self._unread[task_id] = deque()
        unread.append((item, lines, size))
        count, total = self._unread_size.get(task_id, (0, 0))
        count, total = count + lines, total + size
        self.received += lines
        if count > UNREAD_LINES or total > UNREAD_BYTES:
            # The oldest go as they are: what is kept holds the newest lines kept and more.
            while len(unread) > 1 and (count > UNREAD_LINES or total > UNREAD_BYTES):
                _, dropped, dropped_size = unread.popleft()
                count, total = count - dropped, total - dropped_size
            # Lines settled before the dropped ones would leave a gap in the history.
            self._lines.pop(task_id, None)
            self.pending.pop(task_id, None)
        self._unread_size[task_id] = (count, total)

    def _settle(self, task_id: int | None, most: int = OUTPUT_LINES) -> None:
        """Condense what waits for ``task_id``: only the newest ``most`` lines (at most as
        many as the buffers keep); older ones that waited are said to be skipped."""
        unread = self._unread.pop(task_id, None)
        self._unread_size.pop(task_id, None)
        if not unread:
            return
        newest: list[list[str]] = []
        left = min(most, OUTPUT_LINES)
        skipped = False
        for item, read, _ in reversed(unread):
            if left <= 0:
                skipped = True
                break
            texts = [item] if isinstance(item, str) else [t for _, t in item.shown(left)]
            newest.append(texts)
            left -= len(texts)
            skipped = left <= 0 and read > len(texts)
        if skipped and most < OUTPUT_LINES:
            newest.append([SKIPPED])
        lines = self._lines.setdefault(task_id, deque(maxlen=OUTPUT_LINES))
        pending = self.pending.setdefault(task_id, deque(maxlen=OUTPUT_LINES))
        for texts in reversed(newest):
            lines.extend(texts)
            pending.extend(texts)

    def take(self, task_id: int | None) -> list[str]:
        """Lines that arrived for ``task_id`` since the last take: the newest
        ``TAKE_LINES``, after a line saying that older ones were skipped, if any were; then
        nothing for the next :data:`FLOOD_REST` takes (what arrives meanwhile waits)."""
        if self.resting:
            self.resting -= 1
            return []
        self._settle(task_id, TAKE_LINES)
        lines = list(self.pending.pop(task_id, ()))
        if lines[:1] == [SKIPPED]:
            self.resting = FLOOD_REST
        return lines

    def history(self, task_id: int | None) -> list[str]:
        self.resting = 0  # another task is shown: its lines come at the next intake
        self._settle(task_id)
        self.pending.pop(task_id, None)
        return list(self._lines.get(task_id, ()))

    def shown(self, task_id: int | None) -> list[str]:
        """The lines kept for ``task_id``, oldest first (pending ones stay pending)."""
        self._settle(task_id)
        return list(self._lines.get(task_id, ()))

    def has_lines(self, task_id: int | None) -> bool:
        return bool(self._lines.get(task_id) or self._unread.get(task_id))

    def drop_pending(self) -> None:
        self.pending.clear()

    def keep_pending(self, task_id: int | None, most: int) -> None:
        """Drop every task's pending lines but the last ``most`` of ``task_id`` (what waits
        for the others stays for their history)."""
        self._settle(task_id)
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
        self.ranges: TranscriptRanges | None = None
        """Where agent output read back from a store gets its lines (attach mode)."""

    def __call__(self, event: Event) -> None:
        self.seen += 1
        if isinstance(event, AgentOutput):
            if self.ranges is not None:
                self.ranges.attach(event)
            self.buffers.extend(event.task_id, event)
            return
        for line in story_lines(event):
            self.buffers.add(getattr(event, "task_id", None), line)
        self.target.post_message(EngineEvent(event))

    def attach_bus(self, bus: EventBus) -> None:
        bus.add_listener(self)

    async def follow_store(self, store: Store, runs_dir: Path, interval: float = 0.25) -> None:
        """Read events another process appends to ``store``, forever (run it as a worker);
        agent output is condensed from the transcripts in ``runs_dir`` (or the store's copy)
        when it is shown."""
        self.ranges = TranscriptRanges(store, runs_dir)
        seq = await asyncio.to_thread(store.last_event_seq)
        while True:
            batch = await asyncio.to_thread(store.events_after, seq, 2_000)
            for _, event in batch:
                self(event)
            if batch:
                seq = batch[-1][0]
            if len(batch) < 2_000:
                await asyncio.sleep(interval)
