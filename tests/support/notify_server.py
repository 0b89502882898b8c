"""Loopback endpoints for notifications: an HTTP server that keeps what apprise posts (as
a ``json://`` webhook or an ntfy server), and a listener that never answers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Bound on waiting for a request that should come: far above a send on a loaded machine.
ARRIVAL_LIMIT_S = 120


@dataclass(frozen=True)
class Received:
    """One request as the server read it."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """What the server received, in order; waiting for requests is waiting on a condition,
    which each arrival notifies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[Received] = []
        self._arrived = threading.Condition()

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def add(self, request: Received) -> None:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def wait_for(
        self, enough: Callable[[list[Received]], bool], limit: float = ARRIVAL_LIMIT_S
    ) -> list[Received]:
        """The requests once ``enough`` holds for them (an AssertionError after ``limit``)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: enough(self.requests), limit):
                raise AssertionError(f"not received in {limit}s; got {self.requests!r}")
            return list(self.requests)

    def on(self, path: str) -> list[Received]:
        with self._arrived:
            return [r for r in self.requests if r.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            receiver.add(Received(self.path, dict(self.headers), body))

    return Handler


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A loopback HTTP server on a free port that answers every POST with 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Receiver(0)))
    got = Receiver(server.server_address[1])
    server.RequestHandlerClass = _handler(got)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def silent_port() -> Iterator[tuple[int, socket.socket]]:
    """A port that takes connections (the kernel completes them) and never answers one:
    a request to it hangs until the listening socket is closed, which resets them."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1], listener
    finally:
        listener.close()
