"""One browser's dashboard: a ``shoemaker tui`` process that textual-serve's AppService speaks
to, started in a process group of its own and ended with it.

textual-serve starts the app through a shell and, when the browser goes, only asks it to quit:
an app that does not (or a server shut down meanwhile) stays running. Here the app is started
without a shell, in a new session, and ``close`` escalates until nothing of that group lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
from asyncio.subprocess import PIPE, Process
from collections.abc import Awaitable, Callable

from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

from shoemaker.agents.process_group import LIVE_GROUPS, signal_group


class DashboardSession(AppService):
    """textual-serve's AppService for ``argv``, ended by ``close``: quit as the dashboard's own
    ``q`` would (running agents stopped, their work kept), then SIGTERM and SIGKILL to its
    group, each after ``grace_s``."""

    def __init__(
        self,
        argv: list[str],
        *,
        write_bytes: Callable[[bytes], Awaitable[None]],
        write_str: Callable[[str], Awaitable[None]],
        close: Callable[[], Awaitable[object]],
        grace_s: float,
    ) -> None:
        super().__init__(
            shlex.join(argv),
            write_bytes=write_bytes,
            write_str=write_str,
            close=close,  # type: ignore[arg-type]  # what it returns (aiohttp: a bool) is unused
            download_manager=DownloadManager(),
        )
        self.argv = argv
        self.grace_s = grace_s
        self._closing: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The app process's pid (also its process group's id), once started."""
        return self._process.pid if self._process is not None else None

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        # Overrides textual-serve's, which runs the command through a shell in its own group.
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
            env=self._build_environment(width=width, height=height),
            start_new_session=True,
        )
        LIVE_GROUPS.add(process.pid)  # killed at interpreter exit whatever happens here
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def close(self) -> None:
        """End the app and everything in its group; safe to call more than once, and from a
        handler being cancelled (the ending itself is not cancelled). Before the app has
        started there is nothing to end: the handler that starts it closes it later."""
        if self._process is None:
            return
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._end())
        await asyncio.shield(self._closing)

    async def _end(self) -> None:
        process = self._process
        assert process is not None
        if process.returncode is None:
            await self.send_meta({"type": "quit"})
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), self.grace_s)
                break
            signal_group(process.pid, sig)
        await process.wait()
        # Whatever the app started in its group and left behind (agents have groups of their
        # own, which the app's quit has stopped).
        signal_group(process.pid, signal.SIGKILL)
        LIVE_GROUPS.discard(process.pid)
        if self._task is not None:
            # The reader ends at end of output; a grandchild that kept the pipe is dead now.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, self.grace_s)
            self._task.cancel()
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        with contextlib.suppress(Exception):
            await self.remote_close()
