"""Budgets: what a task, a cycle, a generation and a day may spend, in tokens, dollars and
agent wall time, and what has been spent.

Spend is read from the store's runs (measure runs included), so it is the same in every
process and survives restarts. The engine checks before each launch and after each agent
result; crossing a limit pauses the generation with a ``BudgetCrossed`` event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from shoemaker.config import BudgetLimits, Config
from shoemaker.model import Phase, Spend, TaskState
from shoemaker.store import Store

if TYPE_CHECKING:
    from shoemaker.engine.project import Project


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One configured limit and what was spent against it."""

    scope: str
    """``task #ID``, ``cycle``, ``generation`` or ``day``."""
    metric: str
    """``tokens``, ``usd`` or ``wall_sec``."""
    spent: float
    limit: float

    @property
    def crossed(self) -> bool:
        return self.spent >= self.limit

    def describe(self) -> str:
        def fmt(value: float) -> str:
            if self.metric == "usd":
                return f"${value:.4f}"
            if self.metric == "wall_sec":
                return f"{value:.0f}s"
            return f"{int(value):,} tokens"

        return f"{self.scope} budget: {fmt(self.spent)} of {fmt(self.limit)}"


_BUDGET_PAUSE = "paused: {} reached"


def budget_pause_reason(budget: str) -> str:
    """The reason a generation paused by a crossed budget keeps on its row."""
    return _BUDGET_PAUSE.format(budget)


def paused_by_budget(reason: str) -> bool:
    """Whether a paused generation's ``reason`` says a budget paused it."""
    head, _, tail = _BUDGET_PAUSE.partition("{}")
    return reason.startswith(head) and reason.endswith(tail) and len(reason) > len(head + tail)


def start_of_day(now: float | None = None) -> float:
    """Local midnight before ``now`` (the day budget's window)."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def _lines(scope: str, limits: BudgetLimits, spend: Callable[[], Spend]) -> list[BudgetLine]:
    """The scope's configured limits with what was spent; the store is asked only when a
    limit is set (this runs before every launch)."""
    wanted = [
        (metric, limit)
        for metric, limit in (
            ("tokens", limits.tokens),
            ("usd", limits.usd),
            ("wall_sec", limits.wall_sec),
        )
        if limit
    ]
    if not wanted:
        return []
    spent = spend()
    values = {"tokens": spent.tokens, "usd": spent.usd, "wall_sec": spent.wall_s}
    return [BudgetLine(scope, metric, values[metric], float(limit)) for metric, limit in wanted]


def budget_lines(
    store: Store,
    config: Config,
    generation: str,
    cycle_started: float | None = None,
    task_ids: list[int] | None = None,
) -> list[BudgetLine]:
    """Every configured limit with its spend: the generation's, the current cycle's (runs
    since ``cycle_started``), today's (all generations) and each of ``task_ids``'."""
    budgets = config.budgets
    out = _lines("generation", budgets.generation, lambda: store.spend(generation=generation))
    if cycle_started is not None:
        out += _lines(
            "cycle",
            budgets.cycle,
            lambda: store.spend(generation=generation, since=cycle_started),
        )
    out += _lines("day", budgets.day, lambda: store.spend(since=start_of_day()))
    for task_id in task_ids or []:
        out += _lines(f"task #{task_id}", budgets.task, partial(store.spend, task_id=task_id))
    return out


def crossed(lines: list[BudgetLine]) -> BudgetLine | None:
    return next((line for line in lines if line.crossed), None)


async def budget_crossing(
    project: Project, generation: str, cycle_started: float | None, task_ids: list[int] | None
) -> str | None:
    """The first configured budget reached, described (None: none is), announced as
    ``BudgetCrossed`` with what happens now (the generation pauses; with ``on_cross:
    cancel``, its running agents are cancelled)."""
    from shoemaker.events import BudgetCrossed

    lines = await asyncio.to_thread(
        budget_lines, project.store, project.config, generation, cycle_started, task_ids
    )
    line = crossed(lines)
    if line is None:
        return None
    action = project.config.budgets.on_cross
    message = f"{line.describe()}; the generation pauses" + (
        " and running agents are cancelled" if action == "cancel" else ""
    )
    project.bus.emit(
        BudgetCrossed(
            generation=generation,
            scope=line.scope,
            metric=line.metric,
            spent=line.spent,
            limit=line.limit,
            action=action,
            message=message,
        )
    )
    return line.describe()


async def cancel_at_work(
    project: Project, generation: str, running: dict[asyncio.Task[Any], int]
) -> None:
    """With ``budgets.on_cross: cancel``, stop the running agents now (their work is kept
    on their branches and their tasks go back to ready, as when a run is cancelled)."""
    if project.config.budgets.on_cross != "cancel" or not running:
        return
    # Only agents still at work (or about to start): a task whose agent has ended this
    # attempt (its run crossed the budget, say) has spent its money; its gates and merge
    # go on. It is still `running` for a moment after its agent exits, so the state alone
    # does not tell.
    store = project.store
    tasks = {t.id: t for t in await asyncio.to_thread(store.list_tasks, generation)}
    ended = {
        (r.task_id, r.attempt)
        for r in await asyncio.to_thread(store.runs, None, generation)
        if r.phase == Phase.STITCH and r.ended_at is not None
    }

    def at_work(task_id: int) -> bool:
        task = tasks.get(task_id)
        return (
            task is not None
            and task.state == TaskState.RUNNING
            and (task_id, task.attempts) not in ended
        )

    stopping = [w for w, task_id in running.items() if at_work(task_id)]
    for worker in stopping:
        worker.cancel()
    await asyncio.gather(*stopping, return_exceptions=True)
    for worker in stopping:
        running.pop(worker)
