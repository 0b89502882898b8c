"""A loopback mock of the Gemini API (``POST /v1beta/models/M:streamGenerateContent?alt=sse``
and the side calls ``:generateContent`` and ``:countTokens``), for driving the real gemini CLI
offline (the tests, and the demo without credentials).

Each test scripts the model's main-turn replies as a queue of turns: parts (text, or a function
call such as ``write_file`` that the real CLI then executes in its working directory) or an HTTP
error status. Requests beyond the script get a short text. Side calls (the CLI's router, its
next-speaker and loop checks) are answered with the smallest JSON that fits the schema they
ask for; they are kept apart from the main turns and do not consume the script. Every reply
reports usage the way the real API does: ``promptTokenCount`` includes the cached part.
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

from shoemaker.mocks.script import Script


def text(value: str) -> dict[str, Any]:
    return {"text": value}


def write_file(path: str, content: str) -> dict[str, Any]:
    """A ``write_file`` call (``path`` relative to the CLI's working directory)."""
    return {"functionCall": {"name": "write_file", "args": {"file_path": path, "content": content}}}


def shell(command: str) -> dict[str, Any]:
    """A ``run_shell_command`` call."""
    return {"functionCall": {"name": "run_shell_command", "args": {"command": command}}}


@dataclass
class Turn:
    """One main-turn reply: parts, or an error status."""

    parts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    prompt_tokens: int = 1200
    cached_tokens: int = 200
    output_tokens: int = 40
    hold: threading.Event | None = None
    """Answer only once this is set (a request that hangs until the test lets it go)."""


@dataclass
class MockGemini(Script[Turn]):
    """The script and what was asked; ``url`` is the base URL (``GOOGLE_GEMINI_BASE_URL``)."""

    side_calls: list[str] = field(default_factory=list)
    """Paths of the other requests."""

    def default_turn(self) -> Turn:
        return Turn([text("ok")])


def fill(schema: Any) -> Any:
    """The smallest value that fits a JSON schema (the side calls' response schemas)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: fill(sub) for name, sub in props.items()}
    if kind == "array":
        return [fill(schema["items"])] * int(schema.get("minItems", 0)) if "items" in schema else []
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return "mock"


def _usage(turn: Turn) -> dict[str, Any]:
    return {
        "promptTokenCount": turn.prompt_tokens,
        "cachedContentTokenCount": turn.cached_tokens,
        "candidatesTokenCount": turn.output_tokens,
        "totalTokenCount": turn.prompt_tokens + turn.output_tokens,
    }


def _chunk(parts: list[dict[str, Any]], model: str, final: Turn | None) -> bytes:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    data: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if final is not None:
        candidate["finishReason"] = "STOP"
        data["usageMetadata"] = _usage(final)
    return f"data: {json.dumps(data)}\n\n".encode()


def _stream(turn: Turn, model: str) -> bytes:
    # Text arrives in two chunks (the CLI prints them as deltas); calls come whole.
    out: list[bytes] = []
    for part in turn.parts:
        if "text" in part and len(part["text"]) > 1:
            half = len(part["text"]) // 2
            out.append(_chunk([text(part["text"][:half])], model, None))
            out.append(_chunk([text(part["text"][half:])], model, None))
        else:
            out.append(_chunk([part], model, None))
    out.append(_chunk([text("")] if not out else [], model, turn))
    return b"".join(out)


_PATH = re.compile(r"/models/([^/:?]+):(\w+)")


def _handler(api: MockGemini) -> type[BaseHTTPRequestHandler]:
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
            self._send(404, b"{}", "application/json")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            found = _PATH.search(self.path)
            if found is None:
                self._send(404, b"{}", "application/json")
                return
            model, method = found.groups()
            if method == "countTokens":
                self._send(200, b'{"totalTokens": 10}', "application/json")
                return
            if method != "streamGenerateContent":
                api.side_calls.append(self.path)
                config = body.get("generationConfig") or {}
                schema = config.get("responseJsonSchema") or config.get("responseSchema")
                answer = json.dumps(fill(schema)) if schema else "ok"
                reply = {
                    "candidates": [
                        {
                            "content": {"role": "model", "parts": [text(answer)]},
                            "finishReason": "STOP",
                            "index": 0,
                        }
                    ],
                    "usageMetadata": _usage(Turn(prompt_tokens=100, cached_tokens=0)),
                }
                self._send(200, json.dumps(reply).encode(), "application/json")
                return
            turn = api.next_turn({**body, "model": model})
            if turn.hold is not None:
                turn.hold.wait(60)
            if turn.status != 200:
                error = {
                    "error": {
                        "code": turn.status,
                        "message": f"mock error {turn.status}",
                        "status": "INVALID_ARGUMENT" if turn.status == 400 else "UNAUTHENTICATED",
                    }
                }
                self._send(turn.status, json.dumps(error).encode(), "application/json")
                return
            self._send(200, _stream(turn, model), "text/event-stream")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a CLI stopped mid-request closes its connection; not an error


@contextmanager
def mock_gemini(
    director: Callable[[dict[str, Any]], Turn] | None = None,
) -> Iterator[MockGemini]:
    """Serve the mock on 127.0.0.1 (a free port) for the length of the block."""
    api = MockGemini(director=director)
    server = _Server(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
