"""``estimate`` and the plan verbs: plan, plan list, approve, reject, rollback."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from shoemaker.cli.common import _attach_output, _current, _open_project, _run_async
from shoemaker.cli.output import _esc, _print_estimate
from shoemaker.cli.run import _refuse_linked_docs

if TYPE_CHECKING:
    from shoemaker.engine.project import Project


def cmd_estimate(args: argparse.Namespace) -> int:
    from shoemaker.engine.estimate import estimate_tasks, open_tasks

    project = _open_project(args)
    gen = _current(project)
    tasks = open_tasks(project, gen)
    if not tasks and not args.json:
        print("no task waits to run; `shoemaker plan` proposes some and estimates them")
        return 0
    _print_estimate(estimate_tasks(project, gen, tasks), args.json)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Measure into a plan file with its estimate (executing nothing), or list plans."""
    from shoemaker.engine.plans import make_plan

    project = _open_project(args)
    gen = _current(project)
    if args.verb == "list":
        plans = project.store.list_plans(gen.name)
        if not plans:
            print("no plan yet; `shoemaker plan` makes one")
        for plan in plans:
            print(f"plan {plan.id}: {plan.state} {plan.path} {plan.reason}".rstrip())
        return 0
    _refuse_linked_docs(project)
    console = _attach_output(project, args.events, show_agent=not project.config.silence_agent)

    async def go() -> int:
        plan, tasks, estimate = await make_plan(project, gen)
        _print_estimate(estimate, as_json=False)
        console.print(
            f"plan {plan.id}: {len(tasks)} task(s) written to {_esc(plan.path)}; nothing has run. "
            f"Approve it with `shoemaker approve {plan.id}`."
        )
        return 0

    return _run_async(go())


def _plan_verb(project: Project, args: argparse.Namespace) -> str:
    from shoemaker.engine import plans
    from shoemaker.model import IllegalTransition

    plan = plans.find_plan(project, args.plan)
    try:
        if args.verb == "approve":
            plans.approve_plan(project, plan)
            return f"plan {plan.id} approved; `shoemaker run` executes its tasks"
        if args.verb == "reject":
            cancelled = plans.reject_plan(project, plan, args.note or "")
            return f"plan {plan.id} rejected; {len(cancelled)} task(s) cancelled"
        commits = plans.rollback_plan(project, plan)
        return f"plan {plan.id} rolled back: {len(commits)} task(s) reverted"
    except IllegalTransition as exc:
        from shoemaker.errors import GenerationError

        raise GenerationError(f"{exc}; see `shoemaker plan list`") from None
