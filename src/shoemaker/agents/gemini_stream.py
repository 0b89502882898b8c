"""``gemini -o stream-json``: its events parsed into the normalised summary, and a one-line
rendering per event.

The rules: every line is a JSON object dispatched on ``type``; unknown types and fields are
kept as raw events. ``init`` names the session and the model (``auto`` when the CLI routes
each turn itself). Assistant text arrives in ``message`` deltas, joined into one text per reply
(a tool call in between starts a new one). ``tool_use`` and ``tool_result`` are matched by
``tool_id``. ``error`` events are notices (warnings, retries) and never fail a run. The run
ended when a ``result`` line arrived: ``status`` says how, ``error.message`` why not, and
``stats`` carries its usage — per invocation (a resumed session reports only its own run),
side calls (the router) included, ``input_tokens`` including the ``cached`` part. No cost: it
is priced from the tokens. The exit code is the HTTP status of an API error modulo 256, or one
of the CLI's own (41 authentication … 55 untrusted folder, 130 cancelled); a signal to its
process group makes it exit 0 without a result line, which is an interrupted run.
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

#: The CLI's own exit codes (``FatalError`` subclasses), and what to do about each.
OWN_EXIT_CODES: dict[int, str] = {
    41: "gemini could not authenticate: set GEMINI_API_KEY (its settings select an API key)",
    42: "gemini refused its input: check agent.args",
    44: "gemini's own sandbox failed: do not pass --sandbox in agent.args",
    52: "gemini's configuration is invalid: check agent.args and agent.model",
    53: "gemini reached its maximum session turns",
    54: "a gemini tool failed fatally (see stderr)",
    55: "gemini does not trust the working directory: keep --skip-trust in agent.args",
    130: "gemini was cancelled",
}

#: HTTP statuses gemini exits with (modulo 256) after an API error, by the code it exits with.
HTTP_EXIT_CODES: dict[int, int] = {
    status % 256: status for status in (400, 401, 403, 404, 408, 409, 429, 500, 502, 503, 504)
}

#: The status code inside an ``[API Error: {"error":{"code":401,…}}]`` message.
_CODE = re.compile(r'"code"\s*:\s*(\d{3})\b')

INTERRUPTED = "interrupted: gemini exited without a result line (stopped by a signal)"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _excerpt(text: Any, limit: int = _EXCERPT) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _error_message(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or "error")
    return str(data.get("message") or error or "error")


def exit_meaning(exit_code: int | None) -> str | None:
    """What gemini's exit code says when it printed no result line saying more."""
    if exit_code is None or exit_code < 0:
        return None
    if exit_code == 0:
        return INTERRUPTED
    if exit_code in OWN_EXIT_CODES:
        return f"exit code {exit_code}: {OWN_EXIT_CODES[exit_code]}"
    if exit_code in HTTP_EXIT_CODES:
        status = HTTP_EXIT_CODES[exit_code]
        return f"exit code {exit_code}: the API answered HTTP {status} (see stderr)"
    return None


def normalise(event: StreamEvent) -> list[Normalised]:
    """What one gemini event means. A user ``message`` is the prompt echoed: nothing."""
    data, kind = event.data, event.type
    if kind == "init":
        return [Started(_str(data.get("session_id")), _str(data.get("model")))]
    if kind == "message":
        if data.get("role") == "assistant":
            return [Said(str(data.get("content", "")))]
        return []
    if kind == "tool_use":
        params = data.get("parameters")
        return [
            ToolCall(
                str(data.get("tool_id", "")),
                str(data.get("tool_name", "?")),
                params if isinstance(params, dict) else {},
            )
        ]
    if kind == "tool_result":
        ok = data.get("status") == "success"
        output = data.get("output") if ok else _error_message(data)
        return [ToolResult(str(data.get("tool_id", "")), ok, "" if output is None else str(output))]
    if kind == "error":
        return [Notice(_error_message(data))]
    if kind == "result":
        ok = data.get("status") == "success"
        return [Ended(ok, "success" if ok else "error", "" if ok else _error_message(data))]
    return [Raw(event.label)]


def stats_usage(stats: dict[str, Any]) -> Usage:
    """``result.stats`` as uncached input / output / cache write / cache read tokens."""
    cached = _int(stats.get("cached")) or 0
    uncached = _int(stats.get("input"))
    if uncached is None:
        uncached = max((_int(stats.get("input_tokens")) or 0) - cached, 0)
    return Usage(uncached, _int(stats.get("output_tokens")) or 0, 0, cached)


class GeminiSummaryBuilder:
    """Builds an :class:`AgentSummary` from gemini's stream-json, line by line. ``model`` is
    the configured one, named where the stream says only ``auto``."""

    def __init__(self, model: str | None = None) -> None:
        self._s = AgentSummary(model=model or None)
        self._configured = model or None
        self._stats: dict[str, Any] | None = None
        self._failed: str | None = None
        self._error_type: str | None = None
        self._notices: list[str] = []
        self._texts: list[str] = []
        self._in_text = False

    def feed(self, line: str | bytes) -> StreamEvent | None:
        if not line or line.isspace():
            return None
        s = self._s
        s.lines += 1
        event = parse_line(line)
        if event is None:
            s.bad_lines += 1
            return None
        if event.type == "result":
            stats = event.data.get("stats")
            self._stats = stats if isinstance(stats, dict) else None
            error = event.data.get("error")
            self._error_type = _str(error.get("type")) if isinstance(error, dict) else None
        for meaning in normalise(event):
            self._note(meaning)
        return event

    def _note(self, meaning: Normalised) -> None:
        s = self._s
        if isinstance(meaning, Said):
            if not self._in_text:
                self._texts.append("")
                self._in_text = True
            self._texts[-1] += meaning.text
            return
        self._in_text = False
        if isinstance(meaning, Started):
            s.init_session_id = s.session_id = meaning.session_id
            if meaning.model and meaning.model != "auto" and not self._configured:
                s.model = meaning.model
        elif isinstance(meaning, Ended):
            s.results += 1
            self._failed = None if meaning.ok else meaning.error
        elif isinstance(meaning, Notice):
            self._notices.append(meaning.text)
        elif isinstance(meaning, ToolCall):
            s.tool_uses[meaning.name] = s.tool_uses.get(meaning.name, 0) + 1

    def summary(self, exit_code: int | None = None) -> AgentSummary:
        src = self._s
        texts = [t for t in self._texts if t.strip()]
        s = AgentSummary(
            lines=src.lines,
            bad_lines=src.bad_lines,
            results=src.results,
            model=src.model,
            init_session_id=src.init_session_id,
            session_id=src.session_id,
            tool_uses=dict(src.tool_uses),
            result_text=texts[-1] if texts else None,
            exit_code=exit_code,
        )
        if self._stats is not None:
            usage = stats_usage(self._stats)
            s.input_tokens = usage.input_tokens
            s.output_tokens = usage.output_tokens
            s.cache_creation_input_tokens = 0
            s.cache_read_input_tokens = usage.cache_read_input_tokens
            s.duration_ms = _int(self._stats.get("duration_ms"))
            # What the engine prices: the stream reports tokens, never dollars.
            s.message_usage = usage
            if s.model is None:
                s.model = _busiest_model(self._stats)
        if not src.results:
            s.exit_meaning = exit_meaning(exit_code)
            if self._notices:
                s.errors = [self._notices[-1]]
            return s
        s.ended = "result"
        if self._failed is not None:
            s.subtype, s.is_error = "error", True
            s.errors = [self._failed]
            s.terminal_reason = self._error_type
            found = _CODE.search(self._failed)
            if found:
                s.api_error_status = int(found.group(1))
            elif exit_code in HTTP_EXIT_CODES:
                s.api_error_status = HTTP_EXIT_CODES[exit_code]
        else:
            s.subtype, s.is_error = "success", False
        s.ok = s.is_error is False and exit_code in (None, 0)
        return s


def _busiest_model(stats: dict[str, Any]) -> str | None:
    models = _dict(stats.get("models"))
    ranked = sorted(
        ((_int(_dict(v).get("total_tokens")) or 0, k) for k, v in models.items()), reverse=True
    )
    return ranked[0][1] if ranked else None


def summarize_gemini_file(path: Path) -> AgentSummary:
    """Summarise a ``gemini -o stream-json`` transcript (a non-UTF-8 line is a bad line)."""
    builder = GeminiSummaryBuilder()
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


def _tool_line(data: dict[str, Any], cwd: str | None) -> str:
    name = str(data.get("tool_name", "?"))
    params = _dict(data.get("parameters"))
    if name == "run_shell_command":
        command = str(params.get("command", "")).strip().splitlines()
        return f"[shell: {_excerpt(command[0] if command else '', 120)}]"
    for key in ("file_path", "path", "dir_path", "absolute_path"):
        if key in params:
            return f"[{name}: {_relative(params[key], cwd)}]"
    return f"[{name}]"


def condense_gemini(event: StreamEvent, cwd: str | None = None) -> str | None:
    """One line for a person, or None for lines not worth showing. Never raises."""
    try:
        data, kind = event.data, event.type
        if kind == "init":
            return f"[session: {data.get('session_id', '?')} model {data.get('model', '?')}]"
        if kind == "message":
            content = str(data.get("content", ""))
            if data.get("role") != "assistant" or not content:
                return None
            if data.get("delta") is True:
                # A chunk the log joins to the one before: its spaces are part of the text.
                return content.replace("\n", " ")[:_EXCERPT]
            return _excerpt(content) if content.strip() else None
        if kind == "tool_use":
            return _tool_line(data, cwd)
        if kind == "tool_result":
            if data.get("status") != "success":
                return f"[ERROR: {_excerpt(_error_message(data), 160)}]"
            output = str(data.get("output") or "")
            if cwd:
                output = output.replace(cwd.rstrip("/") + "/", "")
            first = output.strip().splitlines()[0] if output.strip() else ""
            return f"  ↳ {_excerpt(first, 100)}" if first else "  ↳ (done)"
        if kind == "error":
            return f"[{data.get('severity', 'notice')}: {_excerpt(_error_message(data), 160)}]"
        if kind == "result":
            stats = _dict(data.get("stats"))
            head = (
                "[result: success"
                if data.get("status") == "success"
                else f"[ERROR: {_excerpt(_error_message(data), 120)}"
            )
            return (
                f"{head}, {_int(stats.get('input_tokens')) or 0:,} in "
                f"({_int(stats.get('cached')) or 0:,} cached), "
                f"{_int(stats.get('output_tokens')) or 0:,} out]"
            )
        return f"[{event.label}]"
    except Exception:  # a shape no version of the CLI printed yet: show it, do not crash
        return f"[{event.label}]"


def format_gemini_summary(s: AgentSummary) -> str:
    """A short plain-text account of a gemini transcript for ``shoemaker transcript``."""
    tokens = (
        f"{s.input_tokens or 0:,} in (uncached), {s.output_tokens or 0:,} out, "
        f"{s.cache_read_input_tokens or 0:,} cache read"
    )
    return format_agent_summary(s, tokens, "result line", model=True)
