"""Plan, approve, execute: proposals wait in a reviewable file for a person; the plan state
machine refuses illegal moves; estimates come with their assumptions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from projects import cli, make_project, scripted, task
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.plans import make_plan
from shoemaker.engine.project import Project
from shoemaker.model import IllegalTransition, PlanState, TaskState


def planned(fast_tmp: Path, **settings: object) -> Project:
    project = make_project(
        fast_tmp,
        [task("A", files={"a.py": "A = 1\n"}), task("B", [0], files={"b.py": "B = 1\n"})],
        **settings,
    )
    start_generation(project, "g")
    return project


def test_plan_writes_the_tasks_and_estimate_and_runs_nothing(fast_tmp: Path) -> None:
    project = planned(fast_tmp, require_approval=True)
    proc = cli(project, "plan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (plan,) = project.store.list_plans("g")
    assert plan.state == PlanState.VALIDATED
    text = Path(plan.path).read_text()
    assert "### #1 A" in text and "After: #1" in text and "Nothing has run." in text
    assert "## Assumptions of the estimate" in text and "prices of 'default'" in text
    assert [r.phase for r in project.store.runs(generation="g")] == ["measure"]

    proc = cli(project, "run")
    assert proc.returncode == 2 and "plan 1 is not approved" in proc.stderr
    proc = cli(project, "measure")
    assert proc.returncode == 2 and "`shoemaker plan` proposes tasks" in proc.stderr
    assert [r.phase for r in project.store.runs(generation="g")] == ["measure"]

    assert cli(project, "approve", plan.path).returncode == 0  # by its file, or by id
    proc = cli(project, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [t.state for t in project.store.list_tasks("g")].count(TaskState.DONE) == 2
    assert project.store.get_plan(plan.id).state == PlanState.COMPLETE
    moves = [getattr(e, "new", "") for e in project.store.events_of_kind("g", ["plan_state"])]
    assert moves == ["created", "validated", "approved", "executing", "complete"]


async def test_tasks_of_an_unapproved_plan_wait_even_without_require_approval(
    fast_tmp: Path,
) -> None:
    project = scripted(planned(fast_tmp))
    plan, tasks, _ = await make_plan(project, project.store.get_generation("g"))
    assert len(tasks) == 2 and Path(plan.path).is_file()
    report = await Engine(project).run(cycles=1)
    assert report.merged == 0  # measure proposes nothing new; the plan's tasks wait
    assert [t.state for t in project.store.list_tasks("g")] == [
        TaskState.READY,
        TaskState.PROPOSED,
    ]


def test_illegal_plan_moves_are_refused(fast_tmp: Path) -> None:
    project = planned(fast_tmp)
    plan, _ = project.store.create_plan("g")
    with pytest.raises(IllegalTransition, match="illegal transition created → approved"):
        project.store.set_plan_state(plan.id, PlanState.APPROVED)
    project.store.set_plan_state(plan.id, PlanState.VALIDATED)
    with pytest.raises(IllegalTransition):
        project.store.set_plan_state(plan.id, PlanState.COMPLETE)
    assert project.store.get_plan(plan.id).state == PlanState.VALIDATED
    assert cli(project, "approve", str(plan.id)).returncode == 0
    proc = cli(project, "approve", str(plan.id))
    assert proc.returncode == 2 and "illegal transition approved → approved" in proc.stderr
    proc = cli(project, "plan", "rollback", str(plan.id))
    assert proc.returncode == 2 and "only a failed or complete plan" in proc.stderr


def test_reject_cancels_the_plan_tasks(fast_tmp: Path) -> None:
    project = planned(fast_tmp, require_approval=True)
    assert cli(project, "plan").returncode == 0
    proc = cli(project, "plan", "reject", "1", "--note", "too big")
    assert proc.returncode == 0 and "2 task(s) cancelled" in proc.stdout
    assert {t.state for t in project.store.list_tasks("g")} == {TaskState.CANCELLED}
    assert cli(project, "run").returncode == 0  # nothing waits for approval any more


def test_rollback_reverts_a_complete_plan(fast_tmp: Path) -> None:
    project = planned(fast_tmp, require_approval=True)
    assert cli(project, "plan").returncode == 0
    assert cli(project, "approve", "1").returncode == 0
    assert cli(project, "run").returncode == 0
    assert (project.root / "b.py").exists()
    proc = cli(project, "plan", "rollback", "1")
    assert proc.returncode == 0, proc.stderr
    assert "2 task(s) reverted" in proc.stdout
    assert not (project.root / "a.py").exists() and not (project.root / "b.py").exists()
    assert project.store.get_plan(1).state == PlanState.ROLLED_BACK


async def test_estimate_learns_from_history(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [task(n, files={f"{n}.py": "X = 1\n"}, cost_usd=0.5) for n in "ab"]
            + [task("later", [0])],
            max_tasks=2,
        )
    )
    start_generation(project, "g")
    await Engine(project).run()
    assert [t.state for t in project.store.list_tasks("g")].count(TaskState.DONE) == 2
    data = json.loads(cli(project, "estimate", "--json").stdout)
    (later,) = data["tasks"]
    assert later["basis"] == "history" and later["usd"] == pytest.approx(0.5)
    assert data["total_usd"] == pytest.approx(0.5)
    assert "done task(s)" in data["assumptions"][0]
