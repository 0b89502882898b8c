"""The one event that comes at the agent's pace: :class:`AgentOutput`, one per read of an
agent's stdout, naming its lines in the transcript by byte range and condensed only where
and when they are shown."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import msgspec
from pydantic import PrivateAttr

from shoemaker.events.base import _Event

#: One line of agent output: the stream-json line's ``type`` or ``type/subtype`` (e.g.
#: ``assistant``, ``system/init``, ``invalid`` for a line that is not JSON) and its condensed
#: one-line rendering (``[Read: path]``, a text excerpt, ``[ERROR: …]``).
OutputLine = tuple[str, str]

#: Where a batch's condensed lines come from, made when asked: all of them (``None``) or only
#: the last ``most`` that show something. Secrets are out of what it returns.
OutputSource = Callable[[int | None], list[OutputLine]]


class AgentOutput(_Event):
    """The lines a running agent printed in one read of its stdout, by reference: the
    transcript's byte range ``[start, end)`` that holds them (the bytes as read, redacted
    when secrets exist) and how many lines that is (``read``). Nothing is condensed when the
    event is made: :meth:`shown` condenses the lines when they are shown, from the lines
    the engine keeps with the event in its own process (parsed again), or from the transcript for an
    event read back from the store (``engine/transcript_ranges.py`` gives it its source).
    Lines that show nothing (partial-message ``stream_event`` lines, an allowed rate limit)
    are left out of what it returns."""

    kind: Literal["agent_output"] = "agent_output"
    run_id: int
    task_id: int | None
    start: int = 0
    """Transcript offset of the batch's first byte."""
    end: int = 0
    """Transcript offset just past the batch's last line."""
    read: int = 0
    """Stream-json lines of the transcript this batch covers, shown or not."""

    _source: OutputSource | None = PrivateAttr(default=None)
    _lines: list[OutputLine] | None = PrivateAttr(default=None)

    @classmethod
    def of(
        cls,
        generation: str | None,
        run_id: int,
        task_id: int | None,
        span: tuple[int, int],
        read: int,
        source: OutputSource | None = None,
    ) -> AgentOutput:
        """A batch built by the engine from values it typed itself: not validated again (this
        is the per-read hot path; :func:`parse_event` validates what comes back from JSON)."""
        event = cls.model_construct(
            ts=time.time(),
            generation=generation,
            run_id=run_id,
            task_id=task_id,
            start=span[0],
            end=span[1],
            read=read,
        )
        event._source = source
        return event

    def with_source(self, source: OutputSource) -> AgentOutput:
        """This event, its lines to come from ``source`` (a reader of the store sets it)."""
        self._source = source
        self._lines = None
        return self

    @property
    def has_source(self) -> bool:
        return self._source is not None

    def shown(self, most: int | None = None) -> list[OutputLine]:
        """The batch's condensed lines in order, or only its last ``most``; condensed on the
        first call (a later call for fewer takes them from the first), none without a
        source."""
        lines = self._lines
        if lines is None:
            if self._source is None:
                return []
            if most is not None:
                return self._source(most)
            lines = self._lines = self._source(None)
        return lines if most is None or most >= len(lines) else lines[len(lines) - most :]

    @property
    def lines(self) -> list[OutputLine]:
        """Every condensed line of the batch, in order."""
        return self.shown()

    @property
    def texts(self) -> list[str]:
        """The condensed texts alone, in order."""
        return [text for _, text in self.shown()]

    def _serialise(self) -> bytes:
        return msgspec.json.encode(
            {
                "ts": self.ts,
                "generation": self.generation,
                "kind": self.kind,
                "run_id": self.run_id,
                "task_id": self.task_id,
                "start": self.start,
                "end": self.end,
                "read": self.read,
            }
        )

    def ndjson_bytes(self) -> bytes:
        """The event's JSON with its condensed lines added (``"lines": [[type, text], …]``):
        what ``--events ndjson`` prints, made only there."""
        lines = self.shown()
        try:
            encoded = msgspec.json.encode(lines)
        except UnicodeEncodeError:
            # A lone surrogate (a JSON "\ud800" escape the agent printed) cannot be UTF-8.
            encoded = msgspec.json.encode([(t, _utf8(x)) for t, x in lines])
        return self.json_bytes()[:-1] + b',"lines":' + encoded + b"}"


def _utf8(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")
