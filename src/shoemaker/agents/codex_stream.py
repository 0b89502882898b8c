"""``codex exec --json``: its thread/turn/item events parsed into the normalised summary, and a
one-line rendering per event.

The rules: every line is a JSON object dispatched on ``type``; unknown types and fields are
kept as raw events. ``thread.started`` names the session (the thread id). A run ended when a
``turn.completed`` (ok) or ``turn.failed`` (its ``error.message`` is the reason) arrived;
top-level ``error`` events and ``error`` items are notices (retries, a model without metadata)
and never fail a run. Usage is on ``turn.completed`` only and is the **thread's** total: a
resumed thread reports what earlier runs used too, so the builder subtracts the total the
thread had before (``prior``). ``input_tokens`` includes the cached part. The stream names no
model and no cost: the adapter knows the model, and the cost is priced from tokens.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from shoemaker.agents.protocol import (
    AgentSummary,
    Ended,
    Normalised,
    Notice,
    Raw,
    Said,
    Started,
    ToolCall,
    ToolResult,
    format_agent_summary,
)
from shoemaker.agents.streamjson import StreamEvent, parse_line
from shoemaker.model import Usage

_EXCERPT = 200
#: codex's exit code for a command line it refuses (clap), before it prints anything.
USAGE_ERROR = 2
#: "unexpected status 401 Unauthorized: …" in a turn.failed message.
_STATUS = re.compile(r"\bstatus:? (\d{3})\b")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _excerpt(text: Any, limit: int = _EXCERPT) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _message(data: dict[str, Any]) -> str:
    """The message of a ``turn.failed``'s error or of an ``error`` event."""
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "error")
    return str(data.get("message") or error or "error")


def tool_name(item: dict[str, Any]) -> str | None:
    """The tool an item is a use of (its type names it), or None for items that are not."""
    kind = item.get("type")
    if kind in ("command_execution", "file_change", "web_search", "todo_list"):
        return str(kind)
    if kind == "mcp_tool_call":
        return f"mcp:{item.get('server', '?')}/{item.get('tool', '?')}"
    if kind == "collab_tool_call":
        return f"collab:{item.get('tool', '?')}"
    return None


_TOOL_INPUT = {
    "command_execution": ("command",),
    "file_change": ("changes",),
    "mcp_tool_call": ("server", "tool", "arguments"),
    "collab_tool_call": ("tool", "prompt", "receiver_thread_ids"),
    "web_search": ("query", "action"),
    "todo_list": ("items",),
}


def _tool_output(item: dict[str, Any]) -> tuple[bool, str]:
    kind, status = item.get("type"), item.get("status")
    if kind == "command_execution":
        code = _int(item.get("exit_code"))
        ok = status not in ("failed", "declined") and code in (0, None)
        return ok, str(item.get("aggregated_output") or "")
    if kind == "mcp_tool_call":
        error = item.get("error")
        if error:
            return False, _message({"error": error})
        result = _dict(item.get("result"))
        content = result.get("content")
        texts = (
            [str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b]
            if isinstance(content, list)
            else []
        )
        return status != "failed", "\n".join(texts)
    return status not in ("failed", "declined"), ""


def normalise(event: StreamEvent) -> list[Normalised]:
    """What one codex event means. A tool item's ``item.started`` is the call; its
    ``item.completed`` repeats the call (an item may only complete) with its result."""
    data, kind = event.data, event.type
    if kind == "thread.started":
        return [Started(_str(data.get("thread_id")))]
    if kind == "turn.completed":
        return [Ended(True, "success")]
    if kind == "turn.failed":
        return [Ended(False, "turn_failed", _message(data))]
    if kind == "error":
        return [Notice(_message(data))]
    if kind == "turn.started":
        return []
    if kind not in ("item.started", "item.updated", "item.completed"):
        return [Raw(event.label)]
    item = _dict(data.get("item"))
    item_type = item.get("type")
    completed = kind == "item.completed"
    name = tool_name(item)
    if name is not None:
        item_id = str(item.get("id", ""))
        call = ToolCall(
            item_id, name, {k: item[k] for k in _TOOL_INPUT.get(str(item_type), ()) if k in item}
        )
        if kind == "item.started":
            return [call]
        if completed:
            return [call, ToolResult(item_id, *_tool_output(item))]
        return []
    if not completed:
        return []
    if item_type == "agent_message":
        return [Said(str(item.get("text", "")))]
    if item_type == "error":
        return [Notice(str(item.get("message", "error")))]
    if item_type == "reasoning":
        return []
    return [Raw(f"item {item_type}")]


class CodexSummaryBuilder:
    """Builds an :class:`AgentSummary` from codex's JSONL, line by line.

    ``model`` is the model the run was started with (the stream does not say); ``prior`` the
    thread's usage before this run (a resumed thread), subtracted from what it reports."""

    def __init__(
        self, model: str | None = None, prior: Usage | None = None, prior_reasoning: int = 0
    ) -> None:
        self._s = AgentSummary(model=model or None)
        self._prior = prior or Usage()
        self._prior_reasoning = prior_reasoning
        self._usage: dict[str, Any] | None = None
        self._failed: str | None = None
        self._items: set[str] = set()
        self._notices: list[str] = []

    def feed(self, line: str | bytes) -> StreamEvent | None:
        if not line or line.isspace():
            return None
        s = self._s
        s.lines += 1
        event = parse_line(line)
        if event is None:
            s.bad_lines += 1
            return None
        if event.type == "turn.completed" and isinstance(event.data.get("usage"), dict):
            self._usage = event.data["usage"]
        for meaning in normalise(event):
            self._note(meaning)
        return event

    def _note(self, meaning: Normalised) -> None:
        s = self._s
        if isinstance(meaning, Started):
            s.init_session_id = s.session_id = meaning.session_id
        elif isinstance(meaning, Ended):
            s.results += 1
            self._failed = None if meaning.ok else meaning.error
        elif isinstance(meaning, Notice):
            self._notices.append(meaning.text)
        elif isinstance(meaning, Said):
            s.result_text = meaning.text
        elif isinstance(meaning, ToolCall) and meaning.id not in self._items:
            self._items.add(meaning.id)  # an item's call is seen again when it completes
            s.tool_uses[meaning.name] = s.tool_uses.get(meaning.name, 0) + 1

    def summary(self, exit_code: int | None = None) -> AgentSummary:
        src = self._s
        s = AgentSummary(
            lines=src.lines,
            bad_lines=src.bad_lines,
            results=src.results,
            model=src.model,
            init_session_id=src.init_session_id,
            session_id=src.session_id,
            tool_uses=dict(src.tool_uses),
            result_text=src.result_text,
            exit_code=exit_code,
        )
        if self._usage is not None:
            apply_usage(s, self._usage, self._prior, self._prior_reasoning)
        if not src.results:
            if exit_code == USAGE_ERROR and not src.lines:
                s.exit_meaning = (
                    f"exit code {USAGE_ERROR}: codex refused its command line (see stderr); "
                    "check agent.args and agent.model"
                )
            if self._notices:
                s.errors = [self._notices[-1]]
            return s
        s.ended = "result"
        if self._failed is not None:
            s.subtype, s.is_error = "turn_failed", True
            s.errors = [self._failed]
            found = _STATUS.search(self._failed)
            s.api_error_status = int(found.group(1)) if found else None
        else:
            s.subtype, s.is_error = "success", False
        s.ok = s.is_error is False and exit_code in (None, 0)
        return s

    def thread_total(self) -> tuple[Usage, int]:
        """The thread's usage as last reported (cumulative over resumed runs), and its reasoning
        tokens: what a later ``exec resume`` of this thread passes as ``prior``."""
        return thread_usage(self._usage or {})


def thread_usage(raw: dict[str, Any]) -> tuple[Usage, int]:
    """codex's usage object (input including the cached part) as uncached input / output /
    cache write / cache read, and its reasoning tokens."""
    total_in = _int(raw.get("input_tokens")) or 0
    cached = _int(raw.get("cached_input_tokens")) or 0
    usage = Usage(
        max(total_in - cached, 0),
        _int(raw.get("output_tokens")) or 0,
        _int(raw.get("cache_write_input_tokens")) or 0,
        cached,
    )
    return usage, _int(raw.get("reasoning_output_tokens")) or 0


def apply_usage(s: AgentSummary, raw: dict[str, Any], prior: Usage, prior_reasoning: int) -> None:
    """Put the thread's reported usage less ``prior`` into ``s``: this run's tokens."""
    total, reasoning = thread_usage(raw)
    usage = Usage(
        max(total.input_tokens - prior.input_tokens, 0),
        max(total.output_tokens - prior.output_tokens, 0),
        max(total.cache_creation_input_tokens - prior.cache_creation_input_tokens, 0),
        max(total.cache_read_input_tokens - prior.cache_read_input_tokens, 0),
    )
    s.input_tokens = usage.input_tokens
    s.output_tokens = usage.output_tokens
    s.cache_creation_input_tokens = usage.cache_creation_input_tokens
    s.cache_read_input_tokens = usage.cache_read_input_tokens
    s.reasoning_output_tokens = max(reasoning - prior_reasoning, 0)
    # What the engine prices: the stream reports tokens, never dollars.
    s.message_usage = usage


def rollout_usage(config_home: Path, thread_id: str) -> dict[str, Any] | None:
    """The thread's last ``token_count`` total in the session file codex keeps in its home
    (``sessions/…/rollout-…-<thread id>.jsonl``): written after each model response, so it
    knows what a run stopped before its turn ended was billed. None when there is none."""
    last: dict[str, Any] | None = None
    for path in sorted((config_home / "sessions").glob(f"*/*/*/rollout-*-{thread_id}.jsonl")):
        with path.open("rb") as handle:
            for line in handle:
                if b'"token_count"' not in line:
                    continue
                event = parse_line(line)
                payload = _dict(event.data.get("payload")) if event else {}
                total = _dict(_dict(payload.get("info")).get("total_token_usage"))
                if payload.get("type") == "token_count" and total:
                    last = total
    return last


def summarize_codex_file(path: Path, prior: Usage | None = None) -> AgentSummary:
    """Summarise a ``codex exec --json`` transcript (a non-UTF-8 line is a bad line)."""
    builder = CodexSummaryBuilder(prior=prior)
    with path.open("rb") as handle:
        for line in handle:
            builder.feed(line)
    return builder.summary()


# -- condensed rendering ----------------------------------------------------------------------


def _relative(path: Any, cwd: str | None) -> str:
    text = str(path)
    if cwd and text.startswith(cwd.rstrip("/") + "/"):
        return text[len(cwd.rstrip("/")) + 1 :]
    return text


def _item_line(item: dict[str, Any], completed: bool, cwd: str | None) -> str | None:
    kind = item.get("type")
    status = item.get("status")
    if kind == "agent_message":
        text = str(item.get("text", ""))
        return _excerpt(text) if completed and text.strip() else None
    if kind == "reasoning":
        return "[thinking]" if completed else None
    if kind == "command_execution":
        if not completed:
            command = str(item.get("command", "")).strip().splitlines()
            return f"[shell: {_excerpt(command[0] if command else '', 120)}]"
        output = str(item.get("aggregated_output") or "")
        if cwd:
            output = output.replace(cwd.rstrip("/") + "/", "")
        code = _int(item.get("exit_code"))
        if status in ("failed", "declined") or code not in (0, None):
            return f"[ERROR: exit {code}: {_excerpt(output, 160)}]"
        first = output.strip().splitlines()[0] if output.strip() else ""
        return f"  ↳ {_excerpt(first, 100)}" if first else "  ↳ (no output)"
    if kind == "file_change":
        if not completed:
            return None
        changes = item.get("changes")
        listed = ", ".join(
            f"{c.get('kind', '?')} {_relative(c.get('path', '?'), cwd)}"
            for c in (changes if isinstance(changes, list) else [])
            if isinstance(c, dict)
        )
        failed = " (failed)" if status == "failed" else ""
        return f"[edit: {listed or '?'}{failed}]"
    if kind == "mcp_tool_call":
        name = f"{item.get('server', '?')}/{item.get('tool', '?')}"
        if not completed:
            return f"[mcp {name}]"
        error = item.get("error")
        if error:
            return f"[ERROR: mcp {name}: {_excerpt(_message({'error': error}), 160)}]"
        return f"  ↳ mcp {name} {status or 'done'}"
    if kind == "web_search":
        return f"[web_search: {_excerpt(item.get('query', ''), 120)}]" if not completed else None
    if kind == "todo_list":
        todos = item.get("items")
        return f"[todo: {len(todos) if isinstance(todos, list) else 0} items]"
    if kind == "error":
        return f"[warning: {_excerpt(item.get('message', ''), 160)}]" if completed else None
    if kind == "plan":
        return f"[plan: {_excerpt(item.get('text', ''), 120)}]" if completed else None
    return f"[item {kind}]" if completed else None


def condense_codex(event: StreamEvent, cwd: str | None = None) -> str | None:
    """One line for a person, or None for lines not worth showing. Never raises."""
    try:
        data = event.data
        kind = event.type
        if kind == "thread.started":
            return f"[thread: {data.get('thread_id', '?')}]"
        if kind in ("turn.started", "item.updated"):
            return None
        if kind in ("item.started", "item.completed"):
            return _item_line(_dict(data.get("item")), kind == "item.completed", cwd)
        if kind == "turn.completed":
            u = _dict(data.get("usage"))
            return (
                f"[result: success, {_int(u.get('input_tokens')) or 0:,} in "
                f"({_int(u.get('cached_input_tokens')) or 0:,} cached), "
                f"{_int(u.get('output_tokens')) or 0:,} out]"
            )
        if kind == "turn.failed":
            return f"[ERROR: turn failed: {_excerpt(_message(data), 160)}]"
        if kind == "error":
            return f"[notice: {_excerpt(_message(data), 160)}]"
        return f"[{event.label}]"
    except Exception:  # a shape no version of the CLI printed yet: show it, do not crash
        return f"[{event.label}]"


def format_codex_summary(s: AgentSummary) -> str:
    """A short plain-text account of a codex transcript for ``shoemaker transcript``."""
    tokens = (
        f"{s.input_tokens or 0:,} in (uncached), {s.output_tokens or 0:,} out "
        f"({s.reasoning_output_tokens or 0:,} reasoning), "
        f"{s.cache_read_input_tokens or 0:,} cache read, "
        f"{s.cache_creation_input_tokens or 0:,} cache written"
    )
    return format_agent_summary(s, tokens, "final turn line")
