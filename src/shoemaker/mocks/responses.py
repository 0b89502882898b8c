"""A loopback mock of the OpenAI Responses API (``POST /v1/responses``, server-sent events), for
driving the real codex CLI offline (the tests, and the demo without credentials).

Each test scripts the model's replies as a queue of turns: output items (a message, an
``apply_patch`` call or a shell call that the real CLI then executes in its working directory)
or an HTTP error status. Requests beyond the script get a short message. Every reply reports the
turn's usage the way the real API does (``input_tokens`` including the cached part).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shoemaker.mocks.script import Script


def message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def add_file(path: str, content: str) -> dict[str, Any]:
    """An ``apply_patch`` call that adds ``path`` (relative to the CLI's working root)."""
    body = "".join(f"+{line}\n" for line in content.splitlines())
    patch = f"*** Begin Patch\n*** Add File: {path}\n{body}*** End Patch"
    return {"type": "custom_tool_call", "name": "apply_patch", "input": patch}


def shell(command: str) -> dict[str, Any]:
    """An ``exec_command`` call running ``command``."""
    return {
        "type": "function_call",
        "name": "exec_command",
        "arguments": json.dumps({"cmd": command}),
    }


@dataclass
class Turn:
    """One reply: output items, or an error status."""

    items: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    input_tokens: int = 1200
    cached_tokens: int = 200
    output_tokens: int = 40
    reasoning_tokens: int = 0
    hold: threading.Event | None = None
    """Answer only once this is set (a request that hangs until the test lets it go)."""


@dataclass
class MockResponses(Script[Turn]):
    """The script and what was asked; ``url`` is the base URL (ending in ``/v1``)."""

    def default_turn(self) -> Turn:
        return Turn([message("ok")])


def _sse(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def _stream(turn: Turn, model: str, number: int) -> bytes:
    response_id = f"resp_{number:04d}"
    head = {"id": response_id, "object": "response", "model": model, "status": "in_progress"}
    out = [_sse({"type": "response.created", "response": head})]
    for index, raw in enumerate(turn.items):
        item = dict(raw)
        if item["type"] == "message":
            item["id"] = f"msg_{number:04d}_{index}"
            item["status"] = "completed"
            text = item["content"][0]["text"]
            added = {**item, "status": "in_progress", "content": []}
            out.append(
                _sse({"type": "response.output_item.added", "output_index": index, "item": added})
            )
            out.append(
                _sse(
                    {
                        "type": "response.output_text.delta",
                        "item_id": item["id"],
                        "output_index": index,
                        "content_index": 0,
                        "delta": text,
                    }
                )
            )
        else:
            item["id"] = f"fc_{number:04d}_{index}"
            item["call_id"] = f"call_{number:04d}_{index}"
            item["status"] = "completed"
        out.append(_sse({"type": "response.output_item.done", "output_index": index, "item": item}))
    usage = {
        "input_tokens": turn.input_tokens,
        "input_tokens_details": {"cached_tokens": turn.cached_tokens},
        "output_tokens": turn.output_tokens,
        "output_tokens_details": {"reasoning_tokens": turn.reasoning_tokens},
        "total_tokens": turn.input_tokens + turn.output_tokens,
    }
    done = {**head, "status": "completed", "usage": usage, "output": []}
    out.append(_sse({"type": "response.completed", "response": done}))
    return b"".join(out)


def _handler(api: MockResponses) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            # /v1/models and the like: nothing known, which the CLI tolerates.
            self._send(404, b"{}", "application/json")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.endswith("/responses"):
                self._send(404, b"{}", "application/json")
                return
            turn = api.next_turn(body)
            if turn.hold is not None:
                turn.hold.wait(60)
            if turn.status != 200:
                error = {
                    "error": {
                        "message": f"mock error {turn.status}",
                        "type": "invalid_request_error",
                        "code": None,
                    }
                }
                self._send(turn.status, json.dumps(error).encode(), "application/json")
                return
            stream = _stream(turn, str(body.get("model", "gpt-5")), len(api.requests))
            self._send(200, stream, "text/event-stream")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a CLI stopped mid-request closes its connection; not an error


@contextmanager
def mock_responses(
    director: Callable[[dict[str, Any]], Turn] | None = None,
) -> Iterator[MockResponses]:
    """Serve the mock on 127.0.0.1 (a free port) for the length of the block."""
    api = MockResponses(director=director)
    server = _Server(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
