"""The normalised shape every agent CLI's stream is turned into.

Each CLI prints its own events; an adapter (``agents/adapters.py``) parses them with a
:class:`LineBuilder` into a :class:`~shoemaker.agents.streamjson.TranscriptSummary`, the shape
the engine, the store, the dashboard and the budgets know: session id (late or absent), the
last assistant text, tool uses by name, a final status with a subtype and an error text, and
usage as uncached input / cache read / cache write / output tokens. :class:`AgentSummary` adds
what claude's result line has no field for: reasoning tokens and where the cost comes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from shoemaker.agents.ratelimit import RateLimit
from shoemaker.agents.streamjson import StreamEvent, TranscriptSummary
from shoemaker.config import AgentConfig

CostSource = Literal["reported", "priced_from_tokens", "unknown"]


class LineBuilder(Protocol):
    """Turns a run's stdout, line by line, into its summary."""

    def feed(self, line: str | bytes) -> StreamEvent | None:
        """Account for one line; its event, or None when it is not a JSON object."""
        ...

    def summary(self, exit_code: int | None = None) -> TranscriptSummary:
        """The summary so far; with the exit code of a live run, how it ended."""
        ...


@dataclass
class AgentSummary(TranscriptSummary):
    """A :class:`TranscriptSummary` of a CLI other than claude: the same figures (None where
    the CLI has none), plus reasoning tokens (a part of the output tokens) and the source of
    the cost."""

    reasoning_output_tokens: int | None = None
    cost_source: CostSource = "unknown"
    exit_meaning: str | None = None
    """What the CLI's exit code says when it printed no final line (its codes are its own:
    codex's 2 is a usage error); the runner gives it as the run's reason."""

    def as_json(self) -> dict[str, Any]:
        """claude's keys, with this CLI's ``reasoning_output_tokens`` and ``cost_source``."""
        out = super().as_json()
        out["reasoning_output_tokens"] = self.reasoning_output_tokens
        out["cost_source"] = self.cost_source
        return out


# -- normalised events ------------------------------------------------------------------------
# What one line of any CLI's stream means, whatever its shape: a parser turns each event into
# zero or more of these (``normalise``). A tool call and its result are matched by ``id``; a
# CLI that prints text in deltas is joined by its builder before a whole ``Said``.


@dataclass(frozen=True, slots=True)
class Started:
    """The session began (its id may come late, or never)."""

    session_id: str | None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Said:
    """Assistant text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The agent called a tool (for codex, the item type names it)."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call gave back."""

    id: str
    ok: bool
    output: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A non-fatal message: a retry, a warning. Never fails a run."""

    text: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The CLI's own final status line (a run killed before it has none)."""

    ok: bool
    subtype: str | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Raw:
    """An event with no meaning here yet (an unknown type): kept, shown by its label."""

    label: str


#: The provider's rate limit, as the stream states it (``agents/ratelimit.py``).
Normalised = Started | Said | ToolCall | ToolResult | Notice | Ended | RateLimit | Raw


# -- adapters ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one run of a CLI."""

    argv: list[str]
    stdin: str
    """Written to the CLI's stdin, which is then closed (empty: the prompt is in ``argv``)."""
    env: dict[str, str] = field(default_factory=dict)
    """Added to the agent's environment, and passed into its sandbox."""
    cleanup: tuple[Path, ...] = ()
    """Directories the adapter made for this run, removed when it ends."""


class AgentAdapter(Protocol):
    """What shoemaker needs to know of one agent CLI."""

    kind: str
    credentials: tuple[str, ...]
    """Environment variables that carry its credentials, any one of which will do."""
    package: str
    """Where the CLI comes from, for a fix that says how to install it."""
    usage_markers: tuple[bytes, ...]
    """Byte strings one of which is in every line that names the model or reports usage:
    the live spend parses only those lines, skipping tool output unread."""

    def launch(
        self,
        agent: AgentConfig,
        env: Mapping[str, str],
        home: Path | None,
        prompt: str,
        scratch: Path | None,
        login: Mapping[str, str] | None = None,
    ) -> Launch:
        """argv and environment of a run; ``home`` is the run's fresh HOME in a sandbox, else
        directories the run needs go in ``scratch`` (see ``adapters.scratch_dir``). Neither:
        nothing is made here, the run's own directories are made where it runs (a cluster's
        worker launches it again there). ``login``: the files of :meth:`login_files` as they
        travelled (None: read them here)."""
        ...

    def login_files(self, env: Mapping[str, str]) -> dict[str, str]:
        """The person's login files a run's config home gets a copy of, by name (codex's
        ``auth.json``): what a cluster's worker receives, sealed like the run's secrets."""
        ...

    def builder(self, agent: AgentConfig) -> LineBuilder:
        """A parser for one run's stdout."""
        ...

    def condense(self, event: StreamEvent, cwd: str | None) -> str | None:
        """One line for a person, or None for events not worth showing."""
        ...

    def normalise(self, event: StreamEvent) -> list[Normalised]:
        """What one event means, in the shape every kind shares."""
        ...

    def summarize_file(self, path: Path) -> TranscriptSummary:
        """The summary of a transcript file."""
        ...

    def settle(self, launch: Launch, summary: TranscriptSummary) -> None:
        """After the run, before ``launch.cleanup``: complete ``summary`` from what the CLI
        left beside its stream (codex: a stopped run's tokens, from its session file)."""
        ...

    def format_summary(self, summary: TranscriptSummary) -> str:
        """A short plain-text account of a summary."""
        ...


class LineBatch(list[bytes]):
    """The whole, non-blank lines of one read of stdout, in order, as read (``\\r``
    stripped). Each was parsed into the run's summary and let go at once: what shows a line
    parses it again (a parsed tree kept alive until the read's event is delivered costs the
    per-line path more than parsing again the few lines shown). ``start`` and ``end`` are the
    transcript offsets the lines occupy, in the bytes as written there (redacted when
    secrets exist)."""

    __slots__ = ("end", "start")

    def __init__(self, lines: Iterable[bytes] = (), start: int = 0, end: int = 0) -> None:
        super().__init__(lines)
        self.start = start
        self.end = end


def format_agent_summary(s: AgentSummary, tokens: str, final: str, model: bool = False) -> str:
    """A short plain-text account of a transcript for ``shoemaker transcript``: ``tokens``
    as the kind counts them, ``final`` what its closing line is called, and the model when
    the stream names one."""
    status = "ok" if s.ok else f"NOT ok — {s.error_text}"
    tools = ", ".join(f"{k}×{v}" for k, v in sorted(s.tool_uses.items())) or "none"
    lines = [
        f"ended:    {s.ended} ({s.results} {final}{'s' if s.results != 1 else ''})",
        f"status:   {status}",
        f"subtype:  {s.subtype or '—'}   is_error: {s.is_error}",
        f"cost:     {'—' if s.cost_usd is None else f'${s.cost_usd:.6f}'} ({s.cost_source})",
        f"tokens:   {tokens}" if s.input_tokens is not None else "tokens:   —",
        *([f"model:    {s.model or '—'}"] if model else []),
        f"session:  {s.session_id or '—'}",
        f"tools:    {tools}",
        f"lines:    {s.lines} ({s.bad_lines} not JSON)",
    ]
    return "\n".join(lines)
