"""The in-process side of the event stream: the bus owns delivery.

State changes are written by the store in the transaction that changes the row; the store
hands each committed transaction's events to the bus (``Store.on_commit``, wired by
``Project``). Everything else is *emitted*: appended to the store in a transaction of its own,
which the store announces the same way. Either way listeners hear an event only once it is
committed, and in commit order.

Listeners are plain callbacks, each called on the event loop it was added from (or, added
with no loop running, the bus's loop): a commit on another thread (``asyncio.to_thread``, or
the dashboard's engine thread) is handed over with ``call_soon_threadsafe``, one hand-over for
however many commits arrive before the loop takes them; with no running loop (a CLI verb)
delivery is synchronous.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from shoemaker.events import Event, parse_event
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


class _Route:
    """The listeners that hear events on one event loop, and the events they have yet to
    hear, in commit order. ``loop`` None: the bus's own loop (see :meth:`EventBus.bind_loop`)."""

    __slots__ = ("delivering", "listeners", "loop", "pending", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.listeners: list[Listener] = []
        self.pending: deque[Event] = deque()
        self.delivering = False
        self.scheduled = False  # a delivery is on its way to the loop: no second one is sent


class EventBus:
    """Where the engine's events go: persisted by the store, then delivered to listeners in
    commit order, each listener on the event loop it was added from."""

    def __init__(self, store: Store | None, redactor: Redactor = NO_SECRETS) -> None:
        self._store = store
        self._redactor = redactor
        self._routes: dict[asyncio.AbstractEventLoop | None, _Route] = {}
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every event committed from now on. Added while an event
        loop runs, it hears them on that loop's thread, whichever thread commits them (the
        dashboard's listeners on its loop, an engine's on the loop the engine runs on);
        added with no loop running, on the bus's loop."""
        running = self._bind_running_loop()
        with self._guard:
            route = self._routes.get(running)
            if route is None:
                route = self._routes[running] = _Route(running)
            route.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._guard:
            for route in self._routes.values():
                if listener in route.listeners:
                    route.listeners.remove(listener)
                    return
        raise ValueError(f"{listener!r} is not listening")

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Deliver on ``loop`` (default: the running one) from now on, to the listeners added
        with no loop running. The bus also binds itself to the running loop whenever it is
        used on that loop's thread."""
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
        """The event with every secret value replaced (the same object when there is none):
        its JSON, serialised once, read once by the redactor, and read back only when a
        secret was found."""
        if not self._redactor.active:
            return event
        raw = event.json_bytes()
        clean = self._redactor.data(raw)
        return event if clean == raw else parse_event(clean)

    def emit_all(self, events: Iterable[Event]) -> None:
        batch = list(events)
        if not batch:
            return
        if self._store is not None:
            # The store redacts what it writes and announces the batch once committed.
            self._store.append_events(batch)
        else:
            self._announce([self._clean(e) for e in batch])

    def announce_all(self, events: Iterable[Event]) -> None:
        """Deliver events that are already in the store (the store's ``on_commit``). The
        store announces events as it wrote them, redacted with its own redactor; with another
        one they are cleaned here too."""
        batch = list(events)
        store = self._store
        if store is None or store.redactor is not self._redactor:
            batch = [self._clean(e) for e in batch]
        self._announce(batch)

    def _announce(self, batch: list[Event]) -> None:
        if not batch:
            return
        with self._guard:
            routes = [r for r in self._routes.values() if r.listeners]
            for route in routes:
                route.pending.extend(batch)
        running = self._bind_running_loop()
        for route in routes:
            self._hand_over(route, running)

    def _hand_over(self, route: _Route, running: asyncio.AbstractEventLoop | None) -> None:
        """Deliver ``route``'s pending events now when this thread runs its loop (or no loop
        can take them), else on its loop: one call for however many commits come meanwhile,
        so a loop busy drawing a screen takes the events of many commits at once."""
        loop = route.loop if route.loop is not None else self._loop
        if loop is not None and loop is not running and loop.is_running():
            with self._guard:
                if route.scheduled:
                    return
                route.scheduled = True
            try:
                loop.call_soon_threadsafe(self._deliver_pending, route)
                return
            except RuntimeError:  # closed between the check and the call
                with self._guard:
                    route.scheduled = False
        self._deliver_pending(route)

    def _deliver_pending(self, route: _Route) -> None:
        """Deliver every pending event of ``route``, oldest first. One delivery at a time: an
        event a listener causes is delivered after the current ones, not in their middle."""
        with self._guard:
            route.scheduled = False
            if route.delivering:
                return
            route.delivering = True
        batch: deque[Event] = deque()
        try:
            while True:
                with self._guard:
                    if not route.pending:
                        # Cleared in the same breath as the check: an event appended by
                        # another thread from now on finds nobody delivering and does it.
                        route.delivering = False
                        return
                    batch, route.pending = route.pending, deque()
                while batch:
                    event = batch[0]
                    for listener in list(route.listeners):
                        listener(event)
                    batch.popleft()
        except BaseException:
            with self._guard:
                if batch:  # the event that raised was delivered, to that listener at least
                    batch.popleft()
                route.pending.extendleft(reversed(batch))
                route.delivering = False
            raise
