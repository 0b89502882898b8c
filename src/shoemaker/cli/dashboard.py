"""``tui``: the dashboard, live or attached to a run another process drives."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shoemaker.cli.splash import splash

if TYPE_CHECKING:
    from shoemaker.tui.app import ShoemakerApp


def open_dashboard(
    directory: Path, *, attach: bool = False, demo: bool = False, parallel: int | None = None
) -> ShoemakerApp:
    """The dashboard for ``directory``, built while a splash shows on the terminal (Textual and
    the engine are imported only now)."""
    with splash(sys.stdout, f"opening {directory}…"):
        from shoemaker.tui.app import make_app

        return make_app(
            directory, mode="attach" if attach else "live", demo=demo, parallel=parallel
        )


def _dashboard(
    directory: Path, *, attach: bool = False, demo: bool = False, parallel: int | None = None
) -> int:
    app = open_dashboard(directory, attach=attach, demo=demo, parallel=parallel)
    app.run()
    return app.return_code or 0


def cmd_tui(args: argparse.Namespace) -> int:
    return _dashboard(Path(args.directory), attach=args.attach, parallel=args.parallel)
