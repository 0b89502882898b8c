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

from shoemaker.engine.budgets import budget_lines, cancel_at_work, crossed
from shoemaker.engine.doctor import preflight
from shoemaker.engine.durations import Durations
from shoemaker.engine.generation import current_generation
from shoemaker.engine.graph import launch_order
from shoemaker.engine.measure import measure
from shoemaker.engine.plans import plan_starts, refuse_waiting_plans, runnable_plans, settle_plans
from shoemaker.engine.project import Project, RunLock, run_lock_holder
from shoemaker.engine.recovery import RecoveryReport, check_main_checkout, recover
from shoemaker.engine.remote import ClusterGone
from shoemaker.engine.selection import Selection
from shoemaker.engine.stitch import EngineError, Stitcher, StitchOutcome
from shoemaker.errors import GenerationError
from shoemaker.events import (
    AgentFinished,
    BudgetCrossed,
    CycleFinished,
    Event,
    MetricsRecorded,
    Notice,
)
from shoemaker.model import (
    TERMINAL_TASK_STATES,
    Generation,
    GenerationState,
    Task,
    TaskState,
)
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
        self.selection: Selection | None = None
        self._runnable_plans: set[int] = set()
        # Whether a task of a plan was seen this run: only then are plans read and settled.
        self._planned = False
        # Set by each agent result, so the stitch loop checks the budgets at once.
        self._spent = asyncio.Event()
        self._budget_reason = ""
        # What merged tasks took, so that the launch order's critical path weighs tasks by
        # their expected duration rather than counting them.
        self.durations = Durations(project.config.estimate.similar)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, AgentFinished):
            self._spent.set()

    def _learn(self, event: Event) -> None:
        if isinstance(event, MetricsRecorded):
            self.durations.learn(event.task_id, event.duration_s)

    def stitcher(self, gen: Generation) -> Stitcher:
        """The generation's stitcher: its worktree pool and merge queue last the whole run."""
        if gen.name not in self._stitchers:
            self._stitchers[gen.name] = Stitcher(self.project, gen)
        return self._stitchers[gen.name]

    async def close(self) -> None:
        """Remove the idle worktrees of the pool (nothing is left behind after a run)."""
        for stitcher in self._stitchers.values():
            await asyncio.to_thread(stitcher.pool.close)
            if stitcher.remote is not None:
                await stitcher.remote.close()
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
                selection.check(await self._tasks(gen))
            self.selection = selection
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
                if await self._should_pause(gen, ask_store=settled) or await self._over_budget(gen):
                    final, why = GenerationState.PAUSED, self._paused_because()
                    break
                if cfg.max_tasks and self._tasks_left(await self._tasks(gen)) == 0:
                    why = f"max_tasks reached ({cfg.max_tasks} tasks done)"
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

    def _may_start(self, task: Task) -> bool:
        """Ready, selected, and not held by a plan that waits for approval (with
        ``require_approval``, only tasks of an approved plan start)."""
        if task.plan_id is None:
            planned = not self.project.config.require_approval
        else:
            planned = task.plan_id in self._runnable_plans
        return (
            task.state == TaskState.READY
            and planned
            and (self.selection is None or self.selection.allows(task.id))
        )

    def _paused_because(self) -> str:
        return f"paused: {self._budget_reason} reached" if self._budget_reason else "paused"

    async def _tasks(self, gen: Generation) -> list[Task]:
        """The generation's tasks, and (for ``_may_start``) which plans may run now (read only
        when a task belongs to a plan)."""
        tasks = await asyncio.to_thread(self.project.store.list_tasks, gen.name)
        if any(t.plan_id is not None for t in tasks):
            self._planned = True
            self._runnable_plans = await asyncio.to_thread(runnable_plans, self.project, gen)
        return tasks

    def _tasks_left(self, tasks: list[Task], running: int = 0) -> int | None:
        """How many more tasks max_tasks lets this run start (None: no limit)."""
        if not self.project.config.max_tasks:
            return None
        done = sum(1 for t in tasks if t.state == TaskState.DONE)
        return max(0, self.project.config.max_tasks - done - running)

    async def _over_budget(self, gen: Generation, task_ids: list[int] | None = None) -> bool:
        """Check every configured budget; the first one reached pauses the generation."""
        if self._pause.is_set():
            return self._budget_reason != ""
        project = self.project
        lines = await asyncio.to_thread(
            budget_lines, project.store, project.config, gen.name, self._cycle_started, task_ids
        )
        line = crossed(lines)
        if line is None:
            return False
        action = project.config.budgets.on_cross
        message = f"{line.describe()}; the generation pauses" + (
            " and running agents are cancelled" if action == "cancel" else ""
        )
        self._budget_reason = line.describe()
        self._pause.set()
        project.bus.emit(
            BudgetCrossed(
                generation=gen.name,
                scope=line.scope,
                metric=line.metric,
                spent=line.spent,
                limit=line.limit,
                action=action,
                message=message,
            )
        )
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

    async def _interrupted(self, gen: Generation) -> None:
        await self.close()
        await asyncio.to_thread(self._set_state, gen, GenerationState.PAUSED, "interrupted")

    async def measure_once(self) -> list[Task]:
        """One measure call on the current generation, outside of a run."""
        gen = await asyncio.to_thread(current_generation, self.project)
        if self.project.config.require_approval:
            # Its tasks would belong to no plan, and only planned tasks run.
            raise GenerationError(
                "require_approval is on: `shoemaker plan` proposes tasks for approval"
            )
        await asyncio.to_thread(preflight, self.project)
        cycle = await asyncio.to_thread(self.project.store.next_cycle, gen.name)
        return await measure(self.project, gen, cycle)

    async def _cycle(self, gen: Generation, report: RunReport) -> CycleReport:
        project = self.project
        cycle = await asyncio.to_thread(project.store.next_cycle, gen.name, True)
        self._cycle_started = time.time()
        report.cycles += 1
        before = await asyncio.to_thread(project.store.generation_totals, gen.name)
        if project.config.plan_sources:
            # Read every cycle: a person may add or edit a plan file while the generation runs.
            await asyncio.to_thread(import_configured, project, gen)
        if (
            self.selection is None
            and not project.config.require_approval
            and project.config.measure == "agent"
        ):
            await measure(project, gen, cycle, self.stitcher(gen).pool)
        tasks = await self._tasks(gen)
        ready = [t for t in tasks if self._may_start(t)]
        outcomes = await self.stitch_ready(gen, tasks) if ready else []
        if self._planned:
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

    async def stitch_ready(
        self, gen: Generation, tasks: list[Task] | None = None
    ) -> list[StitchOutcome]:
        """Stitch ready tasks until none is left, with at most ``max_parallel`` agents at once.

        A slot is taken for a task's worktree, agent and gates and given back before its merge
        (or once its agent has exited, when no gate runs in its worktree): a task waiting in
        the merge queue, or for its commit, does not keep another agent from starting.
        ``tasks``: the generation's tasks, when the caller has just listed them.

        The tasks are listed again when a task has ended and may start again or others may
        now be ready (the last listing had unfinished ones besides those running), or when the
        last listing had more to start than there were slots; a slot freed by a task that went
        on to its merge, with nothing left to start, asks the store nothing.
        """
        stitcher = self.stitcher(gen)
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

        self.project.bus.add_listener(self._learn)
        try:
            while True:
                if self._spent.is_set():
                    self._spent.clear()
                    if await self._over_budget(gen, list(running.values())):
                        await cancel_at_work(self.project, gen.name, running)
                if slots[0] > 0 and not self.paused and pending:
                    busy = set(running.values())
                    listed = tasks if tasks is not None else await self._tasks(gen)
                    tasks, pending = None, False  # a listing is used once
                    left = self._tasks_left(listed, len(running))
                    order = launch_order(listed, self.durations.expected(listed))
                    candidates = [t for t in order if t.id not in busy and self._may_start(t)]
                    if candidates and await self._should_pause(gen):
                        candidates = []
                    if candidates and await self._over_budget(
                        gen, [t.id for t in candidates[: slots[0]]]
                    ):
                        await cancel_at_work(self.project, gen.name, running)
                        candidates = []
                    for task in candidates:
                        if slots[0] <= 0 or left == 0:
                            pending = True
                            break
                        if task.plan_id is not None and not await asyncio.to_thread(
                            plan_starts, self.project, task.plan_id
                        ):
                            continue  # its plan was rejected since the listing
                        slots[0] -= 1
                        left = None if left is None else left - 1
                        worker = asyncio.create_task(
                            stitcher.stitch(task, release), name=f"stitch-{task.id}"
                        )
                        running[worker] = task.id
                    started = set(running.values())
                    waiting = any(
                        t.state not in TERMINAL_TASK_STATES and t.id not in started for t in listed
                    )
                if not running:
                    break
                freed.clear()
                waiters: list[asyncio.Task[object]] = [
                    asyncio.create_task(freed.wait()),
                    asyncio.create_task(self._spent.wait()),
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
                        if waiting or outcome.state not in TERMINAL_TASK_STATES:
                            pending = True  # it may start again, or have made others ready
        except BaseException:
            for worker in running:
                worker.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        finally:
            self.project.bus.remove_listener(self._learn)
        return outcomes


__all__ = ["Engine", "EngineError", "RunReport", "Selection"]
