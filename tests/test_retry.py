"""A person's retry of a failed, blocked or conflict task: `shoemaker task retry`."""

from __future__ import annotations

import asyncio
import shlex
import sqlite3
import sys
from pathlib import Path

import pytest

from projects import check, cli, make_project, scripted, task
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.graph import released_by_retry
from shoemaker.engine.project import STORE_FILE, Project
from shoemaker.engine.retry import retry_tasks
from shoemaker.events import AgentStarted, Event
from shoemaker.model import TaskState
from shoemaker.store import NewTask

_S = TaskState

#: A gate that passes once a person has committed ``ready.txt``.
NEEDS_READY = "import pathlib, sys; sys.exit(0 if pathlib.Path('ready.txt').exists() else 1)"


def _rows(project: Project) -> list[tuple[object, ...]]:
    """The tasks table as stored: a refusal leaves it as it was."""
    db = sqlite3.connect(project.state_dir / STORE_FILE)
    try:
        return db.execute("SELECT * FROM tasks ORDER BY id").fetchall()
    finally:
        db.close()


def _gated(fast_tmp: Path, **settings: object) -> Project:
    return scripted(
        make_project(
            fast_tmp,
            [
                task("Needs ready", files={"a.py": "A = 1\n"}),
                task("After it", [0], files={"b.py": "B = 1\n"}),
            ],
            gates=[check("ready", NEEDS_READY)],
            **settings,
        )
    )


async def test_a_failed_task_retried_with_a_note_lands_and_so_does_its_dependent(
    fast_tmp: Path,
) -> None:
    project = _gated(fast_tmp, max_retries=1)
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    first, after = project.store.list_tasks("g")
    assert first.state == _S.FAILED and first.attempts == 2, first.reason
    assert after.state == _S.BLOCKED and after.reason == f"depends on task {first.id}, which failed"
    # The person fixes what the gate needs, then lets the task run again.
    (project.root / "ready.txt").write_text("yes\n")
    project.git.commit_all(project.root, "the file the gate wants")
    retried = cli(project, "task", "retry", str(first.id), "--note", "ready.txt is there now")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.splitlines() == [
        f"task {first.id} ready again: a person retried it: ready.txt is there now "
        f"(it was failed: {first.reason})",
        f"task {after.id} waits for task {first.id} again: a person retried it",
    ]
    again = project.store.get_task(first.id)
    assert (again.state, again.fingerprint, again.failures_before_retry) == (_S.READY, "", 2)
    assert project.store.get_task(after.id).state == _S.PROPOSED
    await Engine(project).run(cycles=1)
    first, after = project.store.list_tasks("g")
    assert (first.state, after.state) == (_S.DONE, _S.DONE), (first.reason, after.reason)
    runs = project.store.runs(task_id=first.id)
    assert len(runs) == 3 and first.attempts == 3  # numbering goes on
    assert "a person retried it: ready.txt is there now" in runs[-1].prompt
    assert "a person retried it" not in runs[-2].prompt
    assert (project.root / "a.py").exists() and (project.root / "b.py").exists()
    # The retry is in the story: the transition's event names the person's note.
    told = [
        e
        for _, e in project.store.events_after(0, limit=10_000)
        if e.kind == "task_state" and "retried it: ready.txt" in getattr(e, "reason", "")
    ]
    assert [getattr(e, "task_id", None) for e in told] == [first.id]


async def test_a_retry_gives_a_fresh_allowance_of_retries(fast_tmp: Path) -> None:
    # The gate fails with a different output each attempt, so only max_retries stops it.
    differs = "import sys, uuid; print(uuid.uuid4()); sys.exit(1)"
    project = scripted(
        make_project(
            fast_tmp,
            [task("Never passes", files={"a.py": "A = 1\n"})],
            gates=[check("differs", differs)],
            max_retries=1,
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == _S.FAILED and t.attempts == 2 and "after 2 failed attempts" in t.reason
    assert cli(project, "task", "retry", str(t.id)).returncode == 0
    await Engine(project).run(cycles=1)
    t = project.store.get_task(t.id)
    # Two more attempts (the first and its one retry), not none.
    assert t.state == _S.FAILED and t.attempts == 4, t.reason
    assert "after 2 failed attempts" in t.reason


async def test_a_task_its_agent_blocked_runs_again_with_the_note(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [
                task(
                    "Needs a key",
                    files={"k.py": "K = 1\n"},
                    signal={"status": "blocked", "reason": "which key?"},
                    on_attempt={2: {"signal": {"status": "completed"}}},
                )
            ],
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == _S.BLOCKED and "which key?" in t.reason
    done = cli(project, "task", "retry", str(t.id), "--note", "use the staging key")
    assert done.returncode == 0, done.stderr
    await Engine(project).run(cycles=1)
    t = project.store.get_task(t.id)
    assert t.state == _S.DONE, t.reason
    prompt = project.store.runs(task_id=t.id)[-1].prompt
    assert "a person retried it: use the staging key (it was blocked" in prompt


async def test_refusals_say_why_exit_2_and_change_nothing(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [
                task("Lands", files={"ok.py": "OK = 1\n"}),
                task("Fails", outcome="crash"),
                task("After fails", [1]),
                task("After that", [2]),
            ],
            max_retries=0,
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    lands, fails, after, later = project.store.list_tasks("g")
    assert (lands.state, fails.state, after.state) == (_S.DONE, _S.FAILED, _S.BLOCKED)
    before = _rows(project)
    refusals = {
        ("99",): "no task 99; see `shoemaker tasks`",
        (str(lands.id),): f"task {lands.id} is done, not failed, blocked or in conflict: "
        f"`shoemaker task revert {lands.id} --retry` runs it again",
        (str(after.id),): f"task {after.id} depends on task {fails.id} (failed), not done: "
        f"retry it first, or together in one command: "
        f"`shoemaker task retry {fails.id} {after.id}`",
        # One refusal among several ids: none of them is retried.
        (str(fails.id), str(lands.id)): f"task {lands.id} is done",
    }
    for ids, message in refusals.items():
        proc = cli(project, "task", "retry", *ids)
        assert proc.returncode == 2, (ids, proc.stdout, proc.stderr)
        assert message in proc.stderr and proc.stdout == "", (ids, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
        assert _rows(project) == before
    # Retried together, in any order: the dependency first, its dependents wait for it.
    proc = cli(project, "task", "retry", str(later.id), str(after.id), str(fails.id))
    assert proc.returncode == 0, proc.stderr
    states = [t.state for t in project.store.list_tasks("g")]
    assert states == [_S.DONE, _S.READY, _S.PROPOSED, _S.PROPOSED]


async def test_a_running_task_is_not_retried(fast_tmp: Path) -> None:
    project = scripted(make_project(fast_tmp, [task("Works")]))
    start_generation(project, "g")
    (t,) = await Engine(project).measure_once()
    project.store.transition_task(t.id, _S.RUNNING, "started", count_attempt=True)
    before = _rows(project)
    proc = cli(project, "task", "retry", str(t.id))
    assert proc.returncode == 2
    assert f"task {t.id} is running, not failed, blocked or in conflict" in proc.stderr
    assert _rows(project) == before


@pytest.mark.parametrize(
    ("other", "released"),
    [(_S.DONE, [3, 4]), (_S.FAILED, [3]), (_S.BLOCKED, [3])],
)
def test_a_retry_releases_only_tasks_nothing_else_stops(
    other: TaskState, released: list[int]
) -> None:
    # 1 retried; 2 another dependency of 4; 3 depends on 1, 4 on 3 and 2; 5 blocked by its agent.
    deps = {3: [1], 4: [2, 3], 5: [1]}
    states = {1: _S.READY, 2: other, 3: _S.BLOCKED, 4: _S.BLOCKED, 5: _S.BLOCKED}
    upstream = "depends on task 1, which failed"
    reasons = {2: "its agent is blocked: no", 3: upstream, 4: upstream, 5: "its agent is blocked"}
    assert released_by_retry(states, reasons, deps, 1) == released


async def test_a_retry_forgets_the_last_failure_so_the_same_one_once_more_does_not_stop_it(
    fast_tmp: Path,
) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [task("Same failure", files={"a.py": "A = 1\n"})],
            gates=[check("no", "import sys; print('no'); sys.exit(1)")],
            max_retries=5,
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.attempts == 2 and "the same failure twice in a row" in t.reason
    assert cli(project, "task", "retry", str(t.id)).returncode == 0
    await Engine(project).run(cycles=1)
    t = project.store.get_task(t.id)
    assert t.state == _S.FAILED and t.attempts == 4, t.reason  # not stopped at 3


async def test_a_run_under_way_starts_a_task_retried_meanwhile(fast_tmp: Path) -> None:
    # The dashboard's retry while its embedded run goes on: that run starts the task.
    go = fast_tmp / "go"
    waits = shlex.join(
        [
            sys.executable,
            "-c",
            "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.02)",
            str(go),
        ]
    )
    project = make_project(
        fast_tmp,
        [
            task("Crashes once", files={"a.py": "A = 1\n"}, outcome="crash"),
            task(
                "Blocked once",
                files={"b.py": "B = 1\n"},
                signal={"status": "blocked", "reason": "?"},
            ),
        ],
        max_retries=0,
    )
    scripted(
        project,
        {
            (1, 2): {"files": {"a.py": "A = 1\n"}},
            (2, 2): {"files": {"b.py": "B = 1\n"}, "run": [waits]},
        },
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    crashed, blocked = project.store.list_tasks("g")
    assert (crashed.state, blocked.state) == (_S.FAILED, _S.BLOCKED)
    assert cli(project, "task", "retry", str(blocked.id)).returncode == 0
    retried: list[asyncio.Task[object]] = []

    async def retry_then_let_it_finish() -> None:
        await asyncio.to_thread(retry_tasks, project, [crashed.id], "try again")
        go.write_text("")

    def started(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id == blocked.id and not retried:
            retried.append(asyncio.ensure_future(retry_then_let_it_finish()))

    project.bus.add_listener(started)
    await Engine(project).run(cycles=1)
    await asyncio.gather(*retried)
    crashed, blocked = project.store.list_tasks("g")
    assert (crashed.state, blocked.state) == (_S.DONE, _S.DONE), (crashed.reason, blocked.reason)


async def test_a_conflict_is_retried_and_a_task_of_another_generation_is_not(
    fast_tmp: Path,
) -> None:
    project = scripted(make_project(fast_tmp, [task("Clashes", files={"c.py": "C = 1\n"})]))
    gen = start_generation(project, "g")
    (t,) = await Engine(project).measure_once()
    store = project.store
    for state in (_S.RUNNING, _S.VERIFYING, _S.MERGING, _S.CONFLICT):
        store.transition_task(
            t.id, state, "its merge conflicted", count_attempt=state == _S.RUNNING
        )
    store.create_generation("old", "generation-old", "main", gen.start_commit)
    (other,), _ = store.add_tasks("old", [NewTask("Elsewhere")], 1, "test")
    store.transition_task(other.id, _S.BLOCKED, "its agent is blocked: no")
    before = _rows(project)
    proc = cli(project, "task", "retry", str(other.id))
    assert proc.returncode == 2 and _rows(project) == before
    assert f"task {other.id} is of generation old, not the current one (g)" in proc.stderr
    proc = cli(project, "task", "retry", str(t.id), "--note", "merge after the others")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"task {t.id} ready again: a person retried it: merge after")
    assert store.get_task(t.id).state == _S.READY
