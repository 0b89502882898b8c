"""The web view's server: textual-serve's aiohttp app, with shoemaker's door and endpoint.

The seam: ``WebServer`` subclasses textual-serve's ``Server`` and keeps its static files, its
websocket message relay (``_process_messages``) and its download route. It adds the access
middleware and ``/api/status`` to the app ``Server._make_app`` builds, and replaces three
methods: the page (its own, so that the token reaches the script, style and websocket URLs),
the websocket handler (to use ``DashboardSession``, which ends its app) and the start-up
banner. ``serve`` runs the app itself instead of ``Server.serve``, to print the real address
(port 0 picks a free one), keep the access log off (URLs carry the token) and, on SIGINT or
SIGTERM, end every dashboard before it returns.
"""

from __future__ import annotations

import asyncio
import html
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from textual_serve.server import Server, to_int

from shoemaker.errors import BadInput
from shoemaker.store import Store
from shoemaker.web.access import TOKEN_PARAM, guard
from shoemaker.web.session import DashboardSession
from shoemaker.web.status import status

#: How long an app has to quit, then to die of SIGTERM, before its group is killed.
QUIT_GRACE_S = 10.0

_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/static/css/xterm.css{query}">
<script src="/static/js/textual.js{query}"></script>
<style>
body {{ background: #0c181f; margin: 0; }}
.textual-terminal {{ width: 100vw; height: 100vh; }}
.ended {{ display: none; color: #eee; font: 16px monospace; padding: 2em; }}
body.-closed .ended {{ display: block; }}
</style>
</head>
<body>
<div class="ended">The dashboard has ended. Reload the page to open it again.</div>
<div id="terminal" class="textual-terminal"
     data-session-websocket-url="{socket}" data-font-size="{font_size}"></div>
</body>
</html>
"""


class WebServer(Server):
    """textual-serve's ``Server`` serving ``argv`` (the dashboard) to each browser, behind
    ``token`` (None: loopback, no token) and with ``/api/status`` from ``store``."""

    def __init__(
        self,
        argv: list[str],
        store: Store,
        *,
        title: str,
        token: str | None,
        grace_s: float = QUIT_GRACE_S,
        say: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(" ".join(argv), title=title)
        self.argv = argv
        self.store = store
        self.token = token
        self.grace_s = grace_s
        self.say = say or _say
        self.sessions: set[DashboardSession] = set()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(guard(self.token))
        app.router.add_get("/api/status", self.handle_status)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """No banner: ``serve`` prints the address."""

    async def on_shutdown(self, app: web.Application) -> None:
        """End every dashboard still open (their handlers end with their websockets)."""
        await asyncio.gather(*(s.close() for s in list(self.sessions)))

    async def handle_status(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(status, self.store))

    async def handle_index(self, request: web.Request) -> web.Response:
        query = f"?{TOKEN_PARAM}={self.token}" if self.token else ""
        scheme = "wss" if request.secure else "ws"
        # textual.js appends "?width=…&height=…" to this URL: after the token, a trailing "&"
        # keeps the token its own parameter (the width then arrives as "?width").
        socket = (
            f"{scheme}://{request.host}/ws{query}&" if query else f"{scheme}://{request.host}/ws"
        )
        page = _PAGE.format(
            title=html.escape(self.title),
            query=html.escape(query),
            socket=html.escape(socket),
            font_size=to_int(request.query.get("fontsize", "16"), 16),
        )
        return web.Response(text=page, content_type="text/html")

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=15)
        await socket.prepare(request)
        query = request.query
        width = to_int(query.get("width", query.get("?width", "80")), 80)
        height = to_int(query.get("height", "24"), 24)
        session = DashboardSession(
            self.argv,
            write_bytes=socket.send_bytes,
            write_str=socket.send_str,
            close=socket.close,
            grace_s=self.grace_s,
        )
        self.sessions.add(session)
        try:
            await session.start(width, height)
            self.say(f"a browser connected: dashboard pid {session.pid}")
            await self._process_messages(socket, session)
        finally:
            await session.close()
            self.sessions.discard(session)
            self.say(f"the browser left: dashboard pid {session.pid} ended")
        return socket


def _say(text: str) -> None:
    print(text, flush=True)  # at once, also when the output is a pipe or a log file


def dashboard_argv(root: Path) -> list[str]:
    """The command each browser's dashboard runs: this interpreter's ``shoemaker tui``."""
    return [sys.executable, "-m", "shoemaker", "-C", str(root), "tui"]


async def serve(server: WebServer, host: str, port: int, started: Callable[[int], None]) -> None:
    """Listen on ``host``:``port`` until SIGINT or SIGTERM; ``started`` gets the bound port.
    Returns once every dashboard has ended."""
    runner = web.AppRunner(await server._make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise BadInput(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another --host or --port"
            ) from None
        bound: Any = runner.addresses[0]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        started(int(bound[1]))
        await stop.wait()
        server.say(f"stopping: ending {len(server.sessions)} dashboard(s)")
    finally:
        await runner.cleanup()  # on_shutdown ends the dashboards
