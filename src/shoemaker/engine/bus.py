"""The in-process side of the event stream: the bus owns delivery.

State changes are written by the store in the transaction that changes the row; the store
hands each committed transaction's events to the bus (``Store.on_commit``, wired by
``Project``). Everything else is *emitted*: appended to the store in a transaction of its own,
which the store announces the same way. Either way listeners hear an event only once it is
committed, and in commit order.

Listeners are plain callbacks, called on the bus's event loop: a commit on a worker thread
(``asyncio.to_thread``) is handed over with ``call_soon_threadsafe``; with no running loop
(a CLI verb) delivery is synchronous.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from shoemaker.events import AgentOutput, Event, parse_event
from shoemaker.secrets import NO_SECRETS, Redactor
from shoemaker.store import Store

if TYPE_CHECKING:
    import asyncio

Listener = Callable[[Event], None]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any. Without asyncio imported none can run:
    a command that only reads the store never imports it for the bus."""
    aio = sys.modules.get("asyncio")
    if aio is None:
        return None
    try:
        return aio.get_running_loop()  # type: ignore[no-any-return]
    except RuntimeError:
        return None


class EventBus:
    """Where the engine's events go: persisted by the store, then delivered to listeners on
    the event loop, in commit order."""

    def __init__(self, store: Store | None, redactor: Redactor = NO_SECRETS) -> None:
        self._store = store
        self._redactor = redactor
        self._listeners: list[Listener] = []
        # Events waiting for delivery, in commit order (appended under the store's lock).
        self._pending: deque[Event] = deque()
        self._guard = threading.Lock()
        self._delivering = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_listener(self, listener: Listener) -> None:
        self._bind_running_loop()
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Deliver on ``loop`` (default: the running one) from now on. The bus also binds
        itself to the running loop whenever it is used on that loop's thread."""
        if loop is None:
            import asyncio

            loop = asyncio.get_running_loop()
        self._loop = loop

    def _bind_running_loop(self) -> asyncio.AbstractEventLoop | None:
        running = _running_loop()
        if running is not None:
            self._loop = running
        return running

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
        batch = list(events)
        if not batch:
            return
        if self._store is not None:
            # The store redacts what it writes and announces the batch once committed.
            self._store.append_events(batch)
        else:
            self.announce_all(batch)

    def announce_all(self, events: Iterable[Event]) -> None:
        """Deliver events that are already in the store (the store's ``on_commit``)."""
        batch = [self._clean(e) for e in events]
        if not batch:
            return
        with self._guard:
            self._pending.extend(batch)
        if self._bind_running_loop() is not None:
            self._deliver_pending()
            return
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                loop.call_soon_threadsafe(self._deliver_pending)
                return
            except RuntimeError:  # closed between the check and the call
                pass
        self._deliver_pending()

    def _deliver_pending(self) -> None:
        """Deliver every pending event, oldest first. One delivery at a time: an event a
        listener causes is delivered after the current one, not in the middle of it."""
        with self._guard:
            if self._delivering:
                return
            self._delivering = True
        try:
            while True:
                with self._guard:
                    if not self._pending:
                        # Cleared in the same breath as the check: an event appended by
                        # another thread from now on finds nobody delivering and does it.
                        self._delivering = False
                        return
                    event = self._pending.popleft()
                for listener in list(self._listeners):
                    listener(event)
        except BaseException:
            with self._guard:
                self._delivering = False
            raise
