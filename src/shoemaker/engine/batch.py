"""One scheduled batch: a run of the engine within a schedule's limits.

A batch starts no more than ``max_tasks`` tasks; at ``max_duration`` it starts nothing new
and lets running agents finish, and after ``grace`` more it stops them (the engine's
cancellation keeps their work on their branches and puts the tasks back to ready). It does not
start while another run holds the run lock, and it never resumes a generation that a budget
or a person paused. Whatever happens, it ends with one :class:`~shoemaker.events.BatchFinished`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

from shoemaker.config.schedules import ScheduleConfig
from shoemaker.engine.budgets import paused_by_budget
from shoemaker.engine.cron import Clock, SystemClock
from shoemaker.engine.engine import Engine, RunReport
from shoemaker.engine.generation import (
    current_generation,
    paused_by_hand,
    refuse_dirty,
    start_generation,
)
from shoemaker.engine.project import Project, run_lock_holder
from shoemaker.engine.schedule_state import record_batch
from shoemaker.errors import EXIT_BUDGET, EXIT_FAILED, ShoemakerError
from shoemaker.events import BatchFinished, Notice, NoticeLevel
from shoemaker.model import Generation, GenerationState, TaskState

_FAILED_STATES = (TaskState.FAILED, TaskState.CONFLICT)


class BatchSkipped(Exception):
    """The batch must not start; the message says why."""


@dataclass
class BatchResult:
    """What a batch did: its event, and the exit code ``shoemaker schedule run`` returns."""

    event: BatchFinished
    exit_code: int = 0


def duration_text(seconds: float) -> str:
    """``1h30m``, ``90s``: a duration as a schedule writes it."""
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return text or "0s"


def _counts(project: Project, generation: str) -> tuple[int, int]:
    tasks = project.store.list_tasks(generation)
    done = sum(1 for t in tasks if t.state == TaskState.DONE)
    return done, sum(1 for t in tasks if t.state in _FAILED_STATES)


class Batch:
    """A schedule's batch on one project, on ``clock`` (the system's unless a test moves
    time itself)."""

    def __init__(
        self, project: Project, schedule: ScheduleConfig, clock: Clock | None = None
    ) -> None:
        self.project = project
        self.schedule = schedule
        self.clock = clock or SystemClock()
        self.engine = Engine(project)
        self.engine.admission.start_limit = schedule.max_tasks or None
        self._limit = ""

    async def run(self) -> BatchResult:
        """Run the batch to its end; the result's event is emitted and recorded."""
        project, schedule = self.project, self.schedule
        started = self.clock.now()
        gen: Generation | None = None
        before = (0, 0)
        exit_code = 0
        try:
            gen = await asyncio.to_thread(self._generation)
            before = await asyncio.to_thread(_counts, project, gen.name)
            self._say(gen, f"batch {schedule.name} starts on generation {gen.name}{self._limits()}")
            report = await self._run_engine()
        except BatchSkipped as exc:
            outcome, reason = "skipped", str(exc)
        except ShoemakerError as exc:
            if gen is not None and "is running generation" in str(exc):
                # Another run took the lock since it was looked at.
                outcome, reason = "skipped", f"another run is in progress: {exc}"
            else:
                outcome, reason, exit_code = "failed", str(exc), exc.exit_code
        except asyncio.CancelledError:
            await asyncio.shield(self._finish(gen, "failed", "interrupted", started, before))
            raise
        except Exception as exc:  # a batch's failure is reported; the daemon goes on
            outcome, reason, exit_code = "failed", f"{type(exc).__name__}: {exc}", EXIT_FAILED
        else:
            outcome, reason = "finished", self._why(report)
            # As `shoemaker run` ends: a budget's pause is said apart from a failure.
            exit_code = EXIT_BUDGET if report.budget else EXIT_FAILED if report.failed else 0
        event = await self._finish(gen, outcome, reason, started, before)
        return BatchResult(event, exit_code)

    def _limits(self) -> str:
        s = self.schedule
        parts = [f"{s.cycles} cycle(s)"]
        if s.max_tasks:
            parts.append(f"max_tasks {s.max_tasks}")
        if s.max_duration:
            parts.append(
                f"max_duration {duration_text(s.max_duration)} (+{duration_text(s.grace)} grace)"
            )
        return ": " + ", ".join(parts)

    def _say(self, gen: Generation | None, message: str, level: NoticeLevel = "info") -> None:
        self.project.bus.emit(
            Notice(generation=gen.name if gen else None, message=message, level=level)
        )

    def _generation(self) -> Generation:
        """The generation the batch works on; refuses (skips) while another run holds the
        lock, a budget paused it or a person did."""
        project = self.project
        holder = run_lock_holder(project.state_dir)
        if holder is not None:
            raise BatchSkipped(f"another run is in progress ({holder})")
        if self.schedule.generation == "new":
            return self._new_generation()
        gen = current_generation(project)
        if gen.state == GenerationState.PAUSED and paused_by_budget(gen.reason):
            raise BatchSkipped(
                f"generation {gen.name} is {gen.reason}: a batch does not resume it; raise the "
                "budget in configuration.yaml and `shoemaker resume`, or start a new generation"
            )
        if paused_by_hand(gen):
            raise BatchSkipped(
                f"generation {gen.name} was paused by hand: a batch does not resume it; "
                "`shoemaker resume` goes on"
            )
        return gen

    def _new_generation(self) -> Generation:
        """A new generation from the base branch: when a generation's branch is checked
        out (as it is after a run), its base is checked out first (a clean tree only)."""
        project = self.project
        head = project.git.current_branch()
        for gen in project.store.open_generations():
            if gen.branch == head:
                refuse_dirty(project, f"start batch {self.schedule.name}'s new generation")
                project.git.checkout(gen.base_branch)
                break
        stamp = datetime.fromtimestamp(int(self.clock.now()))
        return start_generation(project, f"{self.schedule.name}-{stamp:%Y%m%d-%H%M%S}")

    async def _run_engine(self) -> RunReport:
        run = asyncio.create_task(self.engine.run(self.schedule.cycles), name="batch-run")
        watch = (
            asyncio.create_task(self._watch_duration(run), name="batch-clock")
            if self.schedule.max_duration
            else None
        )
        try:
            return await run
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._limit and task is not None and not task.cancelling():
                # The grace ran out: the engine stopped the agents, their work kept.
                return RunReport(generation="", stopped_because=self._limit)
            raise
        finally:
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch

    async def _watch_duration(self, run: asyncio.Task[RunReport]) -> None:
        s = self.schedule
        start = self.clock.now()
        await self.clock.sleep_until(start + s.max_duration)
        self._limit = f"max_duration reached ({duration_text(s.max_duration)})"
        self.engine.pause()
        self._say(
            None,
            f"batch {s.name}: {self._limit}; no new task starts, running agents have "
            f"{duration_text(s.grace)} to finish",
        )
        await self.clock.sleep_until(start + s.max_duration + s.grace)
        self._limit += f"; running agents stopped after the {duration_text(s.grace)} grace"
        run.cancel()

    def _why(self, report: RunReport) -> str:
        if report.budget:
            return f"a budget paused the generation ({report.budget})"
        if self._limit:
            return self._limit
        if self.engine.admission.batch_spent():
            return f"max_tasks reached ({self.engine.admission.start_limit} task(s) started)"
        return report.stopped_because or "done"

    async def _finish(
        self,
        gen: Generation | None,
        outcome: str,
        reason: str,
        started: float,
        before: tuple[int, int],
    ) -> BatchFinished:
        project = self.project
        done = failed = 0
        if gen is not None:
            after = await asyncio.to_thread(_counts, project, gen.name)
            done, failed = after[0] - before[0], after[1] - before[1]
            await asyncio.to_thread(self._settle_state, gen.name, outcome, reason)
        event = BatchFinished(
            generation=gen.name if gen else None,
            schedule=self.schedule.name,
            outcome=outcome,  # type: ignore[arg-type]
            reason=reason,
            tasks_done=done,
            tasks_failed=failed,
            started=started,
            notify=self.schedule.notify_on_complete,
        )
        project.bus.emit(event)
        await asyncio.to_thread(record_batch, project.state_dir, event)
        return event

    def _settle_state(self, name: str, outcome: str, reason: str) -> None:
        """A batch's own pause (its duration, an interruption) leaves the generation active
        for the next batch; a budget's pause stays."""
        store = self.project.store
        current = store.get_generation(name)
        if (
            outcome != "skipped"
            and current.state == GenerationState.PAUSED
            and not paused_by_budget(current.reason)
            and self._limit
        ):
            store.set_generation_state(
                name, GenerationState.ACTIVE, f"batch {self.schedule.name}: {reason}"
            )
