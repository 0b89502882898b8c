"""The stream-json parser as it was before its fast path: ``json.loads`` on every line, the
condensed rendering and the summary written the straightforward way. The fast path in
``shoemaker.agents.streamjson`` must agree with it on every line (tests/test_streamjson_fast.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoemaker.model import Usage

_EXCERPT = 200


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One parsed stream-json line."""

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
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    subtype = data.get("subtype")
    return StreamEvent(
        kind if isinstance(kind, str) else "unknown",
        subtype if isinstance(subtype, str) else None,
        data,
    )


# -- condensed rendering ----------------------------------------------------------------------


def _excerpt(text: Any, limit: int = _EXCERPT) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _content_text(content: Any) -> str:
    """The text of a tool_result's content: a string, or a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b
        )
    return "" if content is None else str(content)


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
        command = str(args.get("command", "")).strip().splitlines()
        return f"[Bash: {_excerpt(command[0] if command else '', 120)}]"
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
    message = event.data.get("message")
    message = message if isinstance(message, dict) else {}
    parts: list[str] = []
    content = message.get("content")
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and str(block.get("text", "")).strip():
            parts.append(_excerpt(block["text"]))
        elif kind == "tool_use":
            parts.append(_tool_use(block, cwd))
        elif kind == "thinking" and str(block.get("thinking", "")).strip():
            parts.append("[thinking]")
        elif kind in ("server_tool_use",):
            parts.append(_tool_use(block, cwd))
    error = event.data.get("error")
    if error:
        return f"[ERROR: {error} {' '.join(parts)}]".replace(" ]", "]")
    return " ".join(parts) or None


def _user(event: StreamEvent, cwd: str | None) -> str | None:
    message = event.data.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return _excerpt(content) if content.strip() else None
    if not isinstance(content, list):
        return None
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            text = _content_text(block.get("content"))
            if cwd:  # tools echo absolute paths; inside the worktree, relative ones say enough
                text = text.replace(cwd.rstrip("/") + "/", "")
            first = text.strip().splitlines()[0] if text.strip() else ""
            if block.get("is_error") is True:
                parts.append(f"[ERROR: {_excerpt(text, 160)}]")
            else:
                parts.append(f"  ↳ {_excerpt(first, 100)}" if first else "  ↳ (no output)")
        elif block.get("type") == "text" and str(block.get("text", "")).strip():
            parts.append(_excerpt(block["text"]))
    return " ".join(parts) or None


def _system(event: StreamEvent) -> str | None:
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


def _result(event: StreamEvent) -> str:
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
        if event.type == "assistant":
            return _assistant(event, cwd)
        if event.type == "user":
            return _user(event, cwd)
        if event.type == "system":
            return _system(event)
        if event.type == "result":
            return _result(event)
        if event.type == "stream_event":
            return None
        if event.type == "rate_limit_event":
            info = event.data.get("rate_limit_info")
            status = info.get("status") if isinstance(info, dict) else None
            return None if status in (None, "allowed") else f"[rate limit: {status}]"
        return f"[{event.label}]"
    except Exception:  # a shape no version of the CLI printed yet: show it, do not crash
        return f"[{event.label}]"


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
    rate_limit: dict[str, Any] | None = None
    """The rate-limit facts, folded: the worst status, the latest reset time, the last retry
    delay, and where the last fact of the worst status was read."""
    message_usage: Usage | None = None
    """Tokens summed over the API messages, each
    message's last reported usage: what a run without a result line (killed, crashed), or with
    one that reports nothing (the CLI's answer to SIGINT), is charged for. The API billed those
    messages all the same; output tokens are often placeholders there, so a floor."""

    def as_json(self) -> dict[str, Any]:
        """Exactly the keys of ``shoemaker transcript --json``, in order."""
        return {key: getattr(self, key) for key in _JSON_KEYS}

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
        self._message_usage: dict[str, Usage] = {}
        # (status, resets_at, retry_after_s, source) of each rate-limit fact, in order.
        self._rate_facts: list[tuple[str, float | None, float | None, str]] = []

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
        if event.type == "result":
            s.results += 1
            self._last_result = event.data
        elif event.type == "assistant":
            self._count_tools(event.data)
            self._note_usage(event.data)
        elif event.type == "system" and event.subtype == "init":
            s.model = _str(event.data.get("model"))
            s.cwd = _str(event.data.get("cwd"))
            s.init_session_id = _str(event.data.get("session_id"))
        elif event.type == "rate_limit_event":
            info = event.data.get("rate_limit_info")
            if isinstance(info, dict) and info.get("status") in _RATE_RANK:
                resets = _finite(info.get("resetsAt"))
                if resets is not None and resets > 1e11:
                    resets = resets / 1000
                self._rate_facts.append((info["status"], resets, None, "rate_limit_event"))
        elif event.type == "system" and event.subtype == "api_retry":
            d = event.data
            if d.get("error") == "rate_limit" or d.get("error_status") == 429:
                delay = _finite(d.get("retry_delay_ms"))
                retry = None if delay is None else delay / 1000
                self._rate_facts.append(("allowed", None, retry, "api_retry"))
        return event

    def _count_tools(self, data: dict[str, Any]) -> None:
        message = data.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_use":
                continue
            tool_id = block.get("id")
            key = tool_id if isinstance(tool_id, str) else f"#{len(self._tool_ids)}"
            if key in self._tool_ids:
                continue
            self._tool_ids.add(key)
            name = str(block.get("name", "?"))
            self._summary.tool_uses[name] = self._summary.tool_uses.get(name, 0) + 1

    def _note_usage(self, data: dict[str, Any]) -> None:
        message = data.get("message")
        if not isinstance(message, dict) or message.get("model") == "<synthetic>":
            return  # a synthetic message reports an API failure, not tokens the API billed
        usage, mid = message.get("usage"), message.get("id")
        if isinstance(usage, dict) and isinstance(mid, str):
            self._message_usage[mid] = Usage(
                _int(usage.get("input_tokens")) or 0,
                _int(usage.get("output_tokens")) or 0,
                _int(usage.get("cache_creation_input_tokens")) or 0,
                _int(usage.get("cache_read_input_tokens")) or 0,
            )

    def summary(self, exit_code: int | None = None) -> TranscriptSummary:
        """The summary so far; ``exit_code`` (for a live run) must be 0 for the run to be ok."""
        s = TranscriptSummary(**{k: getattr(self._summary, k) for k in _FIELDS})
        s.tool_uses = dict(self._summary.tool_uses)
        s.exit_code = exit_code
        if self._message_usage:
            s.message_usage = sum(self._message_usage.values(), Usage())
        r = self._last_result
        if r is None:
            s.rate_limit = _fold(self._rate_facts)
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
        facts = list(self._rate_facts)
        if r.get("is_error") is True and r.get("api_error_status") == 429:
            facts.append(("rejected", None, None, "result"))
        s.rate_limit = _fold(facts)
        return s


_RATE_RANK = {"allowed": 0, "allowed_warning": 1, "rejected": 2}


def _fold(facts: list[tuple[str, float | None, float | None, str]]) -> dict[str, Any] | None:
    if not facts:
        return None
    status = max((f[0] for f in facts), key=_RATE_RANK.__getitem__)
    resets = [f[1] for f in facts if f[1] is not None]
    retries = [f[2] for f in facts if f[2] is not None]
    return {
        "status": status,
        "resets_at": max(resets) if resets else None,
        "retry_after_s": retries[-1] if retries else None,
        "source": [f[3] for f in facts if f[0] == status][-1],
    }


_FIELDS = ("lines", "bad_lines", "results", "model", "cwd", "init_session_id")


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
