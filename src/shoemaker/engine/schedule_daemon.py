"""``shoemaker schedule daemon``: fires a repository's scheduled batches, one at a time.

It writes its next fire times to ``.shoemaker/schedules.json`` (the dashboard and
``schedule list`` show them) before each wait, survives a batch that fails, and ends on
SIGINT or SIGTERM: a batch in progress is stopped as a run is (agents stopped, work kept), the
file forgets the daemon, and the process exits. One daemon per repository (a lock file).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import IO

from shoemaker.engine.batch import Batch, BatchResult
from shoemaker.engine.cron import Clock, SystemClock, next_fire, schedule_zone, shown
from shoemaker.engine.project import Project
from shoemaker.engine.schedule_state import clear_daemon, record_daemon
from shoemaker.errors import BadInput
from shoemaker.events import Notice

DAEMON_LOCK_FILE = "schedule-daemon.lock"


class DaemonError(BadInput):
    """The daemon cannot start: no schedule, or another daemon serves the repository."""


class ScheduleDaemon:
    """Fires the project's schedules on ``clock`` until a signal (or cancellation) ends it."""

    def __init__(
        self,
        project: Project,
        clock: Clock | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.project = project
        self.clock = clock or SystemClock()
        self.on_batch = on_batch
        self.batches = 0
        self._lock: IO[str] | None = None

    def plan(self) -> dict[str, float]:
        """Each schedule's next fire time after now (seconds since the epoch)."""
        cfg, now = self.project.config, self.clock.now()
        return {s.name: next_fire(cfg, s, now).timestamp() for s in cfg.schedules}

    def _take_lock(self) -> None:
        if not self.project.config.schedules:
            raise DaemonError(
                "configuration.yaml has no schedules: add one under `schedules:` (see README, "
                "Scheduled batches)"
            )
        handle = (self.project.state_dir / DAEMON_LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read(20).strip() or "another process"
            handle.close()
            raise DaemonError(
                f"a schedule daemon already serves this repository (pid {other}); stop it first"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _drop_lock(self) -> None:
        if self._lock is not None:
            self._lock.truncate(0)
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    async def run(self, signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM)) -> str:
        """Fire batches until one of ``signals`` arrives; returns how it ended, in words.
        Cancelled from outside, it cleans up the same way and lets the cancellation go on."""
        self._take_lock()
        main = asyncio.current_task()
        assert main is not None
        loop = asyncio.get_running_loop()
        got: list[signal.Signals] = []

        def stop(sig: signal.Signals) -> None:
            if not got:
                got.append(sig)
                main.cancel()

        installed = list(signals)
        for sig in installed:
            loop.add_signal_handler(sig, stop, sig)
        try:
            await self._fire_forever()
        except asyncio.CancelledError:
            if not got:
                raise
            main.uncancel()
            return f"stopped by {got[0].name}"
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await asyncio.to_thread(clear_daemon, self.project.state_dir, os.getpid())
            self._drop_lock()
        return "ended"  # pragma: no cover - the loop ends only by cancellation

    async def _fire_forever(self) -> None:
        project = self.project
        while True:
            plan = self.plan()
            await asyncio.to_thread(
                record_daemon, project.state_dir, os.getpid(), plan, self.clock.now()
            )
            first = min(plan, key=lambda name: plan[name])
            project.bus.emit(
                Notice(message=f"schedule daemon: next {first} at {self._at(first, plan[first])}")
            )
            await self.clock.sleep_until(plan[first])
            now = self.clock.now()
            due = sorted((when, name) for name, when in plan.items() if when <= now)
            for _, name in due:
                await self._fire(name)

    def _at(self, name: str, when: float) -> str:
        schedule = next(s for s in self.project.config.schedules if s.name == name)
        return shown(datetime.fromtimestamp(when, schedule_zone(self.project.config, schedule)))

    async def _fire(self, name: str) -> None:
        schedule = next(s for s in self.project.config.schedules if s.name == name)
        try:
            result = await Batch(self.project, schedule, self.clock).run()
        except Exception as exc:  # the daemon outlives any one batch
            self.project.bus.emit(
                Notice(level="error", message=f"batch {name} failed: {type(exc).__name__}: {exc}")
            )
            return
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(result)
