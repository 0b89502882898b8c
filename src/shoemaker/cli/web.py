"""``web``: the dashboard in a browser (``shoemaker.web``), loopback by default, behind a
token beyond."""

from __future__ import annotations

import argparse

from shoemaker.cli.common import CliError, _open_project


def cmd_web(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port}: give a port from 1 to 65535 (0: any free port)")
    import asyncio

    from shoemaker.web.access import is_loopback, new_token
    from shoemaker.web.server import WebServer, dashboard_argv, serve

    host = args.host.strip("[]")  # an IPv6 address may come in its URL brackets
    project = _open_project(args)
    token = None if is_loopback(host) else new_token()
    server = WebServer(
        dashboard_argv(project.root),
        project.store,
        title=f"shoemaker — {project.root.name}",
        token=token,
    )

    def started(port: int) -> None:
        where = f"[{host}]" if ":" in host else host
        if token is None:
            print(f"shoemaker web: the dashboard of {project.root} on http://{where}:{port}/")
            print("  loopback only: no token needed; JSON status at /api/status")
        else:
            print(f"shoemaker web: the dashboard of {project.root} on http://{where}:{port}/")
            print(f"  {host} is reachable from other machines: every request needs the token")
            print(f"  open http://{where}:{port}/?token={token}")
            print(
                "  (or send `Authorization: Bearer <token>`; requests without it are refused);"
                " JSON status at /api/status"
            )
        print("  ctrl+c stops it and every dashboard it opened", flush=True)

    asyncio.run(serve(server, host, args.port, started))
    print("shoemaker web: stopped", flush=True)
    return 0
