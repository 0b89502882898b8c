"""``tui``: the dashboard, live or attached to a run another process drives."""

from __future__ import annotations

import argparse
from pathlib import Path


def _dashboard(
    directory: Path, *, attach: bool = False, demo: bool = False, parallel: int | None = None
) -> int:
    from shoemaker.tui.app import make_app

    app = make_app(directory, mode="attach" if attach else "live", demo=demo, parallel=parallel)
    app.run()
    return app.return_code or 0


def cmd_tui(args: argparse.Namespace) -> int:
    return _dashboard(Path(args.directory), attach=args.attach, parallel=args.parallel)
