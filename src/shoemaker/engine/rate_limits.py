"""A run's answer to the provider's rate limits.

``rejected`` (an agent was refused): the generation goes ``rate_limited`` with the reset time
stored on its row, no agent starts, and once the project's clock reaches the reset time it runs
again by itself; the refused attempts go back to ``ready`` as interrupted, so they do not count
against ``max_retries`` (``Stitcher._rate_limited``). A restarted run finds the reset time on
the row and waits for it first. ``allowed_warning``: agents still start, but at most
``rate_limits.warning_parallel`` at once until the reset time. Each change is an event
(``RateLimited``, ``RateLimitCleared``) for the story, the dashboard and notifications.

Times are the project's clock (``Project.clock``): a test moves it, nobody sleeps for a reset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from shoemaker.agents.ratelimit import RateLimit
from shoemaker.clock import utc as when
from shoemaker.engine.project import Project
from shoemaker.events import RateLimitCleared, RateLimited
from shoemaker.model import GenerationState

#: How often a run waiting for a rate limit's reset asks the store whether it was paused.
PAUSE_POLL_SEC = 5.0


class RateLimits:
    """The rate limit one run of one generation is under: a rejection holds every start until
    ``rejected_until``; a warning caps the agents at once until ``warned_until``."""

    def __init__(self, project: Project, generation: str) -> None:
        self.project = project
        self.generation = generation
        self.rejected_until: float | None = None
        self.warned_until: float | None = None
        self.changed = asyncio.Event()
        """Set when a limit begins or lapses: the stitch loop looks again at what may start."""

    @property
    def holding(self) -> bool:
        """A rejection holds the generation: no agent starts."""
        return self.rejected_until is not None

    async def restore(self, until: float | None) -> None:
        """The reset time an earlier run stored (it stopped or crashed while rate limited),
        as read when this run began: the generation is ``rate_limited`` again until then, or,
        when that time has passed, the limit is cleared."""
        if until is None:
            return
        if until > self.project.clock.now():
            self._reject(until, None, None, f"until {when(until)}, kept from an earlier run")
            return
        await asyncio.to_thread(
            self.project.store.clear_rate_limit,
            self.generation,
            GenerationState.RUNNING,
            "",
            RateLimitCleared(generation=self.generation, status="rejected", resets_at=until),
        )

    def observe(self, fact: RateLimit, task_id: int | None, run_id: int | None) -> float | None:
        """Act on what an agent's stream said; returns the reset time it set, if any."""
        if fact.status == "allowed":
            return None
        cfg = self.project.config.rate_limits
        until = fact.reset_time(self.project.clock.now(), cfg.wait_sec)
        where = f"task #{task_id}" if task_id is not None else "measure"
        if fact.status == "rejected":
            if self.rejected_until is None or until > self.rejected_until:
                reason = f"the provider refused the agent of {where}; resumes at {when(until)}"
                self._reject(until, task_id, run_id, reason)
            return self.rejected_until
        if self.warned_until is None or until > self.warned_until:
            self.warned_until = until
            self.project.bus.emit(
                RateLimited(
                    generation=self.generation,
                    status="allowed_warning",
                    resets_at=until,
                    task_id=task_id,
                    run_id=run_id,
                    parallel=cfg.warning_parallel,
                    reason=(
                        f"the provider warns ({where}): at most {cfg.warning_parallel} "
                        f"agent(s) at once until {when(until)}"
                    ),
                )
            )
            self.changed.set()
        return self.warned_until

    def _reject(self, until: float, task_id: int | None, run_id: int | None, reason: str) -> None:
        self.rejected_until = until
        event = RateLimited(
            generation=self.generation,
            status="rejected",
            resets_at=until,
            task_id=task_id,
            run_id=run_id,
            reason=reason,
        )
        self.project.store.set_rate_limited(self.generation, event)
        self.changed.set()

    def parallel(self, most: int) -> int:
        """How many agents may run at once now: ``most``, or fewer while a warning holds (a
        warning whose reset time has passed is cleared here)."""
        until = self.warned_until
        if until is None:
            return most
        if self.project.clock.now() < until:
            return min(most, self.project.config.rate_limits.warning_parallel)
        self.warned_until = None
        self.project.bus.emit(
            RateLimitCleared(generation=self.generation, status="allowed_warning", resets_at=until)
        )
        return most

    async def warning_lapses(self) -> None:
        """Return when the warning's reset time has come (never, without a warning), with
        ``changed`` set: the stitch loop may start more agents."""
        until = self.warned_until
        if until is None:
            await asyncio.Event().wait()
            return
        await self.project.clock.sleep_until(until)
        self.changed.set()

    async def wait_reset(
        self, stop: asyncio.Event, paused: Callable[[], Awaitable[bool]] | None = None
    ) -> bool:
        """Wait until the rejection's reset time, or until ``stop`` is set (a pause), or
        ``paused`` (asked every ``PAUSE_POLL_SEC``) says the generation was paused elsewhere.
        True when the reset came: the generation runs again (unless a person paused it
        meanwhile) and ``RateLimitCleared`` says so."""
        until = self.rejected_until
        if until is None:
            return True

        async def watch() -> None:
            if paused is None:
                await asyncio.Event().wait()  # nothing to watch: the other two end the wait
            # A reset may be hours away: `shoemaker pause` from another process ends the wait.
            while paused is not None and not await paused():
                await asyncio.sleep(PAUSE_POLL_SEC)

        waits = [
            asyncio.create_task(self.project.clock.sleep_until(until)),
            asyncio.create_task(stop.wait()),
            asyncio.create_task(watch()),
        ]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if waits[0] not in done:
            return False
        self.rejected_until = None
        await asyncio.to_thread(
            self.project.store.clear_rate_limit,
            self.generation,
            GenerationState.RUNNING,
            f"rate limit reset at {when(until)}: running again",
            RateLimitCleared(generation=self.generation, status="rejected", resets_at=until),
        )
        return True
