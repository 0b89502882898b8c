"""Plans: measure's proposals, written to a reviewable file with their estimate, held until a
person approves them.

    created → validated → approved → executing → complete
    created → failed (measure failed);  validated/approved → rejected
    executing → failed (a task of the plan failed);  failed/complete → rolled_back

The states and their legal moves are in ``model.py`` (``PLAN_TRANSITIONS``); the store
refuses any other move. Tasks of a plan carry its id and start only while it is approved or
executing; with ``require_approval`` a task starts only from such a plan.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoemaker.confined import leaves
from shoemaker.engine.estimate import Estimate, estimate_tasks
from shoemaker.engine.generation import revert_task
from shoemaker.engine.measure import MeasureError, measure
from shoemaker.engine.project import Project
from shoemaker.errors import GenerationError
from shoemaker.model import (
    PLAN_TRANSITIONS,
    RUNNABLE_PLAN_STATES,
    Generation,
    Plan,
    PlanState,
    Task,
    TaskState,
)
from shoemaker.store import StoreError, TaskMoved
from shoemaker.store.plans import PlanMoved

WAITING = (PlanState.CREATED, PlanState.VALIDATED)


async def make_plan(project: Project, gen: Generation) -> tuple[Plan, list[Task], Estimate]:
    """Run measure into a new plan and write the plan file; nothing is executed."""
    store = project.store
    _refuse_links(project, plan_path(project, 0).parent)  # before anything is recorded
    project.bus.bind_loop()  # its first event is committed on a worker thread
    plan, _ = await asyncio.to_thread(store.create_plan, gen.name)
    cycle = await asyncio.to_thread(store.next_cycle, gen.name)
    try:
        tasks = await measure(project, gen, cycle, plan_id=plan.id)
    except MeasureError as exc:
        store.set_plan_state(plan.id, PlanState.FAILED, str(exc))
        raise
    estimate = await asyncio.to_thread(estimate_tasks, project, gen, tasks)
    path = await asyncio.to_thread(_write_plan_file, project, plan, gen, tasks, estimate)
    store.set_plan_state(
        plan.id, PlanState.VALIDATED, f"{len(tasks)} task(s) proposed", path=str(path)
    )
    return store.get_plan(plan.id), tasks, estimate


def _refuse_links(project: Project, path: Path) -> None:
    if leaves(project.root, path):
        # A link on the way (committed into the repository) would send the plan elsewhere.
        raise GenerationError(
            f"{path.relative_to(project.root)} leads out of the repository (a link on the "
            "way?); plans are written only inside it: remove the link and plan again"
        )


def plan_path(project: Project, plan_id: int) -> Path:
    return project.state_dir / "plans" / f"plan-{plan_id}.md"


def _write_plan_file(
    project: Project, plan: Plan, gen: Generation, tasks: list[Task], estimate: Estimate
) -> Path:
    by_id = {t.task_id: t for t in estimate.tasks}
    lines = [
        f"# Plan {plan.id} for generation {gen.name}",
        "",
        f"{len(tasks)} task(s), estimated {estimate.total_tokens:,} tokens and "
        f"${estimate.total_usd:.4f}. Nothing has run.",
        "",
        f"Approve: `shoemaker approve {plan.id}` · reject: `shoemaker plan reject {plan.id}`",
        "",
        "## Tasks",
        "",
    ]
    for task in tasks:
        e = by_id[task.id]
        after = ", ".join(f"#{d}" for d in task.depends_on) or "nothing"
        lines += [
            f"### #{task.id} {task.title}",
            "",
            f"After: {after} · estimate: {e.usage.input_tokens + e.usage.output_tokens:,} tokens, "
            f"${e.usd:.4f} ({e.basis})",
            "",
            task.description.strip(),
            "",
        ]
    lines += ["## Assumptions of the estimate", ""]
    lines += [f"- {a}" for a in estimate.assumptions]
    path = plan_path(project, plan.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _refuse_links(project, path)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # a link there is removed, never written through
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)  # the file appears whole or not at all
    return path


def find_plan(project: Project, ref: str) -> Plan:
    """A plan by id or by the path of its file."""
    store = project.store
    try:
        if ref.isdigit():
            return store.get_plan(int(ref))
    except StoreError as exc:
        raise GenerationError(str(exc)) from None
    wanted = Path(ref).resolve()
    for plan in store.list_plans():
        if plan.path and Path(plan.path).resolve() == wanted:
            return plan
    raise GenerationError(f"no plan {ref!r}; see `shoemaker plan list`")


def approve_plan(project: Project, plan: Plan) -> None:
    project.store.set_plan_state(plan.id, PlanState.APPROVED, "approved")


def reject_plan(project: Project, plan: Plan, note: str = "") -> list[int]:
    """Reject a plan; its tasks that have not run are cancelled. Returns their ids."""
    store = project.store
    store.set_plan_state(plan.id, PlanState.REJECTED, note or "rejected")
    cancelled = []
    for task in plan_tasks(project, plan):
        if task.state in (TaskState.PROPOSED, TaskState.READY, TaskState.BLOCKED):
            try:
                store.transition_task(
                    task.id, TaskState.CANCELLED, f"plan {plan.id} rejected", expect=(task.state,)
                )
            except TaskMoved:
                continue  # started meanwhile by a run that listed the plan before it was rejected
            cancelled.append(task.id)
    return cancelled


def rollback_plan(project: Project, plan: Plan) -> list[str]:
    """Revert a failed or complete plan's merged tasks, latest first; returns the reverts."""
    if PlanState.ROLLED_BACK not in PLAN_TRANSITIONS[plan.state]:
        raise GenerationError(
            f"plan {plan.id} is {plan.state}; only a failed or complete plan can be rolled back"
        )
    commits = [
        revert_task(project, task.id)
        for task in sorted(plan_tasks(project, plan), key=lambda t: -t.id)
        if task.state == TaskState.DONE and task.merged_commit
    ]
    project.store.set_plan_state(plan.id, PlanState.ROLLED_BACK, f"{len(commits)} task(s) reverted")
    return commits


def plan_tasks(project: Project, plan: Plan) -> list[Task]:
    return [t for t in project.store.list_tasks(plan.generation) if t.plan_id == plan.id]


def runnable_plans(project: Project, gen: Generation) -> set[int]:
    return {p.id for p in project.store.list_plans(gen.name) if p.state in RUNNABLE_PLAN_STATES}


def refuse_waiting_plans(project: Project, gen: Generation) -> None:
    """With ``require_approval``, a run refuses while a plan waits for a person."""
    if not project.config.require_approval:
        return
    waiting = [p for p in project.store.list_plans(gen.name) if p.state in WAITING]
    if waiting:
        p = waiting[0]
        raise GenerationError(
            f"plan {p.id} is not approved (require_approval is on): review {p.path or 'it'}, "
            f"then `shoemaker approve {p.id}` or `shoemaker plan reject {p.id}`"
        )


def plan_starts(project: Project, plan_id: int) -> bool:
    """A task of the plan is about to start: an approved plan is executing from now on.
    False: the plan may not run any more (rejected since the engine listed it); the task
    does not start."""
    store = project.store
    state = store.get_plan(plan_id).state
    if state == PlanState.APPROVED:
        try:
            store.set_plan_state(
                plan_id, PlanState.EXECUTING, "its first task started", expect=state
            )
        except PlanMoved:
            state = store.get_plan(plan_id).state
        else:
            state = PlanState.EXECUTING
    return state in RUNNABLE_PLAN_STATES


def settle_plans(project: Project, gen: Generation) -> None:
    """An executing plan is complete when all its tasks are done, failed when one of them
    failed, conflicted or was blocked."""
    store = project.store
    for plan in store.list_plans(gen.name):
        if plan.state != PlanState.EXECUTING:
            continue
        tasks = plan_tasks(project, plan)
        states = {t.state for t in tasks}
        bad = states & {TaskState.FAILED, TaskState.CONFLICT, TaskState.BLOCKED}
        if states <= {TaskState.DONE}:
            store.set_plan_state(plan.id, PlanState.COMPLETE, "every task merged")
        elif bad:
            failed = [t.id for t in tasks if t.state in bad]
            store.set_plan_state(
                plan.id,
                PlanState.FAILED,
                "tasks " + ", ".join(f"#{i}" for i in failed) + " did not merge",
            )
