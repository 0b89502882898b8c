"""Claude Code's stream-json: parsing, a one-line rendering per event, and a run summary.

The rules (see the architecture guide): parse every line as JSON and dispatch on
``type``/``subtype`` — key order changes between CLI versions; keep and skip unknown types;
several ``assistant`` lines share a ``message.id`` and their usage is not final, so never sum
them; tokens and cost come from the **last** ``result`` line; a run succeeded only if that line
says ``is_error: false`` (and, for a live run, the exit code is 0); no result line means the
run crashed or was killed.

The per-line path is built for speed, as a live run prints thousands of lines a second:
lines are decoded by msgspec (``agents/jsonline.py``, with exactly the standard decoder's
outcome), the builder touches only the fields its summary needs and keeps running totals,
and :func:`condense` reads only the start of a long text (``agents/excerpt.py``). An event
keeps its whole line, so a caller condenses it later, only if and when it is shown
(:func:`condense_lines`, :func:`condense_data` for transcript bytes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoemaker.agents.excerpt import (
    excerpt,
    excerpt_of,
    first_line_excerpt,
    first_line_excerpt_of,
    joined_prefix,
    replaced_prefix,
)
from shoemaker.agents.jsonline import REFUSED, decode_fast
from shoemaker.agents.ratelimit import RateLimit, claude_rate_limit
from shoemaker.model import Usage

_EXCERPT = 200
_SHORT_RESULT = 2048


@dataclass(slots=True)
class StreamEvent:
    """One parsed stream-json line; read-only by convention (not frozen: a frozen dataclass
    costs several times as much to make, once per line a run prints)."""

    type: str
    subtype: str | None
    data: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.type}/{self.subtype}" if self.subtype else self.type


def parse_line(line: str | bytes) -> StreamEvent | None:
    """The event on one line, or None for a blank line, non-JSON (invalid UTF-8, nested
    deeper than the parser can go), or JSON that is no object."""
    if not line or line.isspace():
        return None
    try:
        data = decode_fast(line)
    except REFUSED:  # the standard decoder decides, called from where it always was
        try:
            data = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
    if data.__class__ is not dict:  # JSON gives no subclass of dict
        return None
    kind = data.get("type")
    subtype = data.get("subtype")
    return StreamEvent(
        kind if kind.__class__ is str else "unknown",
        subtype if subtype.__class__ is str else None,
        data,
    )


# -- condensed rendering ----------------------------------------------------------------------


def _excerpt(text: Any, limit: int = _EXCERPT) -> str:
    return excerpt(text if isinstance(text, str) else str(text), limit)


def _shows(text: Any) -> bool:
    """Whether ``str(text)`` has more than whitespace, without copying a long text."""
    text = text if isinstance(text, str) else str(text)
    return bool(text) and not text.isspace()


def _content_pieces(content: Any) -> list[Any]:
    """The texts that, joined by spaces, make a tool_result's content: a string, or a list
    of text blocks."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b]
    return [] if content is None else [str(content)]


def _relative(path: Any, cwd: str | None) -> str:
    text = str(path)
    if cwd and text.startswith(cwd.rstrip("/") + "/"):
        return text[len(cwd.rstrip("/")) + 1 :]
    return text


def _tool_use(block: dict[str, Any], cwd: str | None) -> str:
    name = str(block.get("name", "?"))
    raw = block.get("input")
    args: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if name in ("Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "NotebookRead"):
        target = args.get("file_path") or args.get("notebook_path") or args.get("path") or "?"
        return f"[{name}: {_relative(target, cwd)}]"
    if name == "Bash":
        return f"[Bash: {first_line_excerpt(str(args.get('command', '')), 120)}]"
    if name in ("Task", "Agent"):
        return f"[Task: {_excerpt(args.get('description') or args.get('prompt') or '', 120)}]"
    if name in ("Glob", "Grep"):
        return f"[{name}: {_excerpt(args.get('pattern', ''), 120)}]"
    if name in ("WebFetch", "WebSearch"):
        return f"[{name}: {_excerpt(args.get('url') or args.get('query') or '', 120)}]"
    if name == "TodoWrite":
        todos = args.get("todos")
        return f"[TodoWrite: {len(todos) if isinstance(todos, list) else 0} items]"
    if name == "LS":
        return f"[LS: {_relative(args.get('path', '.'), cwd)}]"
    shown = json.dumps(raw, ensure_ascii=False, default=str) if raw is not None else ""
    return f"[{name}: {_excerpt(shown, 100)}]" if shown else f"[{name}]"


def _assistant(event: StreamEvent, cwd: str | None) -> str | None:
    data = event.data
    message = data.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    blocks = content if isinstance(content, list) else ({"type": "text", "text": content or ""},)
    parts: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text = block.get("text", "")
            if not isinstance(text, str):
                text = str(text)
            if text and not text.isspace():
                parts.append(excerpt(text, _EXCERPT))
        elif kind == "tool_use" or kind == "server_tool_use":
            parts.append(_tool_use(block, cwd))
        elif kind == "thinking" and _shows(block.get("thinking", "")):
            parts.append("[thinking]")
    error = data.get("error")
    if error:
        return f"[ERROR: {error} {' '.join(parts)}]".replace(" ]", "]")
    return " ".join(parts) or None


def _user(event: StreamEvent, cwd: str | None) -> str | None:
    message = event.data.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return _excerpt(content) if _shows(content) else None
    if not isinstance(content, list):
        return None
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "tool_result":
            parts.append(_tool_result(block, cwd))
        elif kind == "text" and _shows(block.get("text", "")):
            parts.append(_excerpt(block["text"]))
    return " ".join(parts) or None


def _tool_result(block: dict[str, Any], cwd: str | None) -> str:
    pieces = _content_pieces(block.get("content"))
    # Tools echo absolute paths; inside the worktree, relative ones say enough.
    strip = cwd.rstrip("/") + "/" if cwd else None
    failed = block.get("is_error") is True
    if len(pieces) == 1 and len(pieces[0]) <= _SHORT_RESULT:
        text = pieces[0] if strip is None else pieces[0].replace(strip, "")
        if failed:
            return f"[ERROR: {excerpt(text, 160)}]"
        first = first_line_excerpt(text, 100)
    else:  # only the start of the text is read: a tool result can be megabytes
        prefix = joined_prefix(pieces)
        if strip is not None:
            prefix = replaced_prefix(prefix, strip)
        if failed:
            return f"[ERROR: {excerpt_of(prefix, 160)}]"
        first = first_line_excerpt_of(prefix, 100)
    return f"  ↳ {first}" if first else "  ↳ (no output)"


def _system(event: StreamEvent, cwd: str | None) -> str | None:
    d = event.data
    sub = event.subtype
    if sub == "init":
        tools = d.get("tools")
        count = len(tools) if isinstance(tools, list) else 0
        return f"[init: {d.get('model', '?')}, {count} tools, {d.get('cwd', '?')}]"
    if sub == "api_retry":
        status = d.get("error_status")
        return (
            f"[retry {d.get('attempt', '?')}/{d.get('max_retries', '?')}: "
            f"{d.get('error', 'error')}{f' {status}' if status else ''}]"
        )
    if sub in ("task_started", "task_progress", "task_notification", "task_updated"):
        what = d.get("description") or d.get("summary") or ""
        status = d.get("status") or (d.get("patch") or {}).get("status", "")
        return (
            f"[subagent {sub.removeprefix('task_')}{f' {status}' if status else ''}: "
            f"{_excerpt(what, 100)}]".replace(": ]", "]")
        )
    if sub == "compact_boundary":
        return "[context compacted]"
    if sub in ("thinking_tokens", "status", "hook_started", "hook_response"):
        return None
    return f"[{event.label}]"


def _result(event: StreamEvent, cwd: str | None) -> str:
    d = event.data
    cost = d.get("total_cost_usd", d.get("cost_usd"))
    cost_text = f", ${cost:.4f}" if isinstance(cost, (int, float)) else ""
    if d.get("is_error") is True or str(event.subtype or "").startswith("error"):
        errors = d.get("errors")
        why = (
            "; ".join(map(str, errors)) if isinstance(errors, list) and errors else d.get("result")
        )
        status = d.get("api_error_status")
        label = f"API error {status}" if status else f"result {event.subtype}"
        return f"[ERROR: {label}: {_excerpt(why or '', 160)}]"
    turns = d.get("num_turns")
    return f"[result: {event.subtype or 'done'}, {turns} turns{cost_text}]"


def condense(event: StreamEvent, cwd: str | None = None) -> str | None:
    """One line for a person, or None for lines not worth showing. Never raises."""
    try:
        render = _RENDERERS.get(event.type)
        return f"[{event.label}]" if render is None else render(event, cwd)
    except Exception:  # a shape no version of the CLI printed yet: show it, do not crash
        return f"[{event.label}]"


#: How much of a line that is not JSON is shown.
INVALID_EXCERPT = 160

#: A line as the runner read it (``\r`` stripped) and its event, None when it is not JSON.
ReadLine = tuple[bytes, StreamEvent | None]


def condense_lines(
    lines: Sequence[ReadLine],
    cwd: str | None = None,
    most: int | None = None,
    clean: Callable[[str], str] | None = None,
) -> list[tuple[str, str]]:
    """``(label, text)`` for each line of ``lines`` that shows something, in order; a line
    that is not JSON shows its start. With ``most``, only the last ``most`` of them, and no
    line before those is condensed. ``clean`` is applied to each text (the redactor)."""
    out: list[tuple[str, str]] = []
    for raw, event in lines if most is None else reversed(lines):
        if most is not None and len(out) >= most:
            break
        if event is None:
            text = raw[:INVALID_EXCERPT].decode("utf-8", "replace")
            out.append(("invalid", f"[not JSON: {text}]"))
            continue
        shown = condense(event, cwd)
        if shown is not None:
            out.append((event.label, shown))
    if most is not None:
        out.reverse()
    if clean is not None:
        out = [(label, clean(text)) for label, text in out]
    return out


def condense_raw(
    lines: Sequence[bytes], cwd: str | None = None, most: int | None = None
) -> list[tuple[str, str]]:
    """The condensed lines of raw, non-blank lines, or only the last ``most``: then only
    those lines are parsed."""
    out: list[tuple[str, str]] = []
    for line in lines if most is None else reversed(lines):
        out.extend(condense_lines([(line, parse_line(line))], cwd))
        if most is not None and len(out) >= most:
            break
    if most is not None:
        out.reverse()
    return out


def split_lines(data: bytes) -> list[bytes]:
    """The whole, non-blank lines of transcript bytes, split as the runner splits a read."""
    return [line for raw in data.split(b"\n") if (line := raw.rstrip(b"\r")) and not line.isspace()]


def condense_data(
    data: bytes, cwd: str | None = None, most: int | None = None
) -> list[tuple[str, str]]:
    """The condensed lines of transcript bytes, or only the last ``most``: then only those
    lines are parsed."""
    return condense_raw(split_lines(data), cwd, most)


class ReadLines:
    """One read's lines, kept as bytes to be condensed when shown: a callable source of
    ``(label, text)`` lines, all or the last ``most``, each line parsed again then (by
    ``condense``: claude's own unless the run's kind has another) and ``clean`` (the
    redactor) applied to each text."""

    __slots__ = ("clean", "condense", "cwd", "lines")

    def __init__(
        self,
        lines: Sequence[bytes],
        cwd: str | None = None,
        clean: Callable[[str], str] | None = None,
        condense: Callable[
            [Sequence[bytes], str | None, int | None], list[tuple[str, str]]
        ] = condense_raw,
    ) -> None:
        self.lines = lines
        self.cwd = cwd
        self.clean = clean
        self.condense = condense

    def __call__(self, most: int | None) -> list[tuple[str, str]]:
        out = self.condense(self.lines, self.cwd, most)
        clean = self.clean
        return out if clean is None else [(label, clean(text)) for label, text in out]


def _rate_limit(event: StreamEvent, cwd: str | None) -> str | None:
    info = event.data.get("rate_limit_info")
    status = info.get("status") if isinstance(info, dict) else None
    return None if status in (None, "allowed") else f"[rate limit: {status}]"


_RENDERERS: dict[str, Callable[[StreamEvent, str | None], str | None]] = {
    "assistant": _assistant,
    "user": _user,
    "system": _system,
    "result": _result,
    "stream_event": lambda event, cwd: None,
    "rate_limit_event": _rate_limit,
}


# -- summary ----------------------------------------------------------------------------------

_JSON_KEYS = (
    "ended",
    "results",
    "subtype",
    "is_error",
    "ok",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "num_turns",
    "session_id",
    "tool_uses",
    "model_usage",
    "lines",
    "bad_lines",
    "bad_values",
)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class TranscriptSummary:
    """What a transcript says about its run. Values come from the last result line."""

    ended: str = "no_result"
    results: int = 0
    subtype: str | None = None
    is_error: bool | None = None
    ok: bool = False
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    num_turns: int | None = None
    session_id: str | None = None
    tool_uses: dict[str, int] = field(default_factory=dict)
    model_usage: dict[str, Any] | None = None
    lines: int = 0
    bad_lines: int = 0
    bad_values: int = 0
    """Numbers of the result line that are not finite (``1e999``, ``NaN``): shown as null."""
    # Not part of the JSON summary, but what the engine and a person need.
    result_text: str | None = None
    errors: list[str] = field(default_factory=list)
    api_error_status: int | None = None
    terminal_reason: str | None = None
    duration_ms: int | None = None
    duration_api_ms: int | None = None
    exit_code: int | None = None
    model: str | None = None
    cwd: str | None = None
    init_session_id: str | None = None
    rate_limit: RateLimit | None = None
    """What the stream said about the provider's rate limit (``agents/ratelimit.py``)."""
    message_usage: Usage | None = None
    """Tokens summed over the API messages, each
    message's last reported usage: what a run without a result line (killed, crashed), or with
    one that reports nothing (the CLI's answer to SIGINT), is charged for. The API billed those
    messages all the same; output tokens are often placeholders there, so a floor."""

    def as_json(self) -> dict[str, Any]:
        """Exactly the keys of ``shoemaker transcript --json``, in order: those of every kind
        end with ``reasoning_output_tokens`` (claude reports none) and ``cost_source`` (the
        result line's own cost, when it printed one)."""
        out: dict[str, Any] = {key: getattr(self, key) for key in _JSON_KEYS}
        out["reasoning_output_tokens"] = None
        out["cost_source"] = "unknown" if self.cost_usd is None else "reported"
        return out

    def accounted_usage(self) -> Usage:
        """Tokens to account for.

        ``modelUsage`` covers every model the run used, subagents included, while ``usage``
        covers the main loop only; so the former wins when the CLI printed it. A run without
        a result line, or whose result line reports nothing (:attr:`result_undercounts`),
        accounts for what its messages reported (:attr:`message_usage`).
        """
        if self.message_usage and (self.results == 0 or self.result_undercounts):
            return self.message_usage
        return self._result_usage()

    @property
    def result_undercounts(self) -> bool:
        """A result line that reports no tokens and no cost although the messages reported
        usage: the real CLI prints one after SIGINT (``total_cost_usd: 0``, zero usage)."""
        return (
            self.results > 0
            and not self.cost_usd
            and self._result_usage().total == 0
            and (self.message_usage or Usage()).total > 0
        )

    def _result_usage(self) -> Usage:
        if self.model_usage:
            return sum(
                (
                    Usage(
                        _int(usage.get("inputTokens")) or 0,
                        _int(usage.get("outputTokens")) or 0,
                        _int(usage.get("cacheCreationInputTokens")) or 0,
                        _int(usage.get("cacheReadInputTokens")) or 0,
                    )
                    for usage in self.model_usage.values()
                    if isinstance(usage, dict)
                ),
                Usage(),
            )
        return Usage(
            self.input_tokens or 0,
            self.output_tokens or 0,
            self.cache_creation_input_tokens or 0,
            self.cache_read_input_tokens or 0,
        )

    @property
    def error_text(self) -> str:
        """Why the run is not ok, briefly; empty when it is."""
        if self.ok:
            return ""
        if self.ended != "result":
            return "no result line (crashed or killed)"
        if self.errors:
            return f"{self.subtype}: " + "; ".join(self.errors)
        if self.is_error:
            status = f"API error {self.api_error_status}: " if self.api_error_status else ""
            return f"{status}{_excerpt(self.result_text or self.subtype or 'error result', 300)}"
        if self.exit_code not in (None, 0):
            return f"exit code {self.exit_code}"
        return "not ok"


class SummaryBuilder:
    """Builds a :class:`TranscriptSummary` line by line, cheaply, as a live run prints."""

    def __init__(self) -> None:
        self._summary = TranscriptSummary()
        self._last_result: dict[str, Any] | None = None
        self._tool_ids: set[str] = set()
        # message.id → its latest usage: several lines share an id and repeat its usage.
        self._message_usage: dict[str, tuple[int, int, int, int]] = {}
        # Their sums, kept as lines arrive.
        self._input = self._output = self._cache_creation = self._cache_read = 0
        # The message whose lines are arriving, one per content block, and its latest usage:
        # read once the next message begins, or a summary is asked for.
        self._current_id: str | None = None
        self._current_usage: dict[str, Any] = {}

    @property
    def cwd(self) -> str | None:
        return self._summary.cwd

    def feed(self, line: str | bytes) -> StreamEvent | None:
        """Account for one line (blank lines are ignored); returns its event, if it is one."""
        if not line or line.isspace():
            return None
        s = self._summary
        s.lines += 1
        event = parse_line(line)
        if event is None:
            s.bad_lines += 1
            return None
        kind, subtype, data = event.type, event.subtype, event.data
        if kind == "assistant":
            message = data.get("message")
            if message.__class__ is dict:
                self._assistant(message)
        elif kind == "user":
            pass  # the most lines after assistant ones; nothing in them for the summary
        elif kind == "result":
            s.results += 1
            self._last_result = data
        elif kind == "system" and subtype == "init":
            s.model = _str(data.get("model"))
            s.cwd = _str(data.get("cwd"))
            s.init_session_id = _str(data.get("session_id"))
        elif kind == "rate_limit_event" or (kind == "system" and subtype == "api_retry"):
            self._rate_limit(event)
        return event

    def _rate_limit(self, event: StreamEvent) -> None:
        fact = claude_rate_limit(event)
        if fact is not None:
            s = self._summary
            s.rate_limit = fact if s.rate_limit is None else s.rate_limit.merged(fact)

    def _assistant(self, message: dict[str, Any]) -> None:
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    self._count_tool(block)
        if message.get("model") == "<synthetic>":
            return  # a synthetic message reports an API failure, not tokens the API billed
        usage, mid = message.get("usage"), message.get("id")
        if not isinstance(usage, dict) or not isinstance(mid, str):
            return
        if mid != self._current_id:
            self._account_current()
            self._current_id = mid
        self._current_usage = usage

    def _account_current(self) -> None:
        mid = self._current_id
        if mid is None:
            return
        self._current_id = None
        get = self._current_usage.get
        # Counts as _int(value) or 0 reads them; JSON gives no subclass of int but bool.
        i, o = get("input_tokens"), get("output_tokens")
        cc, cr = get("cache_creation_input_tokens"), get("cache_read_input_tokens")
        i = i if type(i) is int else 0
        o = o if type(o) is int else 0
        cc = cc if type(cc) is int else 0
        cr = cr if type(cr) is int else 0
        old = self._message_usage.get(mid)
        self._message_usage[mid] = (i, o, cc, cr)
        if old is not None:
            i, o, cc, cr = i - old[0], o - old[1], cc - old[2], cr - old[3]
        self._input += i
        self._output += o
        self._cache_creation += cc
        self._cache_read += cr

    def _count_tool(self, block: dict[str, Any]) -> None:
        tool_id = block.get("id")
        key = tool_id if isinstance(tool_id, str) else f"#{len(self._tool_ids)}"
        if key in self._tool_ids:
            return
        self._tool_ids.add(key)
        name = str(block.get("name", "?"))
        self._summary.tool_uses[name] = self._summary.tool_uses.get(name, 0) + 1

    def summary(self, exit_code: int | None = None) -> TranscriptSummary:
        """The summary so far; ``exit_code`` (for a live run) must be 0 for the run to be ok."""
        s = TranscriptSummary(**{k: getattr(self._summary, k) for k in _FIELDS})
        s.tool_uses = dict(self._summary.tool_uses)
        s.exit_code = exit_code
        self._account_current()
        if self._message_usage:
            s.message_usage = Usage(
                self._input, self._output, self._cache_creation, self._cache_read
            )
        r = self._last_result
        if r is None:
            return s
        raw_usage = r.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        cost = r.get("total_cost_usd", r.get("cost_usd"))
        errors = r.get("errors")
        s.ended = "result"
        s.subtype = _str(r.get("subtype"))
        s.is_error = r.get("is_error") if isinstance(r.get("is_error"), bool) else None
        s.cost_usd = _finite(cost)
        if isinstance(cost, float) and s.cost_usd is None:
            s.bad_values += 1
        s.input_tokens = _int(usage.get("input_tokens"))
        s.output_tokens = _int(usage.get("output_tokens"))
        s.cache_creation_input_tokens = _int(usage.get("cache_creation_input_tokens"))
        s.cache_read_input_tokens = _int(usage.get("cache_read_input_tokens"))
        s.num_turns = _int(r.get("num_turns"))
        s.session_id = _str(r.get("session_id"))
        model_usage = r.get("modelUsage")
        if isinstance(model_usage, dict):
            s.model_usage, bad = _finite_only(model_usage)
            s.bad_values += bad
        s.result_text = _str(r.get("result"))
        s.errors = [str(e) for e in errors] if isinstance(errors, list) else []
        s.api_error_status = _int(r.get("api_error_status"))
        s.terminal_reason = _str(r.get("terminal_reason"))
        s.duration_ms = _int(r.get("duration_ms"))
        s.duration_api_ms = _int(r.get("duration_api_ms"))
        s.ok = s.is_error is False and exit_code in (None, 0)
        refused = claude_rate_limit(StreamEvent("result", s.subtype, r))
        if refused is not None:
            s.rate_limit = refused if s.rate_limit is None else s.rate_limit.merged(refused)
        return s


_FIELDS = ("lines", "bad_lines", "results", "model", "cwd", "init_session_id", "rate_limit")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _finite(value: Any) -> float | None:
    """A number as a float; None for anything else, and for ``inf`` and ``nan``, which JSON
    cannot carry and no sum should meet."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _finite_only(data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``data`` with every non-finite float replaced by None, and how many there were.
    Iterative: a result line may nest as deep as the JSON parser allowed."""
    bad = 0
    root: dict[str, Any] = dict(data)
    stack: list[dict[str, Any] | list[Any]] = [root]
    while stack:
        node = stack.pop()
        keys: Iterable[Any] = node.keys() if isinstance(node, dict) else range(len(node))
        for key in keys:
            value = node[key]
            if isinstance(value, float) and not math.isfinite(value):
                node[key] = None
                bad += 1
            elif isinstance(value, dict):
                node[key] = dict(value)
                stack.append(node[key])
            elif isinstance(value, list):
                node[key] = list(value)
                stack.append(node[key])
    return root, bad


def summarize_lines(
    lines: Iterable[str | bytes], exit_code: int | None = None
) -> TranscriptSummary:
    builder = SummaryBuilder()
    for line in lines:
        builder.feed(line)
    return builder.summary(exit_code)


def summarize_file(path: Path) -> TranscriptSummary:
    """Summarise a transcript file; a line that is not UTF-8 is a bad line, as in a live run."""
    with path.open("rb") as handle:
        return summarize_lines(handle)


def format_summary(s: TranscriptSummary) -> str:
    """A short plain-text account of a transcript for ``shoemaker transcript FILE``."""
    status = "ok" if s.ok else f"NOT ok — {s.error_text}"
    tokens = (
        f"{s.input_tokens or 0:,} in, {s.output_tokens or 0:,} out, "
        f"{s.cache_read_input_tokens or 0:,} cache read, "
        f"{s.cache_creation_input_tokens or 0:,} cache created"
    )
    tools = ", ".join(f"{k}×{v}" for k, v in sorted(s.tool_uses.items())) or "none"
    lines = [
        f"ended:    {s.ended} ({s.results} result line{'s' if s.results != 1 else ''})",
        f"status:   {status}",
        f"subtype:  {s.subtype or '—'}   is_error: {s.is_error}",
        f"cost:     {'—' if s.cost_usd is None else f'${s.cost_usd:.6f}'}",
        f"tokens:   {tokens}" if s.ended == "result" else "tokens:   —",
        f"turns:    {s.num_turns if s.num_turns is not None else '—'}",
        f"session:  {s.session_id or s.init_session_id or '—'}",
        f"tools:    {tools}",
        f"lines:    {s.lines} ({s.bad_lines} not JSON)"
        + (f", {s.bad_values} numbers not finite" if s.bad_values else ""),
    ]
    if s.message_usage and (s.ended != "result" or s.result_undercounts):
        m = s.message_usage
        lines.append(
            f"messages: {m.input_tokens:,} in, {m.output_tokens:,} out (a floor), "
            f"{m.cache_read_input_tokens:,} cache read, "
            f"{m.cache_creation_input_tokens:,} cache created: what the run is charged for, "
            "at the configured prices"
        )
    if s.model_usage:
        for model, usage in s.model_usage.items():
            if isinstance(usage, dict):
                cost = _finite(usage.get("costUSD"))
                lines.append(
                    f"model:    {model}: {_int(usage.get('inputTokens')) or 0:,} in, "
                    f"{_int(usage.get('outputTokens')) or 0:,} out, "
                    + ("$—" if cost is None else f"${cost:.6f}")
                )
    return "\n".join(lines)
