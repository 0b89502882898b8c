"""The engine: measure+stitch cycles for one generation, with a pool of async workers.

A cycle measures once, then stitches until no task is ready and none is running; tasks that
become ready when their dependencies merge run in the same cycle. ``run`` first recovers what a
dead process left (``recovery``), then stops after the requested number of cycles, when measure
leaves no task ready, when ``max_tasks`` tasks are done, or after ``stall_cycles`` cycles in a
row that changed no line. Pausing (here, or ``shoemaker pause`` through the store) lets running
tasks finish and starts no new ones.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from shoemaker.clock import utc
from shoemaker.engine.admission import Admission
from shoemaker.engine.budgets import budget_crossing, budget_pause_reason, cancel_at_work
from shoemaker.engine.doctor import preflight
from shoemaker.engine.durations import Durations
from shoemaker.engine.generation import HAND_PAUSES, current_generation
from shoemaker.engine.graph import launch_order
from shoemaker.engine.measure import MeasureRateLimited, measure, measure_once
from shoemaker.engine.plans import plan_starts, refuse_waiting_plans, settle_plans
from shoemaker.engine.project import Project, RunLock, run_lock_holder
from shoemaker.engine.rate_limits import RateLimits
from shoemaker.engine.recovery import RecoveryReport, check_main_checkout, recover
from shoemaker.engine.remote import ClusterGone
from shoemaker.engine.retry import sent_back
from shoemaker.engine.selection import Selection
from shoemaker.engine.stitch import EngineError, Stitcher, StitchOutcome
from shoemaker.errors import GenerationError
from shoemaker.events import (
    AgentFinished,
    CycleFinished,
    Event,
    MetricsRecorded,
    Notice,
    TaskStateChanged,
)
from shoemaker.model import TERMINAL_TASK_STATES, Generation, GenerationState, Task, TaskState
from shoemaker.sources.importer import import_configured


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle did; ``idle``: measure left no task ready, so there was nothing to do."""

    merged: int
    failed: int
    loc: int
    idle: bool


@dataclass
class RunReport:
    """What one ``run`` did."""

    generation: str
    cycles: int = 0
    merged: int = 0
    failed: int = 0
    stopped_because: str = ""
    outcomes: list[StitchOutcome] = field(default_factory=list)
    budget: str = ""
    """The budget whose crossing paused the generation and ended the run, if one did."""


class Engine:
    """Drives one project's generation. The dashboard and the CLI both use this class."""

    def __init__(self, project: Project, max_parallel: int | None = None) -> None:
        self.project = project
        self.max_parallel = max_parallel or project.config.max_parallel
        self._pause = asyncio.Event()
        self._stitchers: dict[str, Stitcher] = {}
        self.recovery = RecoveryReport()
        self._cycle_started: float | None = None
        self.admission = Admission(project)
        # Set by each agent result, so the stitch loop checks the budgets at once.
        self._spent = asyncio.Event()
        self._budget_reason = ""
        # What merged tasks took, so that the launch order's critical path weighs tasks by
        # their expected duration rather than counting them.
        self.durations = Durations(project.config.estimate.similar)
        # The provider's rate limits met during this run (engine/rate_limits.py).
        self.limits: RateLimits | None = None
        self._woken = asyncio.Event()  # see _learn

    def _on_event(self, event: Event) -> None:
        if isinstance(event, AgentFinished):
            self._spent.set()

    def _learn(self, event: Event) -> None:
        if isinstance(event, MetricsRecorded):
            self.durations.learn(event.task_id, event.duration_s)
        elif isinstance(event, TaskStateChanged) and sent_back(event.old, event.new):
            self._woken.set()  # a person sent a task back to ready: list the tasks again

    def stitcher(self, gen: Generation) -> Stitcher:
        """The generation's stitcher: its worktree pool and merge queue last the whole run."""
        if gen.name not in self._stitchers:
            self._stitchers[gen.name] = Stitcher(self.project, gen)
        stitcher = self._stitchers[gen.name]
        stitcher.limits = self.rate_limits(gen)
        return stitcher

    def rate_limits(self, gen: Generation) -> RateLimits:
        """The rate limits this run is under (one generation per run)."""
        if self.limits is None or self.limits.generation != gen.name:
            self.limits = RateLimits(self.project, gen.name)
        return self.limits

    async def close(self) -> None:
        """Remove the idle worktrees of the pool (nothing is left behind after a run)."""
        for stitcher in self._stitchers.values():
            await asyncio.to_thread(stitcher.pool.close)
            await stitcher.place.close()
        self._stitchers.clear()

    def pause(self) -> None:
        """Running tasks finish; no new task starts; ``run`` returns when they are done."""
        self._pause.set()

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    def _set_state(self, gen: Generation, state: GenerationState, reason: str) -> None:
        self.project.store.set_generation_state(gen.name, state, reason)

    async def run(self, cycles: int | None = None, selection: Selection | None = None) -> RunReport:
        """Run up to ``cycles`` measure+stitch cycles (default: configuration.cycles).

        First, recovery: whatever an earlier process left unfinished is reconciled with git.
        """
        project = self.project
        gen = await asyncio.to_thread(current_generation, project)
        lock = RunLock(project)
        if not await asyncio.to_thread(lock.acquire):
            holder = run_lock_holder(project.state_dir) or "another shoemaker process"
            raise GenerationError(
                f"{holder} is running generation {gen.name}; wait for it, or "
                "follow it with `shoemaker tui --attach`"
            )
        project.bus.add_listener(self._on_event)
        try:
            # Before anything is paid for: merges must be able to land, and a person's own
            # merge or staged files are never undone.
            await asyncio.to_thread(check_main_checkout, project, gen)
            await asyncio.to_thread(preflight, project)
            await asyncio.to_thread(refuse_waiting_plans, project, gen)
            if selection is not None:
                selection.check(await self.admission.tasks(gen))
            self.admission.selection = selection
            self.recovery = await asyncio.to_thread(recover, project, gen, True)
            return await self._run(gen, cycles)
        finally:
            project.bus.remove_listener(self._on_event)
            lock.release()

    async def _run(self, gen: Generation, cycles: int | None) -> RunReport:
        cfg = self.project.config
        limit = cycles or cfg.cycles
        report = RunReport(gen.name)
        self._pause.clear()
        self._budget_reason = ""
        self._set_state(gen, GenerationState.RUNNING, f"run: up to {limit} cycles")
        limits = self.rate_limits(gen)
        # As read when the run began (no store call more): an earlier run's reset time.
        await limits.restore(gen.rate_limited_until)
        final, why = GenerationState.ACTIVE, f"{limit} cycle(s) done"
        stalled = 0
        try:
            for task_id, merge in self.recovery.landed.items():
                # A dead process landed these merges but never ran their post-merge gates.
                outcome = await self.stitcher(gen).settle_landed(task_id, merge)
                report.outcomes.append(outcome)
                report.merged += outcome.state == TaskState.DONE
            for n in range(limit):
                self._cycle_started = None
                # The store was just asked (the check that ended the last cycle) or just
                # written (the state set above), unless landed merges were settled since.
                settled = n == 0 and bool(self.recovery.landed)
                if limits.holding and not await self._wait_reset(gen):
                    final, why = GenerationState.PAUSED, self._paused_because()
                    break
                if await self._should_pause(gen, ask_store=settled) or await self._over_budget(gen):
                    final, why = GenerationState.PAUSED, self._paused_because()
                    break
                if cfg.max_tasks and self.admission.left(await self.admission.tasks(gen)) == 0:
                    why = f"max_tasks reached ({cfg.max_tasks} tasks done)"
                    break
                if self.admission.batch_spent():
                    why = f"max_tasks reached ({len(self.admission.started)} task(s) started)"
                    break
                cycle = await self._cycle(gen, report)
                report.merged += cycle.merged
                report.failed += cycle.failed
                stalled = stalled + 1 if cycle.loc == 0 else 0
                if await self._should_pause(gen):
                    final, why = GenerationState.PAUSED, self._paused_because()
                    break
                if cycle.idle:
                    why = "no ready task left"
                    break
                if cfg.stall_cycles and stalled >= cfg.stall_cycles:
                    why = f"{stalled} cycle(s) in a row changed no line"
                    break
        except asyncio.CancelledError:
            await asyncio.shield(self._interrupted(gen))
            raise
        except ClusterGone as exc:
            # Its running tasks are back to ready; the run resumes once the cluster is back.
            final, why = GenerationState.PAUSED, str(exc)
            self.project.bus.emit(Notice(generation=gen.name, level="error", message=why))
        except BaseException as exc:
            await asyncio.shield(self.close())
            self._set_state(gen, GenerationState.ACTIVE, f"run stopped: {exc}")
            raise
        await self.close()
        report.stopped_because = why
        if final == GenerationState.PAUSED:
            report.budget = self._budget_reason
        self._set_state(gen, final, why)  # the reason stays on the generation's row
        return report

    def _paused_because(self) -> str:
        if self._budget_reason:
            return budget_pause_reason(self._budget_reason)
        return HAND_PAUSES[1]  # the dashboard's key; a batch's own pause is undone by the batch

    async def _over_budget(self, gen: Generation, task_ids: list[int] | None = None) -> bool:
        """Check every configured budget; the first one reached pauses the generation."""
        if self._pause.is_set():
            return self._budget_reason != ""
        reason = await budget_crossing(self.project, gen.name, self._cycle_started, task_ids)
        if reason is None:
            return False
        self._budget_reason = reason
        self._pause.set()
        return True

    async def _should_pause(self, gen: Generation, ask_store: bool = True) -> bool:
        """Paused here (the dashboard) or asked to by ``shoemaker pause`` through the store
        (not asked with ``ask_store=False``: a caller that has just asked)."""
        if ask_store and not self._pause.is_set():
            current = await asyncio.to_thread(self.project.store.get_generation, gen.name)
            if current.state == GenerationState.PAUSED:
                self._pause.set()
                self.project.bus.emit(
                    Notice(generation=gen.name, message="pause requested: no new task starts")
                )
        return self._pause.is_set()

    async def _wait_reset(self, gen: Generation) -> bool:
        """Wait for a rate limit's reset time (no agent runs meanwhile); False when the
        generation was paused instead (here, or through the store by ``shoemaker pause``)."""
        assert self.limits is not None
        if await self._should_pause(gen):
            return False
        return await self.limits.wait_reset(self._pause, lambda: self._should_pause(gen))

    async def _interrupted(self, gen: Generation) -> None:
        await self.close()
        limits = self.limits
        reason = "interrupted"
        if limits is not None and limits.rejected_until is not None:
            # The reset time stays on the row: the next run waits for it first.
            reason = f"interrupted while rate limited until {utc(limits.rejected_until)}"
        await asyncio.to_thread(self._set_state, gen, GenerationState.PAUSED, reason)

    async def measure_once(self) -> list[Task]:
        """One measure call on the current generation, outside of a run."""
        return await measure_once(self.project)

    async def _cycle(self, gen: Generation, report: RunReport) -> CycleReport:
        project = self.project
        cycle = await asyncio.to_thread(project.store.next_cycle, gen.name, True)
        self._cycle_started = time.time()
        report.cycles += 1
        before = await asyncio.to_thread(project.store.generation_totals, gen.name)
        if project.config.plan_sources:
            # Read every cycle: a person may add or edit a plan file while the generation runs.
            await asyncio.to_thread(import_configured, project, gen)
        measures = (
            self.admission.selection is None
            and not project.config.require_approval
            and project.config.measure == "agent"
        )
        if measures and not await self._measure(gen, cycle):
            return CycleReport(0, 0, 0, idle=False)  # paused while rate limited
        tasks = await self.admission.tasks(gen)
        ready = [t for t in tasks if self.admission.may_start(t)]
        outcomes = await self.stitch_ready(gen, tasks) if ready else []
        if self.admission.planned:
            await asyncio.to_thread(settle_plans, project, gen)
        report.outcomes.extend(outcomes)
        merged = sum(1 for o in outcomes if o.state == TaskState.DONE and o.reason == "merged")
        failed = sum(1 for o in outcomes if o.state in (TaskState.FAILED, TaskState.CONFLICT))
        after = await asyncio.to_thread(project.store.generation_totals, gen.name)
        loc = after.insertions - before.insertions + after.deletions - before.deletions
        project.bus.emit(
            CycleFinished(
                generation=gen.name, cycle=cycle, merged=merged, failed=failed, loc_delta=loc
            )
        )
        if not ready:
            project.bus.emit(Notice(generation=gen.name, message="no task was ready to stitch"))
        return CycleReport(merged, failed, loc, idle=not ready)

    async def _measure(self, gen: Generation, cycle: int) -> bool:
        """measure, again after the reset each time the provider refuses it; False when
        the generation was paused while it waited."""
        limits = self.rate_limits(gen)
        while True:
            try:
                await measure(self.project, gen, cycle, self.stitcher(gen).pool)
                return True
            except MeasureRateLimited as refused:
                limits.observe(refused.limit, None, refused.run_id)
                if not await self._wait_reset(gen):
                    return False

    async def stitch_ready(
        self, gen: Generation, tasks: list[Task] | None = None
    ) -> list[StitchOutcome]:
        """Stitch ready tasks until none is left, with at most ``max_parallel`` agents at once.

        A slot is taken for a task's worktree, agent and gates and given back before its merge
        (or once its agent has exited, when no gate runs in its worktree): a task waiting in
        the merge queue, or for its commit, does not keep another agent from starting.
        ``tasks``: the generation's tasks, when the caller has just listed them.

        The tasks are listed again when a task has ended and may start again or others may
        now be ready (the last listing had unfinished ones besides those running). A slot
        freed by a task gone on to its merge asks the store nothing: it goes to the next task
        of the last listing, if any was left (a claim checks that its task is still ready).
        """
        stitcher = self.stitcher(gen)
        limits = self.rate_limits(gen)
        running: dict[asyncio.Task[StitchOutcome], int] = {}
        outcomes: list[StitchOutcome] = []
        slots = [self.max_parallel]
        freed = asyncio.Event()
        # Whether a listing may find a task to start: at first, after a task ended, or when
        # the last listing had more to start than there were slots.
        pending = True
        # Whether the last listing had a task, other than those running, that is not finished
        # (one a merge may make ready, say): only then can a task's end make another startable.
        waiting = True

        def release() -> None:
            slots[0] += 1
            freed.set()

        def free() -> int:
            # Slots in use are max_parallel - slots[0]; a rate-limit warning lowers the cap.
            return limits.parallel(self.max_parallel) - (self.max_parallel - slots[0])

        self.project.bus.add_listener(self._learn)
        try:
            while True:
                if self._spent.is_set():
                    self._spent.clear()
                    if await self._over_budget(gen, list(running.values())):
                        await cancel_at_work(self.project, gen.name, running)
                if limits.changed.is_set() or self._woken.is_set():
                    limits.changed.clear()
                    self._woken.clear()
                    tasks, pending = None, True  # a limit began or lapsed, a task was retried
                if limits.holding and not running:
                    # Every agent is back: wait for the reset, then start them again.
                    if not await self._wait_reset(gen):
                        break
                    tasks, pending = None, True  # a listing from before the wait is stale
                if free() > 0 and not self.paused and pending and not limits.holding:
                    busy = set(running.values())
                    listed = tasks if tasks is not None else await self.admission.tasks(gen)
                    pending = False
                    left = self.admission.left(listed, len(running))
                    order = launch_order(listed, self.durations.expected(listed))
                    candidates = [
                        t for t in order if t.id not in busy and self.admission.may_start(t)
                    ]
                    if candidates and await self._should_pause(gen):
                        candidates = []
                    if candidates and await self._over_budget(
                        gen, [t.id for t in candidates[: free()]]
                    ):
                        await cancel_at_work(self.project, gen.name, running)
                        candidates = []
                    for task in candidates:
                        if (
                            free() <= 0
                            or limits.holding
                            or (left == 0 and not self.admission.restarts(task))
                        ):
                            pending = True
                            break
                        if task.plan_id is not None and not await asyncio.to_thread(
                            plan_starts, self.project, task.plan_id
                        ):
                            continue  # its plan was rejected since the listing
                        slots[0] -= 1
                        if not self.admission.restarts(task):
                            left = None if left is None else left - 1
                        self.admission.note_started(task)
                        worker = asyncio.create_task(
                            stitcher.stitch(task, release), name=f"stitch-{task.id}"
                        )
                        running[worker] = task.id
                    started = set(running.values())
                    waiting = any(
                        t.state not in TERMINAL_TASK_STATES and t.id not in started for t in listed
                    )
                    tasks = listed if pending else None  # the rest waits for a slot
                if not running:
                    break
                freed.clear()
                wakes = (freed, self._spent, limits.changed, self._woken)
                waiters: list[asyncio.Task[object]] = [
                    *(asyncio.create_task(wake.wait()) for wake in wakes),
                    asyncio.create_task(limits.warning_lapses()),
                ]
                done, _ = await asyncio.wait(
                    [*running, *waiters], return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in waiters:
                    waiter.cancel()
                for worker in running.copy():
                    if worker in done:
                        running.pop(worker)
                        outcome = worker.result()  # an EngineError propagates from here
                        outcomes.append(outcome)
                        tasks = None  # it may start again, or have made others ready
                        if waiting or outcome.state not in TERMINAL_TASK_STATES:
                            pending = True
        except BaseException:
            for worker in running:
                worker.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        finally:
            self.project.bus.remove_listener(self._learn)
        return outcomes


__all__ = ["Engine", "EngineError", "RunReport", "Selection"]
