"""Budgets: spend is checked before each launch and after each result; crossing one pauses
the generation with an event; the CLI's own limits are passed when configured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agents import new_token, processes_with_token
from projects import make_project, scripted, task
from shoemaker.agents.claude import agent_argv
from shoemaker.config import AgentConfig
from shoemaker.engine.budgets import budget_lines
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.events import BudgetCrossed
from shoemaker.model import GenerationState, TaskState


def test_the_cli_limits_are_passed_when_configured() -> None:
    argv = agent_argv(AgentConfig(command=sys.executable, max_turns=30, max_budget_usd=1.5))
    assert argv[-4:] == ["--max-turns", "30", "--max-budget-usd", "1.5"]
    assert "--max-turns" not in agent_argv(AgentConfig(command=sys.executable))


async def test_a_generation_budget_crossed_mid_generation_pauses_before_the_next_launch(
    fast_tmp: Path,
) -> None:
    tasks = [task(n, files={f"{n}.py": "X = 1\n"}, cost_usd=0.05) for n in "abcd"]
    project = scripted(make_project(fast_tmp, tasks, budgets={"generation": {"usd": 0.08}}))
    start_generation(project, "g")
    report = await Engine(project).run(cycles=3)
    assert report.stopped_because.startswith("paused: generation budget: $0.")
    assert project.store.get_generation("g").state == GenerationState.PAUSED
    runs = project.store.runs(generation="g")
    spent = sum(r.cost_usd for r in runs)
    # Paused right after the result that crossed the limit: no run was launched after it.
    assert spent >= 0.08 and spent - runs[-1].cost_usd < 0.08
    states = [t.state for t in project.store.list_tasks("g")]
    assert TaskState.READY in states and states.count(TaskState.DONE) == len(runs) - 1
    (event,) = project.store.events_of_kind("g", ["budget_crossed"])
    assert isinstance(event, BudgetCrossed)
    assert (event.scope, event.metric, event.limit) == ("generation", "usd", 0.08)
    assert "the generation pauses" in event.message

    # A new run with the budget still crossed launches nothing.
    again = await Engine(project).run(cycles=1)
    assert again.stopped_because.startswith("paused: generation budget")
    assert len(project.store.runs(generation="g")) == len(runs)


async def test_on_cross_cancel_stops_running_agents(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    project = make_project(
        fast_tmp,
        [
            task("Dear", files={"d.py": "D = 1\n"}, cost_usd=1.0, duration=0.3),
            task("Slow", files={"s.py": "S = 1\n"}, outcome="hang"),
        ],
        max_parallel=2,
        budgets={"generation": {"usd": 0.5}, "on_cross": "cancel"},
    )
    start_generation(project, "g")
    report = await Engine(project).run(cycles=1)
    assert report.stopped_because.startswith("paused: generation budget")
    dear, slow = project.store.list_tasks("g")
    assert dear.state == TaskState.DONE
    assert slow.state == TaskState.READY and slow.reason == "interrupted"
    assert processes_with_token(token) == []


async def test_budget_lines_show_spend_against_each_limit(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [task("A", cost_usd=0.25, tokens={"input": 1000, "output": 500})],
            budgets={"generation": {"usd": 1.0, "tokens": 100_000}, "task": {"usd": 0.2}},
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    lines = {
        (line.scope, line.metric): line
        for line in budget_lines(project.store, project.config, "g", task_ids=[t.id])
    }
    assert set(lines) == {("generation", "usd"), ("generation", "tokens"), (f"task #{t.id}", "usd")}
    assert lines[(f"task #{t.id}", "usd")].spent == 0.25 and lines[(f"task #{t.id}", "usd")].crossed
    assert lines[("generation", "tokens")].spent >= 1500


async def test_the_dashboard_shows_spend_against_each_budget(fast_tmp: Path) -> None:
    from shoemaker.tui.app import ShoemakerApp

    project = scripted(
        make_project(
            fast_tmp,
            [task("A", cost_usd=0.25)],
            budgets={"generation": {"usd": 0.2}, "day": {"tokens": 1_000_000}},
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    app = ShoemakerApp(project)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.snapshots_loaded == 0:
            await pilot.pause()
        text = app.metrics.text()
    assert "budget gen $0.25/$0.20" in text
    assert "day " in text and "/1.0M tok" in text
