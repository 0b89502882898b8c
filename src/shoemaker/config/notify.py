"""The ``notify:`` settings: where notifications go and which events each channel wants."""

from __future__ import annotations

import difflib
import re

from pydantic import Field, field_validator

from shoemaker.config.strict import Strict

#: The events a notification channel may ask for (``notify[].events``), each with what it
#: means; a fixed list, the README's Notifications section says the same.
NOTIFY_EVENTS: dict[str, str] = {
    "task_failed": "a task failed (its retries used up, or a failure it cannot retry)",
    "task_blocked": "a task is blocked: a dependency failed, or its agent asked for a person",
    "needs_review": "a task touched a review glob and waits for a person's approval",
    "conflict_parked": "a task's merge conflicted; it is parked until a person decides",
    "budget_crossed": "a spending limit was reached and the generation pauses",
    "rate_limited": "the agent provider's rate limit paused or slowed the generation",
    "generation_finished": "a run ended: its cycles are done or no task is left to start",
    "generation_paused": "the generation paused (asked to, by a budget, or interrupted)",
    "generation_stopped": "the generation was stopped: merged into its base branch",
    "run_crashed": "an earlier run died; the next run recovered what it left",
    "batch_finished": "a scheduled batch finished",
}


class NotifyChannel(Strict):
    """One place notifications go, and which events it wants."""

    url: str
    """An apprise URL: ntfy://host/topic, slack://…, json://host/path, mailto://…, or a
    desktop entry (dbus://, macosx://, windows://) where a desktop exists."""
    events: list[str] = Field(default_factory=lambda: list(NOTIFY_EVENTS))
    """The events sent here (default: all): task_failed, task_blocked, needs_review,
    conflict_parked, budget_crossed, rate_limited, generation_finished, generation_paused,
    generation_stopped, run_crashed, batch_finished."""

    @field_validator("url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        scheme, sep, rest = value.strip().partition("://")
        if not sep or not rest or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
            raise ValueError("must be an apprise URL such as ntfy://ntfy.sh/my-topic")
        return value.strip()

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in NOTIFY_EVENTS]
        if unknown:
            close = difflib.get_close_matches(unknown[0], NOTIFY_EVENTS, n=1)
            hint = f"did you mean {close[0]}?" if close else "README: Notifications"
            raise ValueError(f"unknown event {unknown[0]!r} ({hint})")
        if not value:
            raise ValueError("names no event; leave it out to send every event")
        return value
