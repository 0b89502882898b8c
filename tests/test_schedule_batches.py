"""Scheduled batches end to end with the rehearsal agent: max_tasks, max_duration on a clock
the test moves, the daemon firing and ending on SIGTERM, skipping on the run lock and on a
budget's pause."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents import REHEARSAL, STREAM_ARGS, new_token, processes_with_token
from projects import cli, make_project, task
from shoemaker.engine.batch import Batch
from shoemaker.engine.budgets import paused_by_budget
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project, RunLock
from shoemaker.engine.schedule_daemon import ScheduleDaemon
from shoemaker.engine.schedule_state import read_state
from shoemaker.events import AgentOutput, BatchFinished, Event, Notice, TaskStateChanged
from shoemaker.model import GenerationState, TaskState

#: Agents here end when their script says or when the test stops them: the limits only guard
#: against a hang, far above what a loaded machine takes.
PATIENT_AGENT = {
    "command": REHEARSAL[0],
    "args": [*REHEARSAL[1:], *STREAM_ARGS],
    "env": {"IS_SANDBOX": "1"},
    "max_time_sec": 900,
    "idle_timeout_sec": 900,
    "kill_grace_sec": 5,
}
WAIT_S = 240  # bounds every await on an event: a bug fails, it does not hang


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class ManualClock:
    """A clock only the test moves; sleepers wake when it reaches their moment."""

    def __init__(self, now: float) -> None:
        self.t = now
        self.deadlines: list[float] = []
        self._moved = asyncio.Event()
        self._slept = asyncio.Event()

    def now(self) -> float:
        return self.t

    async def sleep_until(self, when: float) -> None:
        self.deadlines.append(when)
        slept, self._slept = self._slept, asyncio.Event()
        slept.set()
        try:
            while self.t < when:
                await self._moved.wait()
        finally:
            self.deadlines.remove(when)

    def advance_to(self, when: float) -> None:
        self.t = when
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def sleeping_until(self, when: float) -> None:
        """Return once something sleeps until ``when``."""
        while when not in self.deadlines:
            await self._slept.wait()


def heard(project: Project, predicate: Callable[[Event], bool]) -> asyncio.Event:
    """Set when the project's bus delivers an event that ``predicate`` accepts."""
    seen = asyncio.Event()
    project.bus.add_listener(lambda e: seen.set() if predicate(e) else None)
    return seen


def wrote(project: Project, task_id: int, name: str) -> asyncio.Event:
    """Set once the task's agent has written ``name`` in its worktree (seen at its output)."""

    def written(e: Event) -> bool:
        if not isinstance(e, AgentOutput) or e.task_id != task_id:
            return False
        worktree = project.store.get_task(task_id).worktree
        return bool(worktree) and (Path(worktree) / name).exists()

    return heard(project, written)


async def wait(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), WAIT_S)


def until_file(path: Path) -> str:
    """A command the agent runs that returns once ``path`` exists (the test creates it)."""
    code = (
        "import pathlib, time; "
        f"[time.sleep(0.05) for _ in iter(lambda: pathlib.Path({str(path)!r}).exists(), True)]"
    )
    return f'{sys.executable} -c "{code}"'


def batch_project(
    root: Path, tasks: list[dict[str, Any]], schedule: dict[str, Any], **settings: Any
) -> Project:
    project = make_project(
        root,
        tasks,
        agent=PATIENT_AGENT,
        schedules=[{"name": "nightly", "cron": "0 2 * * *", "timezone": "UTC", **schedule}],
        **settings,
    )
    start_generation(project, "g")
    return project


def git(project: Project, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(project.root), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def unfinished_commit(project: Project, task_id: int) -> str:
    return git(project, "log", "-1", "--format=%s", f"task/g-{task_id}").strip()


async def test_a_batch_starts_no_more_tasks_than_max_tasks(fast_tmp: Path) -> None:
    project = batch_project(
        fast_tmp,
        [task(name, files={f"{name.lower()}.py": "X = 1\n"}) for name in ("One", "Two", "Three")],
        {"max_tasks": 2, "notify_on_complete": True},
    )
    result = await Batch(project, project.config.schedules[0]).run()
    event = result.event
    assert (event.outcome, event.generation, event.tasks_done, event.tasks_failed) == (
        "finished",
        "g",
        2,
        0,
    )
    assert event.reason == "max_tasks reached (2 task(s) started)"
    assert event.notify and result.exit_code == 0
    tasks = project.store.list_tasks("g")
    assert [t.state for t in tasks].count(TaskState.DONE) == 2
    (left,) = [t for t in tasks if t.state != TaskState.DONE]
    assert (left.state, left.attempts) == (TaskState.READY, 0)
    assert project.store.events_of_kind("g", ["batch_finished"]) == [event]
    last = read_state(project.state_dir)["last"]["nightly"]
    assert (last["outcome"], last["done"]) == ("finished", 2)
    assert project.store.get_generation("g").state == GenerationState.ACTIVE


async def test_at_max_duration_running_agents_finish_within_the_grace_then_stop_work_kept(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    release = fast_tmp / "release-quick"
    project = batch_project(
        fast_tmp,
        [
            # Finishes once the test says: after max_duration, within the grace.
            task("Quick", files={"quick.py": "Q = 1\n"}, run=[until_file(release)]),
            task("Slow", files={"slow.py": "S = 1\n"}, run=[until_file(fast_tmp / "never")]),
            task("Later", depends_on=[0], files={"later.py": "L = 1\n"}),
        ],
        {"max_duration": "1h", "grace": "10m"},
        max_parallel=2,
    )
    clock = ManualClock(utc("2026-03-01 02:00"))
    both = {1: wrote(project, 1, "quick.py"), 2: wrote(project, 2, "slow.py")}
    quick_done = heard(
        project,
        lambda e: isinstance(e, TaskStateChanged) and e.task_id == 1 and e.new == TaskState.DONE,
    )
    limit = heard(project, lambda e: isinstance(e, Notice) and "max_duration reached" in e.message)
    run = asyncio.create_task(Batch(project, project.config.schedules[0], clock).run())
    await clock.sleeping_until(utc("2026-03-01 03:00"))
    for spoke in both.values():
        await wait(spoke)
    clock.advance_to(utc("2026-03-01 03:00"))
    await wait(limit)
    release.touch()  # Quick may finish: the grace has begun
    await wait(quick_done)
    await clock.sleeping_until(utc("2026-03-01 03:10"))
    clock.advance_to(utc("2026-03-01 03:10"))
    result = await asyncio.wait_for(run, WAIT_S)

    event = result.event
    assert event.outcome == "finished"
    assert event.reason == ("max_duration reached (1h); running agents stopped after the 10m grace")
    assert (event.tasks_done, event.tasks_failed) == (1, 0)
    quick, slow, later = project.store.list_tasks("g")
    assert quick.state == TaskState.DONE
    # Later could start once Quick merged, after max_duration: it was not started.
    assert later.state in (TaskState.PROPOSED, TaskState.READY) and later.attempts == 0
    assert project.store.runs(task_id=later.id) == []
    assert (slow.state, slow.reason) == (TaskState.READY, "interrupted")
    assert unfinished_commit(project, slow.id).startswith("Unfinished: Slow")
    assert "slow.py" in git(project, "show", "--name-only", f"task/g-{slow.id}")
    assert processes_with_token(token) == []
    gen = project.store.get_generation("g")
    assert gen.state == GenerationState.ACTIVE and gen.reason.startswith("batch nightly:")


async def test_the_daemon_fires_on_its_clock_and_ends_on_sigterm_leaving_nothing(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    project = batch_project(
        fast_tmp,
        [
            task("First", files={"first.py": "F = 1\n"}),
            task(
                "Second",
                depends_on=[0],
                files={"second.py": "S = 1\n"},
                run=[until_file(fast_tmp / "never")],
            ),
        ],
        {"max_tasks": 1},
    )
    clock = ManualClock(utc("2026-03-01 01:00"))
    batches: list[BatchFinished] = []
    project.bus.add_listener(lambda e: batches.append(e) if isinstance(e, BatchFinished) else None)
    daemon = ScheduleDaemon(project, clock)
    run = asyncio.create_task(daemon.run())

    first_fire = utc("2026-03-01 02:00")
    await clock.sleeping_until(first_fire)
    state = read_state(project.state_dir)
    assert state["daemon"]["pid"] == os.getpid()
    assert state["next"] == {"nightly": first_fire}
    finished = heard(project, lambda e: isinstance(e, BatchFinished))
    clock.advance_to(first_fire)
    await wait(finished)
    assert [(b.outcome, b.tasks_done, b.reason) for b in batches] == [
        ("finished", 1, "max_tasks reached (1 task(s) started)")
    ]
    second_fire = utc("2026-03-02 02:00")
    await clock.sleeping_until(second_fire)
    assert read_state(project.state_dir)["next"] == {"nightly": second_fire}

    # The second batch's agent hangs; SIGTERM ends the daemon, the batch and the agent.
    spoke = wrote(project, 2, "second.py")
    clock.advance_to(second_fire)
    await wait(spoke)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(run, WAIT_S) == "stopped by SIGTERM"

    assert processes_with_token(token) == []
    assert RunLock(project).free()
    assert read_state(project.state_dir)["daemon"] is None
    assert [(b.outcome, b.reason) for b in batches][1:] == [("failed", "interrupted")]
    second = project.store.get_task(2)
    assert (second.state, second.reason) == (TaskState.READY, "interrupted")
    assert unfinished_commit(project, 2).startswith("Unfinished: Second")
    assert daemon.batches == 1  # the interrupted one never returned a result


async def test_the_daemon_outlives_a_failed_batch(fast_tmp: Path) -> None:
    project = batch_project(fast_tmp, [task("One")], {"generation": "new"})
    (project.root / "app.py").write_text("VALUE = 2\n")  # a person's edit: no new generation
    clock = ManualClock(utc("2026-03-01 01:00"))
    failed = heard(project, lambda e: isinstance(e, BatchFinished) and e.outcome == "failed")
    run = asyncio.create_task(ScheduleDaemon(project, clock).run())
    await clock.sleeping_until(utc("2026-03-01 02:00"))
    clock.advance_to(utc("2026-03-01 02:00"))
    await wait(failed)
    # Still serving: it waits for the next day's batch.
    await clock.sleeping_until(utc("2026-03-02 02:00"))
    last = read_state(project.state_dir)["last"]["nightly"]
    assert last["outcome"] == "failed" and "uncommitted changes (app.py)" in last["reason"]
    assert (project.root / "app.py").read_text() == "VALUE = 2\n"
    assert project.store.runs() == []
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert read_state(project.state_dir)["daemon"] is None


def test_a_batch_that_finds_a_run_in_progress_skips_with_a_notice(fast_tmp: Path) -> None:
    project = batch_project(fast_tmp, [task("One")], {})
    lock = RunLock(project)
    assert lock.acquire()
    try:
        result = cli(project, "schedule", "run", "nightly")
    finally:
        lock.release()
    assert result.returncode == 0, result.stderr
    assert "batch nightly skipped" in result.stdout
    assert f"another run is in progress (shoemaker pid {os.getpid()}" in result.stdout
    assert project.store.runs() == []
    assert project.store.list_tasks("g") == []
    assert read_state(project.state_dir)["last"]["nightly"]["outcome"] == "skipped"


async def test_a_batch_does_not_resume_a_generation_a_budget_paused(fast_tmp: Path) -> None:
    project = batch_project(
        fast_tmp,
        [task("Dear", files={"d.py": "D = 1\n"}, cost_usd=1.0), task("Next")],
        {},
        budgets={"generation": {"usd": 0.5}},
    )
    # The batch that crosses the budget ends as `shoemaker run` does: exit 3.
    crossing = await asyncio.to_thread(cli, project, "schedule", "run", "nightly")
    assert crossing.returncode == 3, crossing.stdout + crossing.stderr
    assert "a budget paused the generation" in crossing.stdout
    paused = project.store.get_generation("g")
    assert paused.state == GenerationState.PAUSED and paused_by_budget(paused.reason)
    runs = len(project.store.runs())

    result = await Batch(project, project.config.schedules[0]).run()
    assert result.event.outcome == "skipped"
    assert "a batch does not resume it" in result.event.reason
    assert paused.reason in result.event.reason
    assert len(project.store.runs()) == runs
    after = project.store.get_generation("g")
    assert (after.state, after.reason) == (GenerationState.PAUSED, paused.reason)


def test_a_batch_does_not_resume_a_generation_a_person_paused(fast_tmp: Path) -> None:
    project = batch_project(fast_tmp, [task("One")], {})
    assert cli(project, "pause").returncode == 0
    result = cli(project, "schedule", "run", "nightly")
    assert result.returncode == 0, result.stderr
    assert "batch nightly skipped" in result.stdout
    assert "generation g was paused by hand: a batch does not resume it" in result.stdout
    assert project.store.runs() == []
    assert project.store.get_generation("g").state == GenerationState.PAUSED
    # Resumed by the person, the generation goes on, and so do the batches.
    assert cli(project, "resume", "--cycles", "1").returncode == 0
    assert [t.state for t in project.store.list_tasks("g")] == [TaskState.DONE]
    result = cli(project, "schedule", "run", "nightly")
    assert result.returncode == 0 and "batch nightly skipped" not in result.stdout, result.stdout


def test_the_daemon_process_refuses_a_second_and_exits_cleanly_on_sigterm(fast_tmp: Path) -> None:
    project = batch_project(fast_tmp, [task("One")], {"cron": "0 2 1 1 *"})
    daemon = subprocess.Popen(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), "schedule", "daemon"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        # Its first words come once it listens for signals and has written its plan.
        line = daemon.stdout.readline()
        assert "schedule daemon: next nightly at" in line and "UTC (UTC)" in line, line
        assert read_state(project.state_dir)["daemon"]["pid"] == daemon.pid
        second = cli(project, "schedule", "daemon")
        assert second.returncode == 2
        assert f"a schedule daemon already serves this repository (pid {daemon.pid})" in (
            second.stderr
        )
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=WAIT_S)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, err
    assert "schedule daemon stopped by SIGTERM after 0 batch(es)" in out
    assert read_state(project.state_dir)["daemon"] is None
    assert project.store.runs() == []


async def test_a_batch_of_a_new_generation_starts_one_from_the_base(fast_tmp: Path) -> None:
    project = batch_project(
        fast_tmp, [task("One", files={"one.py": "O = 1\n"})], {"generation": "new"}
    )
    clock = ManualClock(utc("2026-03-01 02:00"))
    result = await Batch(project, project.config.schedules[0], clock).run()
    event = result.event
    assert (event.outcome, event.tasks_done) == ("finished", 1)
    stamp = datetime.fromtimestamp(clock.now()).strftime("%Y%m%d-%H%M%S")
    assert event.generation == f"nightly-{stamp}"
    new = project.store.get_generation(event.generation)
    assert new.base_branch == project.store.get_generation("g").base_branch
    assert project.git.current_branch() == new.branch
    assert [t.title for t in project.store.list_tasks("g")] == []
