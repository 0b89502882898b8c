"""A failing handler is a notification, never the end of the app that drives the agents.

Textual ends the app when a message handler or a timer callback raises, and the pump whose
handler raised stops reading its messages. The dashboard's own screens and widgets take
``Guarded`` first among their bases and start their timers with ``guarded_interval``: what
raises there is shown (``report_error``) and the pump goes on. Actions and workers are
guarded in ``tui/app.py`` (``ShoemakerApp.run_action``, ``on_worker_state_changed``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.message import Message
from textual.message_pump import MessagePump
from textual.timer import Timer

log = logging.getLogger(__name__)

#: The same failure again within this many seconds is logged, not shown again (a timer that
#: fails 30 times a second would bury every other notification).
REPEAT_QUIET_S = 10.0

_last_shown: dict[tuple[int, str], float] = {}

if TYPE_CHECKING:
    _Pump = MessagePump
else:
    _Pump = object


def report_error(app: App[Any], title: str, exc: BaseException) -> None:
    """An unexpected error, logged with its traceback and shown in one notification."""
    log.error(title, exc_info=exc)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    key, now = (id(app), f"{title}\n{text}"), time.monotonic()
    if now - _last_shown.get(key, float("-inf")) < REPEAT_QUIET_S:
        return
    _last_shown[key] = now
    app.notify(text, title=title, severity="error", timeout=20)


def _report(pump: MessagePump, title: str, exc: Exception) -> None:
    app = pump.app
    reporter = getattr(app, "report_error", None)
    if callable(reporter):
        reporter(title, exc)
    else:
        report_error(app, title, exc)


class Guarded(_Pump):
    """A screen or widget whose message handlers may fail without ending the app."""

    async def _on_message(self, message: Message) -> None:
        try:
            await super()._on_message(message)
        except Exception as exc:
            _report(self, f"{type(self).__name__}: {message.handler_name} failed", exc)


def guarded_interval(
    pump: MessagePump,
    interval: float,
    callback: Callable[[], object] | Callable[[], Awaitable[object]],
    name: str,
) -> Timer:
    """``pump.set_interval`` whose callback may fail without ending the app."""

    async def tick() -> None:
        try:
            result = callback()
            if isinstance(result, Awaitable):
                await result
        except Exception as exc:
            _report(pump, f"{name} failed", exc)

    return pump.set_interval(interval, tick, name=name)
