"""Whole generations on real repositories: a few with the rehearsal agent as a real process,
the engine's logic (conflicts, retries, failures) with the scripted runner."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agents import BEAT_GRACE_SEC, START_SEC
from projects import (
    make_project,
    run_and_cancel_once_an_agent_speaks,
    scripted,
    task,
    with_agent,
)
from shoemaker.engine.ending import stop_generation
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.measure import MeasureError
from shoemaker.engine.project import Project
from shoemaker.events import AgentFinished, AgentStarted, Event
from shoemaker.model import TaskState


def events_of(project: Project) -> list[Event]:
    return [e for _, e in project.store.events_after(0, limit=100_000)]


async def test_a_generation_with_dependencies_lands_every_task(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [
            task("Add a", files={"a.py": "A = 1\n"}),
            task("Add b", [0], files={"b.py": "from a import A\nB = A + 1\n"}),
            task("Add c", [0, 1], append={"app.py": "C = 3\n"}),
        ],
        gates=[{"name": "imports", "command": [sys.executable, "-c", "import a"]}],
    )
    gen = start_generation(project, "g1")
    report = await Engine(project).run(cycles=3)
    assert (report.merged, report.failed, report.cycles) == (3, 0, 2)
    assert report.stopped_because == "no ready task left"
    tasks = project.store.list_tasks("g1")
    assert [t.state for t in tasks] == [TaskState.DONE] * 3
    assert tasks[2].depends_on == [tasks[0].id, tasks[1].id]
    # One commit per task on the generation branch, in dependency order, with trailers.
    log = project.git.log(f"{gen.start_commit}..{gen.branch}")
    assert [c.trailers["Shoemaker-Task"] for c in reversed(log)] == [str(t.id) for t in tasks]
    assert all(len(c.parents) == 1 for c in log)
    assert {"Shoemaker-Cost-USD", "Shoemaker-LOC-After", "Shoemaker-Tokens-Input"} <= set(
        log[0].trailers
    )
    # Nothing left behind: worktrees, task branches, transcripts on disk.
    assert [w.path for w in project.git.worktrees()] == [project.root]
    assert project.git.branches("task/*") == []
    assert list(project.runs_dir.glob("*.jsonl")) == []
    # Each run kept its raw transcript; tokens in the store match its last result line.
    for run in project.store.runs(generation="g1"):
        raw = project.store.transcript(run.id)
        assert raw.count(b'"type": "result"') == 1
        assert run.ok and run.exit_code == 0 and run.usage.input_tokens > 0
        assert "IS_SANDBOX" in run.env_names
    kinds = {e.kind for e in events_of(project)}
    assert {
        "generation_state",
        "cycle_started",
        "task_state",
        "agent_started",
        "agent_output",
        "agent_finished",
        "gate_result",
        "merge_result",
        "metrics",
        "measure_finished",
        "cycle_finished",
    } <= kinds
    history = sorted(p.name for p in (project.history_dir / "g1").iterdir())
    assert history == [
        "cycle-001-measure.yaml",
        "cycle-002-measure.yaml",
        "task-0001.yaml",
        "task-0002.yaml",
        "task-0003.yaml",
    ]

    stop = stop_generation(project)
    assert project.git.current_branch() == "main"
    assert (project.root / "b.py").exists()
    assert set(project.git.tags()) == {"g1-start", "g1-finished", "g1-merged"}
    assert not project.git.ref_exists("refs/heads/generation-g1")
    assert stop.merge_commit == project.git.rev_parse("main")
    assert project.store.integrity_check() == "ok"


async def test_a_dependency_cycle_is_refused_and_nothing_is_added(fast_tmp: Path) -> None:
    project = scripted(make_project(fast_tmp, [task("A", [1]), task("B", [0])]))
    start_generation(project, "g")
    with pytest.raises(MeasureError, match=r"dependency cycle: .*'A'.*'B'"):
        await Engine(project).measure_once()
    assert project.store.list_tasks("g") == []
    assert [w.path for w in project.git.worktrees()] == [project.root]


async def test_a_missing_title_names_the_task(fast_tmp: Path) -> None:
    project = scripted(make_project(fast_tmp, [task("A"), {"description": "untitled"}]))
    start_generation(project, "g")
    with pytest.raises(MeasureError, match="task 1: missing title"):
        await Engine(project).measure_once()


def concurrent_edits(project: Project, values: list[int]) -> None:
    """While each stitch agent works, someone commits to the same line of app.py."""
    pending = list(values)

    def meanwhile(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.phase == "stitch" and pending:
            (project.root / "app.py").write_text(f"VALUE = {pending.pop(0)}\n")
            project.git.commit_all(project.root, "concurrent change")

    project.bus.add_listener(meanwhile)


async def test_a_conflict_is_rerun_on_the_new_head_with_the_conflict_in_its_prompt(
    fast_tmp: Path,
) -> None:
    project = scripted(make_project(fast_tmp, [task("Edit app", files={"app.py": "VALUE = 2\n"})]))
    start_generation(project, "g")
    concurrent_edits(project, [3])
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.DONE and t.attempts == 2
    first, second = project.store.runs(task_id=t.id)
    assert "merge conflict in app.py" in second.prompt
    assert "+VALUE = 3" in second.prompt  # what changed under it, as a diff
    assert "merge conflict" not in first.prompt
    assert (project.root / "app.py").read_text() == "VALUE = 2\n"
    # Nothing lost: the first attempt's commit is kept on a branch of its own.
    kept = project.git.log("g-start..attempt/g-1-1")
    assert kept[0].trailers["Shoemaker-Task"] == str(t.id)
    assert project.git.is_clean() and not project.git.is_merging()


async def test_a_conflict_that_repeats_parks_the_task_with_its_branch(fast_tmp: Path) -> None:
    project = scripted(make_project(fast_tmp, [task("Edit app", files={"app.py": "VALUE = 2\n"})]))
    gen = start_generation(project, "g")
    concurrent_edits(project, [3, 4])
    report = await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.CONFLICT and "conflict in app.py" in t.reason
    assert report.failed == 1
    assert project.git.is_clean() and not project.git.is_merging()
    assert (project.root / "app.py").read_text() == "VALUE = 4\n"
    branch_log = project.git.log(f"{gen.branch}..{t.branch}")
    assert len(branch_log) == 1 and branch_log[0].trailers["Shoemaker-Task"] == str(t.id)
    report_stop = stop_generation(project)
    assert report_stop.kept_branches == [t.branch]


async def test_a_failing_gate_is_retried_with_its_output_in_the_prompt(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [
                task(
                    "Fix it",
                    files={"ok.txt": "no\n"},
                    on_attempt={2: {"files": {"ok.txt": "yes\n"}}},
                )
            ],
            gates=[
                {
                    "name": "check",
                    "command": [
                        sys.executable,
                        "-c",
                        "import sys; t = open('ok.txt').read(); print('observed=' + t.strip()); "
                        "sys.exit(t != 'yes\\n')",
                    ],
                }
            ],
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.DONE and t.attempts == 2
    first, second = project.store.runs(task_id=t.id)
    assert "observed=no" not in first.prompt
    assert "gate check output:\nobserved=no" in second.prompt
    gates = project.store.gate_results(t.id)
    assert [(g.location, g.passed) for g in gates] == [
        ("worktree", False),
        ("worktree", True),
        ("merged", True),  # and once more on the generation branch, after the merge
    ]
    # The failed attempt's work was kept on a branch of its own.
    assert project.git.branches("attempt/*") == ["attempt/g-1-1"]


@pytest.mark.parametrize("outcome", ["crash", "api_error", "max_turns", "malformed"])
async def test_agent_failures_end_in_a_named_state(fast_tmp: Path, outcome: str) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [task("Bad", outcome=outcome, files={"x.py": "x = 1\n"}), task("After", [0])],
            max_retries=1,
        )
    )
    start_generation(project, "g")
    report = await Engine(project).run(cycles=1)
    bad, after = project.store.list_tasks("g")
    assert bad.state == TaskState.FAILED and bad.attempts == 2
    assert "the same failure twice in a row" in bad.reason
    assert after.state == TaskState.BLOCKED and "which failed" in after.reason
    assert report.failed == 1
    runs = project.store.runs(task_id=bad.id)
    assert len(runs) == 2 and all(r.ok is False and r.reason for r in runs)


async def test_a_hanging_agent_is_killed_and_recorded(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("Hang", outcome="hang")], max_retries=0)
    # The idle clock runs from the moment the process starts: well above its start-up. The
    # interrupted agent must answer within the grace, however busy the machine.
    project = with_agent(project, idle_timeout_sec=START_SEC, kill_grace_sec=BEAT_GRACE_SEC)
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.FAILED and f"idle: no output for {START_SEC:g}s" in t.reason
    (run,) = project.store.runs(task_id=t.id)
    # Interrupted first: the agent's last result line says what the run cost.
    assert run.exit_code == 0 and run.subtype == "error_during_execution"
    assert run.cost_usd > 0 and not run.cost_estimated


async def test_cancelling_a_run_returns_the_task_to_ready(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("Hang", outcome="hang", files={"w.py": "w = 1\n"})])
    # The interrupted agent's last result must come within the grace, however busy the machine.
    project = with_agent(project, kill_grace_sec=BEAT_GRACE_SEC)
    start_generation(project, "g")
    await run_and_cancel_once_an_agent_speaks(project)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.READY and t.attempts == 1 and t.reason == "interrupted"
    assert project.store.get_generation("g").state == "paused"
    (r,) = project.store.runs(task_id=t.id)
    assert r.ok is False and r.reason.startswith("cancelled")
    assert r.exit_code == 0 and r.ended == "result" and r.cost_usd > 0  # how it ended is kept
    assert [w.path for w in project.git.worktrees()] == [project.root]


async def test_a_run_without_a_result_line_is_charged_for_its_messages(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [task("Crash", outcome="crash", files={f"f{n}.py": "x = 1\n" for n in range(4)})],
        max_retries=0,
        prices={
            "default": {"input": 3, "output": 15},
            "rehearsal-m": {"input": 1e5, "output": 1e5},
        },
    )
    cfg = project.config.model_copy(
        update={"agent": project.config.agent.model_copy(update={"model": "rehearsal-m"})}
    )
    project = scripted(Project.open(project.root, cfg))
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    (run,) = project.store.runs(task_id=t.id)
    # The rehearsal agent reports 4 input and 1 output token on each message, as placeholders.
    lines = [json.loads(line) for line in project.store.transcript(run.id).splitlines()]
    messages = {line["message"]["id"] for line in lines if line["type"] == "assistant"}
    assert messages and (run.usage.input_tokens, run.usage.output_tokens) == (
        4 * len(messages),
        len(messages),
    )
    assert run.cost_estimated and run.cost_usd == pytest.approx(len(messages) * 5 * 0.1)
    finished = project.store.events_of_kind("g", ["agent_finished"])
    assert [e.cost_usd for e in finished if isinstance(e, AgentFinished) and e.task_id] == [
        run.cost_usd
    ]
    assert project.store.spend(task_id=t.id).usd == pytest.approx(run.cost_usd)
