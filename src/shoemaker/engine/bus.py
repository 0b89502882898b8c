"""The in-process side of the event stream: persist, then fan out to subscribers.

Events that a store transaction already wrote (state changes) are *announced*; everything else is
*emitted*, which appends it to the store first. Subscribers are either plain callbacks, called in
order on the emitting thread of the event loop, or bounded async queues; a slow queue subscriber
loses agent output lines (counted) but never a state change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from shoemaker.events import AgentOutput, Event, parse_event
from shoemaker.secrets import NO_SECRETS, Redactor
from shoemaker.store import Store

Listener = Callable[[Event], None]


class Subscription:
    """A bounded queue of events for one async consumer."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            if isinstance(event, AgentOutput):
                self.dropped += 1
                return
            # Make room for a state change by dropping the oldest entry.
            self.queue.get_nowait()
            self.dropped += 1
            self.queue.put_nowait(event)

    def close(self) -> None:
        self._bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventBus:
    """Where the engine's events go."""

    def __init__(self, store: Store | None, redactor: Redactor = NO_SECRETS) -> None:
        self._store = store
        self._redactor = redactor
        self._listeners: list[Listener] = []
        self._subscriptions: list[Subscription] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscriptions.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def emit(self, *events: Event) -> None:
        """Persist events (one transaction), then deliver them."""
        self.emit_all(events)

    def _clean(self, event: Event) -> Event:
        """The event with every secret value replaced (the same object when there is none)."""
        if not self._redactor.active:
            return event
        if isinstance(event, AgentOutput):  # the hot path: only its text comes from the agent
            text = self._redactor.text(event.text)
            return event if text == event.text else event.model_copy(update={"text": text})
        raw = event.model_dump_json()
        clean = self._redactor.text(raw)
        return event if clean == raw else parse_event(clean)

    def emit_all(self, events: Iterable[Event]) -> None:
        batch = [self._clean(e) for e in events]
        if not batch:
            return
        if self._store is not None:
            self._store.append_events(batch)
        self.announce_all(batch)

    def announce(self, *events: Event | None) -> None:
        """Deliver events that are already in the store."""
        self.announce_all(e for e in events if e is not None)

    def announce_all(self, events: Iterable[Event]) -> None:
        for event in map(self._clean, events):
            for listener in self._listeners:
                listener(event)
            for sub in self._subscriptions:
                sub.offer(event)
