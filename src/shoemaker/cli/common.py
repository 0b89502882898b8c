"""What every command needs: the project it acts on, its current generation, running a
coroutine under SIGINT/SIGTERM, and the event stream wired to the terminal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoemaker.cli.output import _console
from shoemaker.errors import BadInput

if TYPE_CHECKING:
    from rich.console import Console

    from shoemaker.engine.project import Project
    from shoemaker.model import Generation


class CliError(BadInput):
    """Bad input found by the command line itself: a message, exit code 2."""


def _open_project(args: argparse.Namespace) -> Project:
    from shoemaker.engine.project import Project

    return Project.open(Path(args.directory))


def _current(project: Project) -> Generation:
    """The generation commands act on; none is bad input (exit 2) with what to do."""
    from shoemaker.engine.generation import current_generation

    return current_generation(project)


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro``; SIGINT/SIGTERM cancel it so agents are stopped and the store stays sane."""
    # Here, not at the top: asyncio is most of the import time of a command that needs none.
    import asyncio
    import signal

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        got: list[int] = []

        def stop(signum: int) -> None:
            got.append(signum)
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        try:
            return await coro
        except asyncio.CancelledError:
            if got:
                print(
                    f"shoemaker: interrupted by {signal.Signals(got[0]).name}; agents stopped",
                    file=sys.stderr,
                )
                return 128 + got[0]
            raise

    return asyncio.run(main())


def _attach_output(project: Project, events: str, show_agent: bool) -> Console:
    """Wire the event stream to the terminal; returns the console for human messages."""
    from shoemaker.headless import NdjsonPrinter, StoryPrinter

    if events == "ndjson":
        project.bus.add_listener(NdjsonPrinter(sys.stdout))
        return _console(stderr=True)
    console = _console()
    if events == "story":
        project.bus.add_listener(StoryPrinter(console, show_agent=show_agent))
    return console
