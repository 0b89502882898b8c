"""What the mock APIs share: a queue of scripted replies and a record of what was asked.

A test scripts the model's replies as turns; each main-turn request takes the next one, and a
request beyond the script gets the director's reply (the demo's), else the mock's default.
Tests wait, bounded, until the requests so far show what they expect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class Script(Generic[T]):
    """The script and what was asked; ``url`` is the base URL the CLI is pointed at."""

    turns: list[T] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Bodies of the main-turn requests."""
    url: str = ""
    director: Callable[[dict[str, Any]], T] | None = None
    """Replies to requests beyond the script (else ``default_turn``)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    asked: threading.Condition = field(default_factory=threading.Condition)

    def default_turn(self) -> T:
        """The reply to a request beyond the script when no director is set."""
        raise NotImplementedError

    def script(self, *turns: T) -> None:
        with self.lock:
            self.turns.extend(turns)

    def next_turn(self, body: dict[str, Any]) -> T:
        with self.asked:
            with self.lock:
                self.requests.append(body)
                turn = self.turns.pop(0) if self.turns else None
            self.asked.notify_all()
        if turn is not None:
            return turn
        return self.director(body) if self.director is not None else self.default_turn()

    def wait_for(self, enough: Callable[[list[dict[str, Any]]], bool], limit: float = 120) -> None:
        """Block until the main-turn requests so far satisfy ``enough`` (bounded)."""
        with self.asked:
            if not self.asked.wait_for(lambda: enough(self.requests), limit):
                raise AssertionError(f"the API was not asked as expected within {limit:g} s")
