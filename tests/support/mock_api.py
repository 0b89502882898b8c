"""A loopback mock of the Anthropic Messages API, for driving the real claude CLI offline.

Each test scripts the replies of the agent's main loop (requests that carry tools) as a queue
of turns: content blocks (text, or a tool_use that the real CLI then executes in its working
directory) or an HTTP error. ``{cwd}`` in a tool's input becomes the working directory the
CLI reports in its system prompt, so scripts can name files by absolute path. Other requests
(side calls) get a short text reply. Replies stream as server-sent events, as the real API's.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CWD = re.compile(r"[Ww]orking directory: ([^\s\\\"]+)")


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool(name: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "name": name, "input": arguments}


#: The longest a held reply waits for its test: a bound so that a test that never lets it go
#: ends its thread, far above what a loaded machine takes to act on the held request (a
#: cancelled run whose hold ran out after 60 s was answered, and ended well).
HOLD_LIMIT_S = 900.0


@dataclass
class Turn:
    """One reply: content blocks, or an error status (with ``retry_after`` seconds)."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    input_tokens: int = 120
    output_tokens: int = 40
    hold: threading.Event | None = None
    """Answer only once this is set (a request that hangs until the test lets it go, or at
    most ``HOLD_LIMIT_S``)."""
    retry_after: str = "0"
    """The ``retry-after`` header of an error reply (seconds)."""


@dataclass
class MockApi:
    """The script and what was asked; ``url`` is where the CLI should point."""

    turns: list[Turn] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    asked: threading.Condition = field(default_factory=threading.Condition)
    """Notified at each request, for :meth:`wait_for`."""

    def script(self, *turns: Turn) -> None:
        with self.lock:
            self.turns.extend(turns)

    def next_turn(self, body: dict[str, Any]) -> Turn:
        with self.asked:
            with self.lock:
                self.requests.append(body)
                turn = self.turns.pop(0) if body.get("tools") and self.turns else None
            self.asked.notify_all()
        return turn or Turn([text("ok")])

    def wait_for(self, enough: Callable[[list[dict[str, Any]]], bool], limit: float = 120) -> None:
        """Block until the requests so far satisfy ``enough`` (bounded: a CLI that never asks
        fails the test instead of hanging it)."""
        with self.asked:
            if not self.asked.wait_for(lambda: enough(self.requests), limit):
                raise AssertionError(f"the API was not asked as expected within {limit:g} s")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _cwd_of(body: dict[str, Any]) -> str:
    found = _CWD.search(json.dumps(body.get("system", "")))
    return found.group(1) if found else ""


def _fill(value: Any, cwd: str) -> Any:
    if isinstance(value, str):
        return value.replace("{cwd}", cwd)
    if isinstance(value, dict):
        return {k: _fill(v, cwd) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, cwd) for v in value]
    return value


def _stream(turn: Turn, model: str, cwd: str, number: int) -> bytes:
    out = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_{number:04d}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": turn.input_tokens,
                        "output_tokens": 1,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            },
        )
    ]
    stop = "end_turn"
    for index, block in enumerate(turn.blocks):
        start: dict[str, Any]
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            stop = "tool_use"
            start = {
                "type": "tool_use",
                "id": f"toolu_{number:04d}_{index}",
                "name": block["name"],
                "input": {},
            }
            delta = {
                "type": "input_json_delta",
                "partial_json": json.dumps(_fill(block["input"], cwd)),
            }
        out += [
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            ),
            _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    out += [
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": turn.output_tokens},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(out)


def _handler(api: MockApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(404, b"", "text/plain")

        do_HEAD = do_GET

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
                self._send(200, json.dumps({"input_tokens": 10}).encode(), "application/json")
                return
            turn = api.next_turn(body)
            if turn.hold is not None:
                turn.hold.wait(HOLD_LIMIT_S)
            if turn.status != 200:
                kinds = {
                    401: "authentication_error",
                    429: "rate_limit_error",
                    529: "overloaded_error",
                }
                error = {
                    "type": "error",
                    "error": {"type": kinds.get(turn.status, "api_error"), "message": "mock"},
                }
                self._send(
                    turn.status,
                    json.dumps(error).encode(),
                    "application/json",
                    retry_after=turn.retry_after,
                )
                return
            stream = _stream(
                turn, body.get("model", "claude-sonnet-4-5"), _cwd_of(body), len(api.requests)
            )
            self._send(200, stream, "text/event-stream")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A CLI stopped mid-request (the SIGTERM test) closes its connection; not an error.
        pass


@contextmanager
def mock_api() -> Iterator[MockApi]:
    """Serve the mock on 127.0.0.1 (a free port) for the length of the block."""
    api = MockApi()
    server = _Server(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
