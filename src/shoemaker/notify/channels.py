"""Sending notifications: one :class:`Channel` per ``notify:`` entry, each with a thread of
its own, and the :class:`Notifier` that listens to the event stream and hands them messages.

Nothing here runs on the event loop but the listener, which builds a message and queues it:
the sending (apprise, which blocks on the network) happens on the channel's thread, with the
configured timeout, so a slow or unreachable channel neither slows a run nor holds back
another channel. apprise (a tenth of a second to import) is imported at the first send.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from shoemaker.events import Event, Notice
from shoemaker.notify.messages import Message, message_for
from shoemaker.secrets import MIN_LENGTH, Redactor

if TYPE_CHECKING:
    from shoemaker.config import NotifyChannel
    from shoemaker.engine.project import Project


@dataclass(frozen=True, slots=True)
class Outcome:
    """How sending one message to one channel went; ``detail`` says why it failed."""

    channel: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        """``channel 1 (json): sent``, or the failure's words."""
        return f"{self.channel}: " + ("sent" if self.ok else self.detail or "not sent")


def _url_secrets(url: str, label: str) -> dict[str, str]:
    """The parts of an apprise URL that may be credentials (user, password, tokens in the
    host or path, query values), and the URL itself: never shown."""
    found = {url: label}
    try:
        parts = urlsplit(url)
        pieces = [parts.username or "", parts.password or "", parts.hostname or ""]
    except ValueError:
        pieces = []
    pieces += re.split(r"[/?&=#@:]", url.partition("://")[2])
    for piece in pieces:
        piece = unquote(piece)
        if len(piece) >= MIN_LENGTH:
            found.setdefault(piece, label)
    return found


class Channel:
    """One configured destination: its apprise URL, the events it wants, and the thread that
    sends to it (started when a message is queued, gone when the queue is empty)."""

    def __init__(self, number: int, config: NotifyChannel, timeout: float) -> None:
        scheme = config.url.partition("://")[0].lower()
        #: How the channel is named on screen and in logs: never its URL, which may hold a token.
        self.name = f"channel {number} ({scheme})"
        self.url = config.url
        self.events = frozenset(config.events)
        self.timeout = timeout
        self.redactor = Redactor(_url_secrets(config.url, f"notify.{number - 1}.url"))
        self._apprise: Any = None
        self._queue: deque[tuple[Message, Callable[[Message, Outcome], None]]] = deque()
        self._lock = threading.Lock()
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()

    def wants(self, event: str) -> bool:
        return event in self.events

    def post(self, message: Message, done: Callable[[Message, Outcome], None]) -> None:
        """Queue ``message``; ``done`` is called on the channel's thread with the outcome."""
        with self._lock:
            self._queue.append((message, done))
            self._idle.clear()
            if self._busy:
                return
            self._busy = True
        threading.Thread(target=self._drain, name=f"notify {self.name}", daemon=True).start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._busy = False
                    self._idle.set()
                    return
                message, done = self._queue.popleft()
            outcome = self.send(message)
            # A bookkeeping failure must not end the thread with messages still queued.
            with contextlib.suppress(Exception):
                done(message, outcome)

    def wait(self, timeout: float) -> bool:
        """Wait until every queued message was sent (or failed); False when time ran out."""
        return self._idle.wait(timeout)

    def send(self, message: Message) -> Outcome:
        """Send ``message`` now, on this thread, within the timeout."""
        try:
            return self._send(message)
        except Exception as exc:  # any failure of a channel is its outcome, never the run's
            return Outcome(self.name, False, self.redactor.text(f"{type(exc).__name__}: {exc}"))

    def _send(self, message: Message) -> Outcome:
        import apprise

        if self._apprise is None:
            # Sent on this thread, not handed to apprise's own thread pools: those refuse work
            # once the interpreter is exiting, when a run's last message may still be queued.
            # The socket timeouts below bound each send instead.
            sender = apprise.Apprise(
                asset=apprise.AppriseAsset(async_mode=False, service_timeout=0)
            )
            if not sender.add(self.url):
                return Outcome(self.name, False, "apprise does not understand this URL")
            for plugin in sender:
                # apprise's own socket timeouts: a channel that never answers fails in time.
                plugin.socket_connect_timeout = self.timeout
                plugin.socket_read_timeout = self.timeout
            self._apprise = sender
        result = self._apprise.notify(
            body=message.body, title=message.title, notify_type=message.urgency
        )
        if result:
            return Outcome(self.name, True)
        said = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
        detail = said[0] if said else "not delivered"
        return Outcome(self.name, False, self.redactor.text(detail))


@dataclass
class NotifyStatus:
    """What was sent so far, for the dashboard: deliveries that worked and failed, and the
    last message with each channel's outcome."""

    sent: int = 0
    failed: int = 0
    last_title: str = ""
    last: list[Outcome] = field(default_factory=list)

    def line(self) -> str:
        """``2 sent, 1 failed · last: task #1 failed → channel 1 (json) sent``; empty before
        the first message."""
        if not self.last_title:
            return ""
        count = f"{self.sent} sent" + (f", {self.failed} failed" if self.failed else "")
        outcomes = ", ".join(f"{o.channel} {'sent' if o.ok else 'failed'}" for o in self.last)
        title = self.last_title.removeprefix("shoemaker: ")
        return f"{count} · last: {title} → {outcomes or 'sending'}"


#: Every notifier alive: at exit each gets a last moment to send what it has queued.
_LIVE: weakref.WeakSet[Notifier] = weakref.WeakSet()


def _flush_at_exit() -> None:
    for notifier in list(_LIVE):
        notifier.flush()


atexit.register(_flush_at_exit)


class Notifier:
    """Listens to the event stream and sends the notifications its events make to the
    channels that want them. Call it with an event (it is a bus listener); it never blocks.

    A channel's first failure is reported once, as a warning notice on the event stream
    (its later failures only count in :attr:`status`)."""

    def __init__(
        self,
        channels: list[Channel],
        repository: str,
        redactor: Redactor,
        log: Callable[[Event], None] | None = None,
    ) -> None:
        self.channels = channels
        self.repository = repository
        self.redactor = redactor
        self.timeout = max((c.timeout for c in channels), default=0.0)
        self._log = log
        self._lock = threading.Lock()
        self._status = NotifyStatus()
        self._reported: set[str] = set()
        self._generation: str | None = None
        _LIVE.add(self)

    @classmethod
    def for_project(cls, project: Project) -> Notifier:
        cfg = project.config
        channels = [
            Channel(n, entry, cfg.notify_timeout_sec) for n, entry in enumerate(cfg.notify, 1)
        ]
        return cls(channels, project.root.name, project.redactor, project.bus.emit)

    @property
    def status(self) -> NotifyStatus:
        with self._lock:
            s = self._status
            return NotifyStatus(s.sent, s.failed, s.last_title, list(s.last))

    def __call__(self, event: Event) -> None:
        message = message_for(event, self.repository)
        if message is not None:
            self._generation = event.generation or self._generation
            self.post(message)

    def post(self, message: Message) -> None:
        """Queue ``message`` (its secrets replaced) for every channel that wants its event."""
        clean = Message(
            message.event,
            self.redactor.text(message.title),
            self.redactor.text(message.body),
            message.urgency,
        )
        wanting = [c for c in self.channels if c.wants(clean.event)]
        if not wanting:
            return
        with self._lock:
            self._status.last_title = clean.title
            self._status.last = []
        for channel in wanting:
            channel.post(clean, self._record)

    def _record(self, message: Message, outcome: Outcome) -> None:
        with self._lock:
            if outcome.ok:
                self._status.sent += 1
            else:
                self._status.failed += 1
            if message.title == self._status.last_title:
                self._status.last.append(outcome)
            first_failure = not outcome.ok and outcome.channel not in self._reported
            if first_failure:
                self._reported.add(outcome.channel)
        if first_failure and self._log is not None:
            notice = Notice(
                generation=self._generation,
                level="warning",
                message=f"notifications to {outcome.channel} fail: {outcome.detail} "
                "(reported once; `shoemaker notify test` tries it again)",
            )
            # The store may be closed already when this runs as the process ends.
            with contextlib.suppress(Exception):
                self._log(notice)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message was sent or failed, at most ``timeout`` seconds
        (default: the channels' send timeout); False when some were still on their way."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return all(c.wait(max(0.0, deadline - time.monotonic())) for c in self.channels)
