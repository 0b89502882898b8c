"""The runner protocol: one adapter per agent CLI (``agent.kind``), and claude's.

An adapter (:class:`~shoemaker.agents.protocol.AgentAdapter`) says how to launch its CLI —
argv, the environment it adds (a per-run config home it writes), what goes on stdin (the
prompt, or nothing: stdin is closed either way) — and how to read what it prints: a
:class:`~shoemaker.agents.protocol.LineBuilder` that turns the stream into the normalised
summary, what each event means, a one-line rendering per event, and a transcript summary. How a
run ended is then concluded the same way for every kind (``agents/runner.py``): from that
summary (its final status, or none), the exit code and the signal that stopped it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shoemaker.agents.claude import agent_argv
from shoemaker.agents.codex import CodexAdapter
from shoemaker.agents.gemini import GeminiAdapter
from shoemaker.agents.protocol import (
    AgentAdapter,
    Ended,
    Launch,
    LineBuilder,
    Normalised,
    Raw,
    Said,
    Started,
    ToolCall,
    ToolResult,
)
from shoemaker.agents.ratelimit import claude_rate_limit
from shoemaker.agents.streamjson import (
    INVALID_EXCERPT,
    StreamEvent,
    SummaryBuilder,
    TranscriptSummary,
    condense,
    condense_raw,
    format_summary,
    summarize_file,
)
from shoemaker.config import AgentConfig


class ClaudeAdapter:
    """Claude Code's ``-p --output-format stream-json`` (and the rehearsal agent, which speaks
    it): the reference the other kinds are normalised to."""

    kind = "claude"
    credentials: tuple[str, ...] = (
        "ANTHROPIC_API_KEY",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_AUTH_TOKEN",
    )
    package = "npm install -g @anthropic-ai/claude-code"
    usage_markers: tuple[bytes, ...] = (b'"usage"', b'"init"')

    def launch(
        self,
        agent: AgentConfig,
        env: Mapping[str, str],
        home: Path | None,
        prompt: str,
        scratch: Path | None,
        login: Mapping[str, str] | None = None,
    ) -> Launch:
        return Launch(agent_argv(agent), prompt)

    def login_files(self, env: Mapping[str, str]) -> dict[str, str]:
        return {}  # its login file is mounted in a sandbox, each machine's own

    def builder(self, agent: AgentConfig) -> LineBuilder:
        return SummaryBuilder()

    def condense(self, event: StreamEvent, cwd: str | None) -> str | None:
        return condense(event, cwd)

    def normalise(self, event: StreamEvent) -> list[Normalised]:
        return claude_normalise(event)

    def summarize_file(self, path: Path) -> TranscriptSummary:
        return summarize_file(path)

    def settle(self, launch: Launch, summary: TranscriptSummary) -> None:
        pass  # the stream says it all: the messages' usage prices a run without a result

    def format_summary(self, summary: TranscriptSummary) -> str:
        return format_summary(summary)


def _blocks(event: StreamEvent) -> list[dict[str, Any]]:
    message = event.data.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


def claude_normalise(event: StreamEvent) -> list[Normalised]:
    """What one stream-json event means (the reference shape the other kinds follow)."""
    d = event.data
    if event.type == "system" and event.subtype == "init":
        session, model = d.get("session_id"), d.get("model")
        return [
            Started(
                session if isinstance(session, str) else None,
                model if isinstance(model, str) else None,
            )
        ]
    limit = claude_rate_limit(event)
    if event.type == "result":
        failed = d.get("is_error") is not False
        errors = d.get("errors")
        why = (
            "; ".join(map(str, errors)) if isinstance(errors, list) and errors else d.get("result")
        )
        ended = Ended(not failed, event.subtype, str(why or "") if failed else "")
        return [limit, ended] if limit is not None else [ended]
    if limit is not None:
        return [limit]
    out: list[Normalised] = []
    if event.type == "assistant":
        for block in _blocks(event):
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                out.append(Said(str(block["text"])))
            elif block.get("type") == "tool_use":
                args = block.get("input")
                out.append(
                    ToolCall(
                        str(block.get("id", "")),
                        str(block.get("name", "?")),
                        args if isinstance(args, dict) else {},
                    )
                )
        return out
    if event.type == "user":
        for block in _blocks(event):
            if block.get("type") == "tool_result":
                out.append(
                    ToolResult(
                        str(block.get("tool_use_id", "")),
                        block.get("is_error") is not True,
                        _result_text(block.get("content")),
                    )
                )
        return out
    if event.type in ("system", "stream_event", "rate_limit_event"):
        return []
    return [Raw(event.label)]


def adapter_for(kind: str) -> AgentAdapter:
    """The adapter of ``agent.kind``."""
    adapters: dict[str, AgentAdapter] = {
        "claude": ClaudeAdapter(),
        "codex": CodexAdapter(),
        "gemini": GeminiAdapter(),
    }
    try:
        return adapters[kind]
    except KeyError:
        raise ValueError(f"unknown agent kind {kind!r}: use one of {', '.join(adapters)}") from None


#: The condensed ``(label, text)`` lines of raw stream lines (whole, non-blank), shown for
#: a run's working directory, or only the last ``most`` of them.
Condenser = Callable[[Sequence[bytes], str | None, int | None], list[tuple[str, str]]]

#: How much of a reply printed in chunks (gemini's deltas) its one line shows.
REPLY_CHARS = 200


def condenser_for(kind: str) -> Condenser:
    """How the lines of a ``kind`` run are condensed when shown. Claude's are parsed one at a
    time, only the last ``most`` when asked; another kind's lines are parsed by its own
    parser, and a reply printed in chunks shows as one line."""
    if kind == "claude":
        return condense_raw
    adapter = adapter_for(kind)
    agent = AgentConfig(kind=kind)  # type: ignore[arg-type]  # checked by adapter_for

    def condense_read(
        lines: Sequence[bytes], cwd: str | None = None, most: int | None = None
    ) -> list[tuple[str, str]]:
        builder = adapter.builder(agent)
        out: list[tuple[str, str]] = []
        chunks: list[str] = []

        def whole_reply() -> None:
            if chunks:
                out.append(("message", " ".join("".join(chunks).split())[:REPLY_CHARS]))
                chunks.clear()

        for raw in lines:
            event = builder.feed(raw)
            if event is None:
                whole_reply()
                excerpt = raw[:INVALID_EXCERPT].decode("utf-8", "replace")
                out.append(("invalid", f"[not JSON: {excerpt}]"))
                continue
            text = adapter.condense(event, cwd)
            if text is None:
                continue
            if event.data.get("delta") is True:
                chunks.append(text)
                continue
            whole_reply()
            out.append((event.label, text))
        whole_reply()
        if most is None:
            return out
        return out[len(out) - most :] if most > 0 else []

    return condense_read
