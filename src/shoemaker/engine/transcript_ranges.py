"""Agent output read back from the store: its lines condensed from the run's transcript.

An :class:`~shoemaker.events.AgentOutput` row names a byte range of its run's transcript
instead of holding condensed text. A reader of the event log (attach mode) gives each such
event a source that reads that range when its lines are shown: from the plain file while the
run lives, from the store's compressed copy once it has ended. Those bytes are the transcript
as written, redacted when secrets exist, so nothing condensed from them holds a secret.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from shoemaker.agents.adapters import Condenser, condenser_for
from shoemaker.agents.streamjson import split_lines
from shoemaker.events import AgentOutput, OutputLine
from shoemaker.store import Store, StoreError


class TranscriptRanges:
    """Reads byte ranges of runs' transcripts and condenses them, for events read back from
    ``store``. Keeps the last ended run's transcript decompressed, as a follower reads one
    run's batches one after another."""

    def __init__(self, store: Store, runs_dir: Path) -> None:
        self.store = store
        self.runs_dir = runs_dir
        self._cwd: dict[int, str | None] = {}
        self._condense: dict[int, Condenser] = {}
        self._ended: tuple[int, bytes] | None = None

    def attach(self, event: AgentOutput) -> AgentOutput:
        """``event``, its lines to be condensed from its transcript range when shown."""
        if event.has_source:
            return event

        def shown(most: int | None) -> list[OutputLine]:
            data = self.read(event.run_id, event.start, event.end)
            cwd = self.cwd(event.run_id)
            return self._condense[event.run_id](split_lines(data), cwd, most)

        return event.with_source(shown)

    def cwd(self, run_id: int) -> str | None:
        """The run's working directory: paths in its tool uses are shown relative to it."""
        if run_id not in self._cwd:
            try:
                run = self.store.get_run(run_id)
            except StoreError:
                self._cwd[run_id], self._condense[run_id] = None, condenser_for("claude")
            else:
                self._cwd[run_id], self._condense[run_id] = run.cwd, condenser_for(run.agent_kind)
        return self._cwd[run_id]

    def read(self, run_id: int, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the run's transcript (empty when it has none)."""
        if end <= start:
            return b""
        with contextlib.suppress(FileNotFoundError):
            with (self.runs_dir / f"{run_id}.jsonl").open("rb") as f:
                f.seek(start)
                data = f.read(end - start)
            if len(data) == end - start:
                return data
        # The run ended: its transcript moved into the store (before the file went).
        if self._ended is None or self._ended[0] != run_id:
            try:
                data = self.store.transcript(run_id)
            except StoreError:
                return b""
            if not data:
                return b""
            self._ended = (run_id, data)
        return self._ended[1][start:end]
