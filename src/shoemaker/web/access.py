"""Who may reach the web view: anyone on this machine when it listens on loopback only,
anyone holding the token when it listens beyond.

The dashboard served is read-write (it starts and stops runs), so even on loopback two doors
stay shut: a page of another site open in the same browser cannot drive the websocket
(browsers send ``Origin`` with every websocket handshake and it must name this server), and a
name that resolves to 127.0.0.1 (DNS rebinding) cannot reach it (``Host`` must be a loopback
address or ``localhost``).
"""

from __future__ import annotations

import ipaddress
import secrets
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

#: The query parameter that carries the token (a header cannot be set on a browser's
#: websocket or on the page's own script and style requests).
TOKEN_PARAM = "token"


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server on this machine (a name other than
    ``localhost`` is taken as reaching beyond: it may resolve to anything)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def presented_token(request: web.Request) -> str | None:
    """The token a request carries: ``Authorization: Bearer …``, else ``?token=``."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get(TOKEN_PARAM)


def guard(token: str | None) -> Middleware:
    """The middleware that refuses what may not pass: without ``token`` (loopback), a foreign
    ``Host`` or websocket ``Origin``; with it, any request that does not carry it (401 when
    none is given, 403 when another is)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None:
            if not is_loopback(request.url.host or ""):
                raise web.HTTPForbidden(text="this server answers loopback names only\n")
        else:
            given = presented_token(request)
            if given is None:
                raise web.HTTPUnauthorized(
                    text="a token is needed: ?token=… or Authorization: Bearer …\n",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if not secrets.compare_digest(given.encode(), token.encode()):
                raise web.HTTPForbidden(text="wrong token\n")
        origin = request.headers.get("Origin")
        if request.path == "/ws" and origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="a websocket from another origin\n")
        return await handler(request)

    return middleware
