"""What an agent's stream says about the provider's rate limit, as one normalised fact.

The claude CLI says it three ways: a ``rate_limit_event`` line (``rate_limit_info.status``
``allowed`` | ``allowed_warning`` | ``rejected``, ``resetsAt`` in seconds since the epoch),
``system/api_retry`` lines with ``error: "rate_limit"`` or ``error_status: 429`` before each
retry (``retry_delay_ms``: how long it waits, the server's ``retry-after`` when it sent one), and
a final ``is_error`` result with ``api_error_status: 429`` once its retries are used up. codex
and gemini name the HTTP status of a failed turn, which their parsers keep as
``api_error_status``: a 429 there is a rejection too, with no reset time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from shoemaker.agents.streamjson import StreamEvent, TranscriptSummary

RateStatus = Literal["allowed", "allowed_warning", "rejected"]

_RANK: dict[str, int] = {"allowed": 0, "allowed_warning": 1, "rejected": 2}

#: Past this, a reset time is in milliseconds, not seconds (year 5138 in seconds).
_MILLISECONDS = 1e11


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The rate limit a run met: its status, when it resets (seconds since the epoch), when
    the stream says, and the CLI's wait before its last rate-limited retry, when it says."""

    status: RateStatus
    resets_at: float | None = None
    retry_after_s: float | None = None
    source: str = ""
    """Where it was read: ``rate_limit_event``, ``api_retry``, ``result`` or ``status 429``."""

    def merged(self, later: RateLimit) -> RateLimit:
        """This fact with a later one of the same run: the worse status, the later reset
        time, the latest retry delay."""
        status = later.status if _RANK[later.status] >= _RANK[self.status] else self.status
        resets = [t for t in (self.resets_at, later.resets_at) if t is not None]
        return RateLimit(
            status,
            max(resets) if resets else None,
            later.retry_after_s if later.retry_after_s is not None else self.retry_after_s,
            later.source if status == later.status else self.source,
        )

    def reset_time(self, now: float, wait_sec: float) -> float:
        """When to try again: the reset time the stream named if it is still ahead, else the
        CLI's retry delay from ``now`` if it had one, else ``wait_sec`` from ``now``."""
        if self.resets_at is not None and self.resets_at > now:
            return self.resets_at
        if self.retry_after_s:
            return now + self.retry_after_s
        return now + wait_sec


def _number(value: Any) -> float | None:
    """A finite number as a float (a reset time of ``1e999`` would wait forever)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def claude_rate_limit(event: StreamEvent) -> RateLimit | None:
    """The fact one claude stream-json event states, or None when it states none (an
    ``allowed`` event states nothing worth acting on but its reset time, so it is kept)."""
    data = event.data
    if event.type == "rate_limit_event":
        info = data.get("rate_limit_info")
        if not isinstance(info, dict) or info.get("status") not in _RANK:
            return None
        resets = _number(info.get("resetsAt"))
        if resets is not None and resets > _MILLISECONDS:
            resets /= 1000
        return RateLimit(info["status"], resets, None, "rate_limit_event")
    if event.type == "system" and event.subtype == "api_retry":
        if data.get("error") != "rate_limit" and data.get("error_status") != 429:
            return None
        delay = _number(data.get("retry_delay_ms"))
        # A retry is the CLI still trying: the limit is met, but the run may yet succeed.
        return RateLimit("allowed", None, None if delay is None else delay / 1000, "api_retry")
    refused = data.get("is_error") is True and data.get("api_error_status") == 429
    if event.type == "result" and refused:
        return RateLimit("rejected", None, None, "result")
    return None


def rate_limit_of(summary: TranscriptSummary) -> RateLimit | None:
    """What a finished run says about the rate limit, for every kind: the facts its stream
    stated (claude), and a failed run whose API answered 429 is rejected."""
    fact = summary.rate_limit
    if rejected(fact):
        return fact
    if not summary.ok and summary.api_error_status == 429:
        refused = RateLimit("rejected", None, None, "status 429")
        fact = refused if fact is None else fact.merged(refused)
    return fact


def rejected(fact: RateLimit | None) -> bool:
    return fact is not None and fact.status == "rejected"


__all__ = ["RateLimit", "RateStatus", "claude_rate_limit", "rate_limit_of", "rejected"]
