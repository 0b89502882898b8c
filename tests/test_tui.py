"""The dashboard under Textual's Pilot: every key, every task state, pause, quit, attach."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.coordinate import Coordinate
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import DataTable, Log, Static

from agents import new_token, processes_with_token
from projects import check, commit_agent_settings, make_project, task
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.engine.task_detail import load_diff
from shoemaker.engine.transcript_ranges import TranscriptRanges
from shoemaker.events import AgentOutput, AgentStarted, GateResult, MergeResult
from shoemaker.model import GenerationState, TaskState, Usage
from shoemaker.palette import STATE_STYLE
from shoemaker.store import NewTask
from shoemaker.tui.app import ShoemakerApp, make_app
from shoemaker.tui.bridge import (
    FLOOD_REST,
    OUTPUT_LINES,
    SKIPPED,
    TAKE_LINES,
    UNREAD_BYTES,
    UNREAD_LINES,
    EngineEvent,
    OutputBuffers,
    story_lines,
)
from shoemaker.tui.screens import ConfirmScreen, GenerationsScreen, HelpScreen, NoteScreen
from shoemaker.tui.task_screen import TaskScreen
from shoemaker.tui.widgets import FLUSH_S, PANE_LINES, OutputPane, TaskQueue
from tui_data import CLOCK, fixed_project

SIZE = (120, 36)
#: How long a condition may take to come true (an engine run of a few real agents, too) on a
#: loaded machine: a bound so that a bug fails instead of hanging, never a wait.
UNTIL_LIMIT_S = 180.0


async def until(
    pilot: Pilot[None], condition: Callable[[], bool], limit: float = UNTIL_LIMIT_S
) -> None:
    """Let the app run until ``condition`` holds (bounded, so a bug fails instead of hanging)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await pilot.pause(0.02)


def fixed_app(tmp: Path, **kw: object) -> ShoemakerApp:
    # Following stays paused once a key moved the cursor, however slow the machine.
    kw.setdefault("follow_idle_s", 3600)
    return ShoemakerApp(fixed_project(tmp), clock=lambda: CLOCK, **kw)  # type: ignore[arg-type]


def queue_states(app: ShoemakerApp) -> list[TaskState]:
    return [r.state for r in app.query_one(TaskQueue).rows_shown]


async def loaded(pilot: Pilot[None]) -> None:
    """Wait for the first snapshot: until then the keys that need one are disabled."""
    app = pilot.app
    assert isinstance(app, ShoemakerApp)
    await until(pilot, lambda: app.snapshots_loaded > 0)


# -- fixed data -------------------------------------------------------------------------------


async def test_every_task_state_is_rendered_in_its_colour(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        queue = app.query_one(TaskQueue)
        assert set(queue_states(app)) == set(TaskState)
        for row, shown in enumerate(queue.rows_shown):
            cell = queue.get_cell_at(Coordinate(row, 2))
            assert isinstance(cell, Text)
            assert cell.plain == shown.state.value.replace("_", " ")
            assert str(cell.style) == STATE_STYLE[shown.state]
        # Ready tasks first, then running work, finished work last.
        states = queue_states(app)
        assert states[0] == TaskState.READY
        assert states.index(TaskState.RUNNING) < states.index(TaskState.DONE)


async def test_filter_cycles_through_states(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("f")
        assert queue_states(app) == [TaskState.READY]
        assert app.query_one(TaskQueue).border_title == "Tasks · ready"
        await pilot.press("f")
        assert queue_states(app) == [TaskState.RUNNING]
        await pilot.press("f", "f")
        assert queue_states(app) == [TaskState.FAILED]
        app.action_filter(None)
        assert len(queue_states(app)) == 12


async def test_metrics_show_totals_rate_and_eta(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        text = app.metrics.text()
        # The rate is over the two minutes agents worked (the runs overlap), not 12m34s.
        assert "in 36k" in text and "out 4.4k" in text and "$0.28" in text and "$8.45/h" in text
        assert "2/12 done" in text and "+121" in text and "−7" in text
        assert "12m34s" in text and "active 2m00s" in text and "ETA 1m11s" in text


async def test_enter_opens_the_task_and_its_tabs(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        first = app.query_one(TaskQueue).selected_task
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, TaskScreen) and screen.task_id == first
        await until(pilot, lambda: screen.detail is not None)
        for key, tab in (("d", "diff"), ("a", "attempts"), ("p", "prompt"), ("l", "log")):
            await pilot.press(key)
            assert screen.active_tab == tab
        await pilot.press("t")
        assert screen.raw and screen.query_one("#task-log").border_title == "raw stream-json"
        await pilot.press("escape")
        assert not isinstance(app.screen, TaskScreen)


async def test_d_shows_a_merged_diff_and_l_the_log(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        queue = app.query_one(TaskQueue)
        queue.move_cursor(row=[r.id for r in queue.rows_shown].index(1))
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, TaskScreen)
        await until(pilot, lambda: screen.diff is not None)
        assert screen.active_tab == "diff"
        assert screen.diff is not None and screen.diff.source == "merged"
        files = screen.query_one("#diff-files", DataTable)
        assert files.get_row_at(0)[0] == "config.py"
        await pilot.press("escape", "l")
        assert isinstance(app.screen, TaskScreen)
        assert app.screen.active_tab == "log"


async def test_generations_screen_lists_and_switches(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("G")
        assert isinstance(app.screen, GenerationsScreen)
        table = app.screen.query_one("#gens-table", DataTable)
        assert table.get_row_at(0)[:2] == ["g1", "running"]
        await pilot.press("enter")
        assert type(app.screen) is not GenerationsScreen  # (isinstance would narrow for good)
        assert app.generation == "g1"


async def test_timers_firing_during_teardown_touch_nothing(fast_tmp: Path) -> None:
    # The app's own timers keep firing while Textual prunes its screens on exit; a tick
    # or a late snapshot then meets panels whose children are gone.
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        snap = app.snapshot
    assert not app.metrics.is_attached
    app._tick()
    app.flush_output()
    app.apply_snapshot(snap)


async def test_help_lists_every_key_and_why_some_are_disabled(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-table", DataTable)
        rows = {table.get_row_at(i)[1]: table.get_row_at(i)[2] for i in range(table.row_count)}
        assert {
            "Start",
            "Run",
            "Pause",
            "Stop gen",
            "Measure",
            "Open",
            "Diff",
            "Log",
            "Filter",
            "Generations",
            "Resume",
            "Reset",
            "Help",
            "Quit",
        } <= set(rows)
        assert rows["Resume"] == rows["Reset"] == ""  # enabled
        assert rows["Start"] == "a generation is already open"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_nothing_to_pause_in_this_process(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.check_action("pause", ()) is None  # nothing runs in this process
        titles = [t for t, _, _ in app.palette_commands()]
        assert "Run" in titles and "Filter: failed" in titles and "Resume" in titles


# -- a live engine ----------------------------------------------------------------------------


def current_filter(app: ShoemakerApp) -> TaskState | None:
    """The queue's filter, read afresh (a type checker would keep it narrowed across keys)."""
    return app.queue.state_filter


def rehearsal_project(tmp: Path, *tasks: dict[str, object]) -> Project:
    return make_project(tmp, list(tasks))


async def wait_engine(pilot: Pilot[None]) -> None:
    """Wait for the engine's workers to finish: one made by a key just pressed may not have
    begun running yet (pending), and counts too."""
    app = pilot.app
    await until(
        pilot, lambda: not [w for w in app.workers if w.group == "engine" and not w.is_finished]
    )


async def test_keys_start_run_and_stop_a_generation(fast_tmp: Path) -> None:
    project = rehearsal_project(
        fast_tmp, task("A", files={"a.py": "A = 1\n"}), task("B", [0], files={"b.py": "B = 2\n"})
    )
    app = ShoemakerApp(project)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await loaded(pilot)
        await pilot.press("g")
        await wait_engine(pilot)
        await until(pilot, lambda: app.snapshot.current is not None)
        assert app.check_action("start", ()) is None
        await until(pilot, lambda: app.check_action("run", ()) is True)
        await pilot.press("r")
        await wait_engine(pilot)
        await until(pilot, lambda: app.snapshot.totals.done == 2)
        assert {e.event.kind for e in messages if isinstance(e, EngineEvent)} >= {
            "generation_state",
            "task_state",
            "agent_started",
            "merge_result",
            "metrics",
        }
        assert not any(
            isinstance(e, EngineEvent) and isinstance(e.event, AgentOutput) for e in messages
        )  # output lines never become messages
        assert app.buffers.received > 0
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert project.store.open_generations()
        await pilot.press("s", "y")
        await wait_engine(pilot)
        assert project.store.open_generations() == []
        assert project.git.current_branch() == "main" and (project.root / "b.py").exists()


async def test_measure_key_adds_tasks(fast_tmp: Path) -> None:
    project = rehearsal_project(fast_tmp, task("A"), task("B", [0]))
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("m")
        await wait_engine(pilot)
        await until(pilot, lambda: len(app.snapshot.tasks) == 2)
        assert queue_states(app) == [TaskState.READY, TaskState.PROPOSED]


async def test_pause_lets_the_running_task_finish_and_starts_no_other(fast_tmp: Path) -> None:
    # Each agent works until the test lets it finish: the key press lands while the first
    # one works, however busy the machine (a slot is given back before the merge).
    go = fast_tmp / "go"
    project = rehearsal_project(
        fast_tmp, *(task(f"T{i}", run=[wait_for_file(go)]) for i in range(3))
    )
    start_generation(project, "g")
    app = ShoemakerApp(project)
    started = asyncio.Event()
    project.bus.add_listener(
        lambda e: started.set() if isinstance(e, AgentStarted) and e.task_id is not None else None
    )
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await started.wait()
        assert app.check_action("pause", ()) is True
        await pilot.press("p")
        engine = app.engine
        assert engine is not None
        await until(pilot, lambda: engine.paused)
        go.touch()
        await wait_engine(pilot)
    states = [t.state for t in project.store.list_tasks("g")]
    assert states == [TaskState.DONE, TaskState.READY, TaskState.READY]
    assert project.store.get_generation("g").state == GenerationState.PAUSED


async def test_quit_stops_running_agents_cleanly(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    project = rehearsal_project(fast_tmp, task("Hang", outcome="hang", files={"w.py": "w = 1\n"}))
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await until(pilot, lambda: bool(app.buffers.shown(1)))
        assert processes_with_token(token)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None or not app.is_running)
    assert processes_with_token(token) == []
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.READY and t.reason == "interrupted"
    assert project.store.integrity_check() == "ok"
    assert [w.path for w in project.git.worktrees()] == [project.root]


async def test_output_pane_follows_the_running_task(fast_tmp: Path) -> None:
    project = rehearsal_project(
        fast_tmp, task("A", files={"a.py": "A = 1\n"}), task("B", [0], files={"b.py": "B = 2\n"})
    )
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await wait_engine(pilot)
        await until(pilot, lambda: app.query_one(OutputPane).task_id == 2)
        pane = app.query_one(OutputPane)
        await until(pilot, lambda: any("[Write: b.py]" in line for line in pane.lines))
        assert pane.border_title == "Agent output · #2 B"


async def test_the_output_pane_takes_lines_ten_times_a_second_and_only_new_ones_of_its_task(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        flush = [t for t in app._timers if t.name == "flush output"]
        assert len(flush) == 1 and flush[0]._interval == FLUSH_S >= 0.1
        pane = app.query_one(OutputPane)
        writes: list[int] = []
        monkeypatch.setattr(pane, "write_lines", lambda lines, **kw: writes.append(len(lines)))
        app.buffers.add(-1, "a line of a task the pane does not show")
        app.flush_output()
        assert writes == []  # nothing of the shown task arrived: no write, no redraw
        app.buffers.add(pane.task_id, "one")
        app.buffers.add(pane.task_id, "two")
        app.flush_output()
        app.flush_output()
        assert writes == [2]


async def test_a_locked_repository_opens_attached_approves_pauses_kills_and_takes_over(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    project = make_project(
        fast_tmp,
        [
            task("Hang", outcome="hang", heartbeat=1, files={"h.py": "h = 1\n"}),
            task("Migrate", files={"migrations/1.sql": "x\n"}),
            task("Next", [1]),
        ],
        review_globs=["migrations/**"],
        max_parallel=2,
    )
    # The hanging agent must outlive every step below, however busy the machine.
    project = commit_agent_settings(project, max_time_sec=3600)
    start_generation(project, "g")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shoemaker",
        "-C",
        str(project.root),
        "run",
        "--events",
        "none",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not any(t.state == TaskState.RUNNING for t in project.store.list_tasks("g")):
            assert loop.time() < deadline and proc.returncode is None, "the run never started"
            await asyncio.sleep(0.05)
        app = make_app(project.root)  # what plain `shoemaker` opens
        assert app.mode == "attach"
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.other_run == proc.pid)
            await until(pilot, lambda: f"attached to the run of pid {proc.pid}" in app.sub_title)
            assert app.check_action("run", ()) is None
            assert "attached" in app.disabled_reason("run")
            # Approve while the other process runs: the merge goes through the merge lock.
            await until(pilot, lambda: TaskState.NEEDS_REVIEW in queue_states(app))
            await until(pilot, lambda: "1 awaiting review" in app.sub_title)
            cursor_to(app, 2)
            await pilot.press("a")
            await until(pilot, lambda: project.store.get_task(2).state == TaskState.DONE)
            # Pause through the store: the other run starts nothing new.
            await until(pilot, lambda: app.check_action("pause", ()) is True)
            await pilot.press("p")
            await until(
                pilot,
                lambda: project.store.get_generation("g").state == GenerationState.PAUSED,
            )
            # Kill: asks first, then interrupts the other process, which keeps the work.
            await pilot.press("k")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("enter")  # No has the focus
            assert proc.returncode is None
            await pilot.press("k", "y")
            assert await proc.wait() != 0
            # The driving run ended: the dashboard offers to take over.
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            assert (app.mode, app.other_run) == ("live", None)
            await until(pilot, lambda: app.check_action("resume", ()) is True)
            await until(pilot, lambda: "attached" not in app.sub_title)  # at the next snapshot
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert processes_with_token(token) == []
    states = [t.state for t in project.store.list_tasks("g")]
    assert states[:2] == [TaskState.READY, TaskState.DONE]
    assert (project.root / "migrations" / "1.sql").exists()


async def test_follow_can_be_turned_off(fast_tmp: Path) -> None:
    project = rehearsal_project(
        fast_tmp, task("A", files={"a.py": "A = 1\n"}), task("B", files={"b.py": "B = 2\n"})
    )
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("F")
        assert app.follow is False
        await pilot.press("r")
        await wait_engine(pilot)
        await until(pilot, lambda: app.snapshot.totals.done == 2)
        # The pane stayed on the task under the cursor instead of jumping to each new agent.
        assert app.output.task_id == app.queue.selected_task


async def test_next_agent_switches_between_running_agents(fast_tmp: Path) -> None:
    project = rehearsal_project(
        fast_tmp, *(task(f"Hang {i}", outcome="hang", files={f"h{i}.py": "x\n"}) for i in range(3))
    )
    start_generation(project, "g")
    app = ShoemakerApp(project, parallel=3)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await until(pilot, lambda: len(app._running_tasks()) == 3)
        seen = set()
        for _ in range(3):
            await pilot.press("n")
            seen.add(app.output.task_id)
            assert "of 3" in str(app.output.border_subtitle)
        assert seen == {1, 2, 3}
        assert app.check_action("kill_run", ()) is True
        await pilot.press("k")
        assert isinstance(app.screen, ConfirmScreen)
        assert "#1 Hang 0" in str(app.screen.detail)  # names what it stops
        await pilot.press("y")
        await wait_engine(pilot)
        await until(pilot, lambda: not app._running_tasks() and app.snapshot.totals.total == 3)
    assert all(t.state == TaskState.READY for t in project.store.list_tasks("g"))


async def test_review_keys_approve_and_reject(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [
            task("Migrate", files={"migrations/1.sql": "x\n"}),
            task("Migrate more", files={"migrations/2.sql": "y\n"}),
        ],
        review_globs=["migrations/**"],
    )
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await wait_engine(pilot)
        await until(pilot, lambda: queue_states(app).count(TaskState.NEEDS_REVIEW) == 2)
        await pilot.press("v")
        assert queue_states(app) == [TaskState.NEEDS_REVIEW] * 2
        first = app.queue.selected_task
        assert app.check_action("approve", ()) is True
        await pilot.press("a")
        await until(pilot, lambda: project.store.get_task(first or 0).state == TaskState.DONE)
        await until(pilot, lambda: queue_states(app) == [TaskState.NEEDS_REVIEW])
        second = app.queue.selected_task
        await pilot.press("x")
        await pilot.press(*"use a new file", "enter")
        await until(pilot, lambda: project.store.get_task(second or 0).state == TaskState.READY)
    assert project.store.get_task(second or 0).reason == "review rejected it: use a new file"
    assert (project.root / "migrations" / f"{first}.sql").exists()
    assert not (project.root / "migrations" / f"{second}.sql").exists()


async def test_resume_shows_what_recovery_did_and_runs(fast_tmp: Path) -> None:
    project = rehearsal_project(fast_tmp, task("A", files={"a.py": "A = 1\n"}))
    start_generation(project, "g")
    (t,), _ = project.store.add_tasks("g", [NewTask("A", "Do A.")], 1, "test")
    # A crash left the task running.
    project.store.transition_task(t.id, TaskState.RUNNING, "attempt 1", count_attempt=True)
    app = ShoemakerApp(project)
    notes: list[str] = []
    app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("R")
        await wait_engine(pilot)
    assert any("1 task(s) back to ready" in n for n in notes), notes
    assert project.store.get_task(t.id).state == TaskState.DONE


async def test_reset_asks_then_abandons_the_generation(fast_tmp: Path) -> None:
    project = rehearsal_project(fast_tmp)
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("X")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert project.store.get_generation("g").state == GenerationState.ACTIVE
        await pilot.press("X")
        await pilot.press("y")
        await wait_engine(pilot)
    assert project.store.get_generation("g").state == GenerationState.ABANDONED
    assert project.git.current_branch() == "main" and project.git.tags("g-*") == [
        "g-abandoned",
        "g-start",
    ]


# -- every key, every screen, every state -----------------------------------------------------


def binding_keys(*holders: object) -> list[str]:
    """The keys of the bindings of ``holders`` (classes or instances with ``BINDINGS``)."""
    keys: list[str] = []
    for holder in holders:
        for binding in getattr(holder, "BINDINGS", []):
            assert isinstance(binding, Binding)
            keys += [k.strip() for k in binding.key.split(",")]
    return list(dict.fromkeys(keys))


async def press_everything(pilot: Pilot[None], depth: int = 0) -> list[str]:
    """Press every key of the screen on top (its own and the app's), opening each screen a key
    pushes and pressing everything there too; returns the screens visited."""
    app = pilot.app
    screen = app.screen
    visited = [type(screen).__name__]
    keys = [k for k in binding_keys(screen, app) if k not in ("q", "escape")]
    for key in keys:
        await pilot.press(key)
        await pilot.pause()
        assert app.is_running, f"{key} on {type(screen).__name__} ended the app"
        if screen not in app.screen_stack:
            break  # the key closed this screen (switching a generation does)
        if app.screen is not screen:
            if depth == 0 and not isinstance(app.screen, ConfirmScreen | NoteScreen):
                visited += await press_everything(pilot, depth + 1)
            for _ in range(5):
                if app.screen is screen:
                    break
                await pilot.press("escape")
                await pilot.pause()
            assert app.screen is screen, f"{key} left {type(app.screen).__name__} open"
    return visited


def record_errors(app: ShoemakerApp) -> list[str]:
    errors: list[str] = []
    report = app.report_error

    def recorded(title: str, exc: BaseException) -> None:
        errors.append(f"{title}: {exc!r}")
        report(title, exc)

    app.report_error = recorded  # type: ignore[method-assign]
    return errors


def cursor_to(app: ShoemakerApp, task_id: int) -> None:
    queue = app.query_one(TaskQueue)
    queue.move_cursor(row=[r.id for r in queue.rows_shown].index(task_id))


async def stop_engine(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, ShoemakerApp)
    for worker in app.workers:
        if worker.group == "engine":
            worker.cancel()
    await wait_engine(pilot)


async def test_every_key_on_every_screen_idle_with_a_review_and_a_failure(
    fast_tmp: Path,
) -> None:
    app = fixed_app(fast_tmp)
    errors = record_errors(app)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for task_id in (9, 6):  # waiting for review, then failed
            app.action_filter(None)
            cursor_to(app, task_id)
            visited = await press_everything(pilot)
            await stop_engine(pilot)
            assert {"TaskScreen", "GenerationsScreen", "HelpScreen"} <= set(visited)
        assert app.is_running
    assert errors == [], errors


async def test_every_key_on_every_screen_attached(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp, mode="attach")
    errors = record_errors(app)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        cursor_to(app, 9)
        await press_everything(pilot)
        assert app.is_running
    assert errors == [], errors


async def test_every_key_on_every_screen_while_agents_run_and_when_paused(
    fast_tmp: Path,
) -> None:
    project = make_project(
        fast_tmp,
        [
            task("Migrate", files={"migrations/1.sql": "x\n"}),
            task("Broken", outcome="crash"),
            task("Hang", outcome="hang", files={"h.py": "h = 1\n"}),
        ],
        review_globs=["migrations/**"],
        max_retries=0,
    )
    start_generation(project, "g")
    app = ShoemakerApp(project, parallel=3)
    errors = record_errors(app)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await until(
            pilot,
            lambda: (
                {TaskState.NEEDS_REVIEW, TaskState.FAILED, TaskState.RUNNING}
                <= set(queue_states(app))
            ),
        )
        app.engine.pause() if app.engine else None
        await until(pilot, lambda: app.check_action("pause", ()) is None)
        assert app.busy == "running"  # paused, the hanging agent still at work
        await press_everything(pilot)
        assert app.is_running
        await stop_engine(pilot)
        # Idle again, with the review and the failure; a run may start again from here.
        await press_everything(pilot)
        await stop_engine(pilot)
        assert app.is_running
    assert errors == [], errors


async def test_filter_cycles_on_from_the_review_queue_and_v_toggles_it(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("v")
        assert queue_states(app) == [TaskState.NEEDS_REVIEW]
        await pilot.press("f")
        assert app.is_running
        assert app.queue.state_filter not in (None, TaskState.NEEDS_REVIEW)
        await pilot.press("v", "v")
        assert current_filter(app) is None and len(queue_states(app)) == 12
        seen = set()
        for _ in range(len(TaskState) + 1):
            await pilot.press("f")
            seen.add(app.queue.state_filter)
        assert seen == {None, *TaskState}


async def test_an_action_that_raises_is_a_notification_not_an_exit(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)

        def broken() -> None:
            raise RuntimeError("a bug in a key")

        app.action_follow = broken  # type: ignore[method-assign]
        await pilot.press("F")
        await pilot.pause()
        assert app.is_running
        (note,) = [n for n in app._notifications if n.title == "follow failed"]
        assert "RuntimeError: a bug in a key" in note.message and note.severity == "error"


async def test_a_handler_or_timer_that_raises_is_a_notification_not_an_exit(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(TaskQueue, "on_resize", broken)
    monkeypatch.setattr(ShoemakerApp, "_tick", broken)
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.resize_terminal(100, 30)
        await until(pilot, lambda: any(n.title == "tick failed" for n in app._notifications))
        titles = [n.title for n in app._notifications if n.severity == "error"]
        assert "TaskQueue: on_resize failed" in titles
        # Shown once, however often the timer fails again; and every pump goes on.
        assert titles.count("tick failed") == 1
        queue = app.query_one(TaskQueue)
        row = queue.cursor_row
        await pilot.press("down")
        assert app.is_running and queue.cursor_row == row + 1


async def test_the_diff_of_a_task_waiting_for_review_is_its_own(fast_tmp: Path) -> None:
    # One pooled worktree: the second task runs in it while the first waits for review.
    project = make_project(
        fast_tmp,
        [
            task("Migrate", files={"migrations/1.sql": "create table t;\n"}),
            task(
                "Busy",
                files={"busy.py": "b = 1\n"},
                run=[f"{sys.executable} -c 'import time; time.sleep(120)'"],
            ),
        ],
        review_globs=["migrations/**"],
        max_parallel=1,
        # A gate in the worktree keeps the slot until the worktree is given back, so the
        # second task is sure to run in the first one's worktree.
        gates=[{"name": "true", "command": [sys.executable, "-c", "pass"]}],
    )
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await until(pilot, lambda: queue_states(app).count(TaskState.NEEDS_REVIEW) == 1)
        await until(pilot, lambda: any("busy.py" in line for line in app.buffers.shown(2)))
        first, second = project.store.get_task(1), project.store.get_task(2)
        assert first.worktree == second.worktree  # the same pooled worktree
        app.action_filter(TaskState.NEEDS_REVIEW.value)
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, TaskScreen) and screen.task_id == 1
        await until(pilot, lambda: screen.diff is not None)
        assert screen.diff is not None and screen.diff.source == "branch"
        files = screen.query_one("#diff-files", DataTable)
        assert [files.get_row_at(i)[0] for i in range(files.row_count)] == ["migrations/1.sql"]
        assert "busy.py" not in screen.diff.text and "create table t;" in screen.diff.text
        await pilot.press("escape")
        await stop_engine(pilot)


# -- why a task failed --------------------------------------------------------------------------


async def test_why_a_task_failed_is_one_key_away(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [task("Gate fails", files={"a.py": "A = 1\n"}), task("Crashes", outcome="crash")],
        gates=[
            check(
                "tests",
                "import sys; print('noise\\n' * 30 + 'expected 4, got 3'); sys.exit(1)",
                tasks=["Gate*"],
            )
        ],
        max_retries=1,
        max_parallel=2,
    )
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await wait_engine(pilot)
        await until(pilot, lambda: queue_states(app).count(TaskState.FAILED) == 2)
        # The main screen: the gates' verdicts and the crashed agent's last words, in colour.
        gate_line = "» verifying: tests… failed (exit 1)"
        assert gate_line in app.buffers.shown(1)
        await until(pilot, lambda: len(app.buffers.shown(2)) > 0)
        crashed = list(app.buffers.shown(2))
        assert any(line.startswith("» ended: ") for line in crashed)
        await until(pilot, lambda: any("» stderr: TypeError" in x for x in app.buffers.shown(2)))
        highlight = app.output.highlighter
        assert "red" in str(highlight(Text(gate_line)).spans[0].style)
        assert "cyan" in str(highlight(Text("[Write: a.py]")).spans[0].style)
        assert "red" in str(highlight(Text("[ERROR: result error]")).spans[0].style)
        # Attention: notifications and the header's count.
        await until(pilot, lambda: "2 failed" in app.sub_title)
        titles = [n.title for n in app._notifications]
        assert titles.count("task failed") == 2
        # The task screen: the Attempts tab says why, for the latest attempt first.
        cursor_to(app, 1)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, TaskScreen)
        await until(pilot, lambda: screen.detail is not None)
        await pilot.press("a")
        why = screen.query_one("#why-text", Static)
        assert "attempt 2 · verifying: tests… failed (exit 1" in str(why.render())
        assert "expected 4, got 3" in str(why.render())
        # The verdict arrived while its tab was hidden: shown, it opens on its last line.
        pane = screen.query_one("#why", VerticalScroll)
        await pilot.pause()
        assert pane.max_scroll_y > 0 and pane.scroll_y == pane.max_scroll_y
        gates = screen.query_one("#gates", DataTable)
        assert [gates.get_row_at(i)[1] for i in range(gates.row_count)] == ["1", "2"]
        gates.focus()
        await pilot.press("up")
        assert "attempt 1 · verifying" in str(why.render())
        # The log ends each attempt with the gates' verdicts.
        assert screen.detail is not None
        log = list(screen.detail.log)
        assert sum(line.startswith("» verifying: tests… failed (exit 1") for line in log) == 2
        assert "»   expected 4, got 3" in log
        # Enter on the task screen opens nothing more; escape goes back.
        await pilot.press("l", "enter")
        assert app.screen is screen
        await pilot.press("escape")
        cursor_to(app, 2)
        await pilot.press("enter")
        crash_screen = app.screen
        assert isinstance(crash_screen, TaskScreen)
        await until(pilot, lambda: crash_screen.detail is not None)
        await pilot.press("a")
        text = str(crash_screen.query_one("#why-text", Static).render())
        assert "stderr:" in text and "TypeError: Cannot read properties" in text
        assert crash_screen.detail is not None
        assert any(x.startswith("» stderr: TypeError") for x in crash_screen.detail.log)


async def test_the_task_screen_reloads_only_while_the_task_is_active(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        done = TaskScreen(app.project, 1, refresh_s=0.02)
        await app.push_screen(done)
        # Its first load is a thread's: on a busy machine it may outlast any number of ticks.
        await until(pilot, lambda: done.loads == 1)
        ticks = done.ticks
        await until(pilot, lambda: done.ticks >= ticks + 10)
        assert done.loads == 1  # done: loaded once


async def test_the_task_screen_keeps_the_log_scroll_while_the_agent_works(fast_tmp: Path) -> None:
    files = {f"f{i:02}.py": f"x = {i}\n" for i in range(24)}
    # The agent holds twice: new work arrives only after the test has looked, however slow.
    more_log, more_files = fast_tmp / "more-log", fast_tmp / "more-files"
    holds = [{"after": 12, "for": str(more_log)}, {"after": 18, "for": str(more_files)}]
    project = rehearsal_project(fast_tmp, task("Slow", files=files, wait=holds))
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await until(pilot, lambda: len(app.buffers.shown(1)) >= 2)
        screen = TaskScreen(project, 1, refresh_s=0.05)
        await app.push_screen(screen)
        log = screen.query_one("#task-log", Log)
        await until(pilot, lambda: log.max_scroll_y > 3)
        log.scroll_to(y=2, animate=False)
        await pilot.pause()
        shown = len(screen._log_shown)
        more_log.touch()
        await until(pilot, lambda: len(screen._log_shown) > shown + 3)
        assert log.scroll_y == 2  # new lines were appended; the place was kept
        # The file list grows as the agent writes; the cursor stays on the file it was on.
        await pilot.press("d")
        file_list = screen.query_one("#diff-files", DataTable)
        await until(pilot, lambda: file_list.row_count >= 4)
        file_list.move_cursor(row=2, animate=False)
        picked, count = file_list.get_row_at(2)[0], file_list.row_count
        more_files.touch()
        await until(pilot, lambda: file_list.row_count > count)
        assert file_list.cursor_row == 2 and file_list.get_row_at(2)[0] == picked
        await wait_engine(pilot)
        await until(pilot, lambda: screen.detail is not None and not screen.live)
        loads, ticks = screen.loads, screen.ticks
        await until(pilot, lambda: screen.ticks >= ticks + 10)
        assert screen.loads == loads  # finished: no more reloading
        # Enter on a file jumps the diff to it (once the finished diff lists every file).
        await until(pilot, lambda: file_list.row_count == len(files))
        file_list.focus()
        file_list.move_cursor(row=10, animate=False)
        await pilot.press("enter")
        scroll = screen.query_one("#diff-scroll")
        target = screen._file_starts[str(file_list.get_row_at(10)[0])]
        assert target > 0 and scroll.scroll_y == target


async def test_the_task_screen_says_loading_until_it_has_loaded(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import shoemaker.tui.task_screen as screens

    gate = threading.Event()
    real = load_diff

    def held(project: Project, task_id: int) -> object:
        gate.wait(30)
        return real(project, task_id)

    monkeypatch.setattr(screens, "load_diff", held)
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = TaskScreen(app.project, 3, tab="diff", refresh_s=0.02)
        await app.push_screen(screen)
        await pilot.pause()
        assert "loading…" in str(screen.query_one("#diff-text", Static).render())
        assert "loading…" in str(screen.query_one("#task-summary", Static).render())
        gate.set()
        await until(pilot, lambda: screen.loads >= 1)
        assert "loading…" not in str(screen.query_one("#task-summary", Static).render())


# -- following, attention, keys and dialogs -----------------------------------------------------


def wait_for_file(path: Path) -> str:
    """A command for the rehearsal agent's `run`: returns once ``path`` exists, so that a test
    decides when that agent finishes (however slow the machine is)."""
    return (
        f'{sys.executable} -c "import os, time; '
        f"[time.sleep(0.02) for _ in iter(lambda: os.path.exists('{path}'), True)]\""
    )


async def test_follow_never_moves_the_cursor_the_person_just_moved(fast_tmp: Path) -> None:
    go = fast_tmp / "go"
    project = rehearsal_project(
        fast_tmp,
        task("A", files={"a.py": "A = 1\n"}, run=[wait_for_file(go)]),
        task("B", [0], outcome="hang", heartbeat=1),
        task("C", [1]),
    )
    start_generation(project, "g")
    app = ShoemakerApp(project, follow_idle_s=3600)
    started: list[int | None] = []

    def hook(message: Message) -> None:
        if isinstance(message, EngineEvent) and isinstance(message.event, AgentStarted):
            started.append(message.event.task_id)

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await until(pilot, lambda: app.output.task_id == 1)  # nobody touched anything yet
        await until(pilot, lambda: len(app.queue.rows_shown) == 3)
        app.queue.focus()
        for _ in range(20):  # the person walks to C, which waits for B
            if app.queue.selected_task == 3:
                break
            ids = [r.id for r in app.queue.rows_shown]
            await pilot.press("down" if ids.index(3) > app.queue.cursor_row else "up")
        assert app.output.task_id == 3
        go.touch()  # A finishes only now: B's agent starts while the person is on C
        await until(pilot, lambda: 2 in started)
        await pilot.pause()
        # B's agent started while the person was on C: the pane and the cursor stayed there.
        assert app.queue.selected_task == 3 and app.output.task_id == 3
        app._tick()
        assert str(app.output.border_subtitle).startswith("paused")
        # Once the person leaves it alone long enough, following goes on.
        app.follow_idle_s = 0
        app._tick()
        assert str(app.output.border_subtitle).startswith("following")
        await stop_engine(pilot)


async def test_help_lists_every_key_of_the_screen_it_opens_on(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = {row[0] for row in app.screen.rows}
        assert {"F", "k", "a", "x", "n", "v", "X", "R", "G"} <= keys  # hidden ones too
        await pilot.press("escape", "enter")
        assert isinstance(app.screen, TaskScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        actions = {row[1] for row in app.screen.rows}
        assert {"Back", "Log", "Diff", "Attempts", "Prompt", "Raw/condensed", "Help"} <= actions
        assert not {"Start", "Run", "Open", "Filter"} & actions  # main-screen keys


async def test_footer_offers_approve_and_reject_on_a_task_that_needs_review(
    fast_tmp: Path,
) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=(160, 48)) as pilot:
        await loaded(pilot)
        cursor_to(app, 1)
        await pilot.pause()
        shown = app.screen.active_bindings
        assert "a" not in shown or not shown["a"].enabled
        cursor_to(app, 9)
        await pilot.pause()
        shown = app.screen.active_bindings
        assert shown["a"].enabled and shown["a"].binding.description == "Approve"
        assert shown["x"].enabled and shown["x"].binding.description == "Reject"
        # The header counts what waits for the person.
        assert "1 awaiting review · 1 failed · 1 in conflict · 1 blocked" in app.sub_title


async def test_stop_asks_with_the_tasks_left_undone_and_enter_says_no(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("s")
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert "9 task(s) are left undone" in dialog.detail and "#9 Touch the migrations" in (
            dialog.detail
        )
        assert app.focused is not None and app.focused.id == "no"
        detail = dialog.query_one(".detail", Static)
        assert detail.size.height > 1  # wrapped, not cut
        await pilot.press("enter")
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.project.store.open_generations()  # nothing stopped
        await pilot.press("x")  # the cursor is on a ready task: reject does nothing
        assert not isinstance(app.screen, NoteScreen)
        cursor_to(app, 9)
        await pilot.press("x")
        note = app.screen
        assert isinstance(note, NoteScreen)
        box = note.query_one("#confirm-box")
        assert abs(box.region.x - (80 - box.region.right)) <= 1  # centred
        await pilot.press("enter")  # no note: nothing is sent
        assert app.screen is note
        await pilot.press("escape")
        assert app.project.store.get_task(9).state == TaskState.NEEDS_REVIEW


def test_screens_do_not_import_the_app() -> None:
    code = (
        "import sys, shoemaker.tui.screens, shoemaker.tui.task_screen, shoemaker.tui.widgets; "
        "sys.exit('shoemaker.tui.app' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


async def test_a_task_screen_that_cannot_load_says_so_in_place(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = TaskScreen(app.project, 999, refresh_s=0.02)
        await app.push_screen(screen)
        summary = screen.query_one("#task-summary", Static)
        # Each load is a thread's: wait for the first to fail, not for a number of ticks.
        await until(pilot, lambda: "cannot load task #999" in str(summary.render()))
        ticks = screen.ticks
        await until(pilot, lambda: screen.ticks >= ticks + 5)  # the ticks try again
        assert "cannot load task #999" in str(summary.render())
        assert app.is_running and not list(app._notifications)


def test_story_lines_say_what_shoemaker_did() -> None:
    merged = MergeResult(task_id=1, branch="task/g-1", merged=True, commit="abc1234def")
    conflict = MergeResult(
        task_id=2,
        branch="task/g-2",
        merged=False,
        conflict_files=["store.py"],
        reason="conflict",
    )
    gate = GateResult(task_id=1, name="tests", where="merged", passed=False, exit_code=2)
    assert story_lines(merged) == ["» merged as abc1234"]
    assert story_lines(conflict) == ["» merge failed: store.py (conflict)"]
    assert story_lines(gate) == ["» after the merge: tests… failed (exit 2)"]
    assert story_lines(AgentStarted(run_id=1, task_id=1, phase="stitch", argv=[], cwd="/")) == []


def test_the_diff_of_a_task_sent_back_shows_its_last_attempt(fast_tmp: Path) -> None:
    project = rehearsal_project(fast_tmp)
    gen = start_generation(project, "g")
    (t,), _ = project.store.add_tasks("g", [NewTask("A", "Do A.")], 1, "test")
    git = project.git
    assert load_diff(project, t.id).source == "none"
    for n, text in ((1, "first\n"), (2, "second\n")):
        branch = f"attempt/g-{t.id}-{n}"
        git.create_branch(branch, gen.branch)
        git.checkout(branch)
        (project.root / "a.py").write_text(text)
        git.commit_all(project.root, f"attempt {n}")
        git.checkout(gen.branch)
    diff = load_diff(project, t.id)
    assert (diff.source, diff.ref) == ("attempt", f"attempt/g-{t.id}-2")
    assert [f.path for f in diff.stat.files] == ["a.py"] and "+second" in diff.text


def test_a_batch_of_output_read_back_from_the_store_is_condensed_from_its_transcript(
    tmp_path: Path,
) -> None:
    from textual.message_pump import MessagePump

    from shoemaker.store import Store
    from shoemaker.tui.bridge import EventBridge

    # What attach mode does: another process ran the agent and wrote the batches (references
    # into the transcript), this one reads them back and condenses what it shows.
    writer = Store(tmp_path / "shoemaker.db")
    task_id = None  # measure's run: no task needed
    run_id = writer.start_run(
        generation=None,
        task_id=task_id,
        phase="measure",
        attempt=1,
        prompt="p",
        argv=["a"],
        env_names=[],
        cwd="/w",
    )
    lines = [
        {"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "a"}]}},
        {"type": "stream_event", "event": {}},
        {
            "type": "assistant",
            "message": {
                "id": "m2",
                "content": [{"type": "tool_use", "name": "Read", "input": {"file_path": "/w/x"}}],
            },
        },
    ]
    first = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    second = b"{\r\n"
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / f"{run_id}.jsonl").write_bytes(first + second)
    writer.append_events(
        [
            AgentOutput.of("g", run_id, task_id, (0, len(first)), 3),
            AgentOutput.of("g", run_id, task_id, (len(first), len(first) + len(second)), 1),
        ]
    )
    buffers = OutputBuffers()
    bridge = EventBridge(MessagePump(), buffers)
    bridge.ranges = TranscriptRanges(Store(tmp_path / "shoemaker.db"), runs)
    for _, event in Store(tmp_path / "shoemaker.db").events_after(0):
        bridge(event)
    assert buffers.received == 4 and bridge.seen == 2
    assert buffers.take(task_id) == ["a", "[Read: x]", "[not JSON: {]"]
    # Once the run has ended its transcript is the store's; a batch read then comes from there.
    writer.finish_run(
        run_id, transcript=runs / f"{run_id}.jsonl", exit_code=0, ended="result", ok=True
    )
    (runs / f"{run_id}.jsonl").unlink()
    again = OutputBuffers()
    bridge = EventBridge(MessagePump(), again)
    bridge.ranges = TranscriptRanges(Store(tmp_path / "shoemaker.db"), runs)
    for _, event in Store(tmp_path / "shoemaker.db").events_after(0):
        bridge(event)
    assert again.history(task_id) == ["a", "[Read: x]", "[not JSON: {]"]


def test_a_batch_longer_than_what_is_kept_is_condensed_only_as_far_as_kept() -> None:
    asked: list[int | None] = []

    def shown(most: int | None) -> list[tuple[str, str]]:
        asked.append(most)
        texts = [f"{n}" for n in range(OUTPUT_LINES + 5)]
        assert most is not None
        return [("assistant", t) for t in texts[-most:]]

    buffers = OutputBuffers()
    buffers.add(4, "story line")
    buffers.extend(4, AgentOutput.of("g", 1, 4, (0, 10), OUTPUT_LINES + 5, shown))
    assert asked == []  # nothing condensed until the lines are asked for
    history = buffers.history(4)
    # As many as the pane shows, not more: the older ones it would only drop.
    assert asked == [OUTPUT_LINES] and OUTPUT_LINES == PANE_LINES
    assert (
        len(history) == OUTPUT_LINES and history[0] == "5" and history[-1] == f"{OUTPUT_LINES + 4}"
    )


def test_output_nobody_asks_for_is_never_condensed_and_its_oldest_batches_go_raw() -> None:
    asked: list[tuple[int, int | None]] = []

    def batch(n: int) -> AgentOutput:
        def shown(most: int | None) -> list[tuple[str, str]]:
            asked.append((n, most))
            return [("assistant", f"{n}.{k}") for k in range(1000)][-(most or 1000) :]

        return AgentOutput.of("g", 1, 2, (0, 10), 1000, shown)

    buffers = OutputBuffers()
    buffers.add(2, "settled")
    assert buffers.shown(2) == ["settled"]
    batches = 3 * UNREAD_LINES // 1000
    for n in range(batches):
        buffers.extend(2, batch(n))
    # Far more than the buffers keep arrived, and none of it was condensed.
    assert asked == [] and buffers.received == 1 + batches * 1000
    # Shown at last: only the newest batches are condensed, as many lines as are kept, and
    # the line settled before the dropped batches does not sit before them as if adjacent.
    shown = buffers.shown(2)
    assert [n for n, _ in asked] == list(range(batches - 1, batches - 1 - OUTPUT_LINES // 1000, -1))
    assert len(shown) == OUTPUT_LINES and "settled" not in shown
    assert shown[-1] == f"{batches - 1}.999" and shown[0] == f"{batches - OUTPUT_LINES // 1000}.0"


def test_output_waiting_is_bounded_by_its_bytes_too() -> None:
    asked: list[int | None] = []

    def shown(most: int | None) -> list[tuple[str, str]]:
        asked.append(most)
        return [("assistant", "big")]

    buffers = OutputBuffers()
    for _ in range(5):
        buffers.extend(3, AgentOutput.of("g", 1, 3, (0, UNREAD_BYTES // 2), 1, shown))
    assert asked == []
    # Two batches of half the bound fit it; the three older ones went uncondensed.
    assert buffers.shown(3) == ["big", "big"] and len(asked) == 2


def test_output_not_yet_shown_is_bounded_and_keeps_the_newest_lines() -> None:
    lines = [f"line {n}" for n in range(OUTPUT_LINES + 10)]
    # The pane's intake takes the newest TAKE_LINES, after a line saying older ones were
    # skipped: an agent printing faster than anyone reads is not condensed line by line.
    buffers = OutputBuffers()
    for line in lines:
        buffers.add(1, line)
    assert buffers.take(1) == [SKIPPED, *lines[-TAKE_LINES:]]
    # Within the bound, every line, and nothing said.
    calm = OutputBuffers()
    calm.add(1, "one more")
    assert calm.take(1) == ["one more"]
    assert calm.take(1) == []
    # Opening a task (its history) shows as many as the pane keeps.
    opened = OutputBuffers()
    for line in lines:
        opened.add(1, line)
    assert opened.history(1) == lines[-OUTPUT_LINES:]


def test_a_flooding_task_is_taken_every_third_intake() -> None:
    buffers = OutputBuffers()
    flood = [f"line {n}" for n in range(3 * TAKE_LINES)]
    for line in flood:
        buffers.add(1, line)
    assert buffers.take(1) == [SKIPPED, *flood[-TAKE_LINES:]]
    # The next FLOOD_REST intakes pass over what arrives; the one after takes the newest.
    for n in range(FLOOD_REST):
        buffers.add(1, f"meanwhile {n}")
        assert buffers.take(1) == []
    assert buffers.take(1) == [f"meanwhile {n}" for n in range(FLOOD_REST)]
    assert buffers.take(1) == []  # no flood: nothing rests
    # A flood rests until another task is shown: its history comes whole, at once.
    for line in flood:
        buffers.add(1, line)
    buffers.add(2, "the other task")
    assert buffers.take(1)[0] == SKIPPED and buffers.resting == FLOOD_REST
    assert buffers.history(2) == ["the other task"] and buffers.resting == 0
    buffers.add(2, "and then")
    assert buffers.take(2) == ["and then"]


def test_a_batch_larger_than_an_intake_is_condensed_only_for_its_newest_lines() -> None:
    asked: list[int | None] = []

    def shown(most: int | None) -> list[tuple[str, str]]:
        asked.append(most)
        return [("assistant", f"{n}") for n in range(1000)][-(most or 1000) :]

    buffers = OutputBuffers()
    buffers.extend(4, AgentOutput.of("g", 1, 4, (0, 10), 1000, shown))
    taken = buffers.take(4)
    assert asked == [TAKE_LINES] and taken == [SKIPPED, *(f"{n}" for n in range(800, 1000))]


async def test_the_attempts_of_a_mixed_history_show_each_kind_its_model_and_cost(
    fast_tmp: Path,
) -> None:
    project = make_project(fast_tmp, [])
    start_generation(project, "g")
    (only,), _ = project.store.add_tasks("g", [NewTask("Write hello", "Write hello.py.")], 1, "t")
    # Attempt 1 by codex (stopped, priced from its tokens), attempt 2 by gemini.
    for attempt, kind, model, usage, cost in (
        (1, "codex", "gpt-5.5", Usage(2000, 80, 0, 400), 0.00335),
        (2, "gemini", "gemini-2.5-flash", Usage(1500, 60, 0, 300), 0.00062),
    ):
        run_id = project.store.start_run(
            generation="g",
            task_id=only.id,
            phase="stitch",
            attempt=attempt,
            prompt="Write hello.py.",
            argv=[kind, "-m", model],
            env_names=[],
            cwd=str(project.root),
            agent_kind=kind,
            model=model,
        )
        project.store.finish_run(
            run_id,
            transcript=b"",
            usage=usage,
            cost_usd=cost,
            cost_estimated=True,
            exit_code=0 if kind == "gemini" else 1,
            ok=kind == "gemini",
            reason="" if kind == "gemini" else "cancelled: stopped by shoemaker",
        )
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, TaskScreen) and screen.task_id == only.id
        await until(pilot, lambda: screen.detail is not None)
        await pilot.press("a")
        runs = screen.query_one("#runs", DataTable)
        await until(pilot, lambda: runs.row_count == 2)
        rows = [[str(cell) for cell in runs.get_row_at(i)] for i in range(runs.row_count)]
        by_try = {row[0]: row for row in rows}
        assert by_try["1"][2] == "codex gpt-5.5" and by_try["1"][7] == "~$0.003"
        assert by_try["1"][6] == "2.0k/80" and by_try["2"][6] == "1.5k/60"
        assert by_try["2"][2] == "gemini gemini-2.5-flash" and by_try["2"][7] == "~$0.001"


#: A gate that passes once a person has committed ``ready.txt``.
NEEDS_READY = "import pathlib, sys; sys.exit(0 if pathlib.Path('ready.txt').exists() else 1)"


def screen_shown(app: ShoemakerApp) -> object:
    """The screen shown, read afresh (a type checker would keep it narrowed across keys)."""
    return app.screen


async def test_the_retry_key_runs_a_failed_task_again_and_it_lands(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [
            task("Needs ready", files={"a.py": "A = 1\n"}),
            task("After it", [0], files={"b.py": "B = 1\n"}),
        ],
        gates=[check("ready", NEEDS_READY)],
        max_retries=0,
    )
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        await wait_engine(pilot)
        first, after = project.store.list_tasks("g")
        assert (first.state, after.state) == (TaskState.FAILED, TaskState.BLOCKED)
        await until(pilot, lambda: TaskState.FAILED in queue_states(app))
        # The dependent's retry is refused, in a notification: its dependency failed.
        cursor_to(app, after.id)
        await until(pilot, lambda: app.check_action("retry", ()) is True)
        await pilot.press("e")
        assert isinstance(screen_shown(app), NoteScreen)
        await pilot.press("enter")  # no note: a retry does not need one
        await until(pilot, lambda: any(n.title == "retry" for n in app._notifications))
        (refused,) = [n for n in app._notifications if n.title == "retry"]
        assert refused.severity == "error" and f"retry {first.id} {after.id}" in refused.message
        assert project.store.get_task(after.id).state == TaskState.BLOCKED
        # The person fixes what the gate needs and retries the task from its own screen.
        (project.root / "ready.txt").write_text("yes\n")
        project.git.commit_all(project.root, "the file the gate wants")
        cursor_to(app, first.id)
        await pilot.press("enter")
        assert isinstance(screen_shown(app), TaskScreen)
        await until(pilot, lambda: app.check_action("retry", ()) is True)
        await pilot.press("e")
        await pilot.press(*"ready.txt is there", "enter")
        await until(pilot, lambda: project.store.get_task(first.id).state == TaskState.READY)
        # No run is going: the notification says what starts one.
        await until(pilot, lambda: any("r runs it" in n.message for n in app._notifications))
        await pilot.press("escape")
        await pilot.press("r")
        await wait_engine(pilot)
        first, after = project.store.list_tasks("g")
        assert (first.state, after.state) == (TaskState.DONE, TaskState.DONE), first.reason
        assert (
            "a person retried it: ready.txt is there"
            in project.store.runs(task_id=first.id)[-1].prompt
        )
        # On a done task the key is gone from the footer.
        await until(pilot, lambda: queue_states(app).count(TaskState.DONE) == 2)
        cursor_to(app, first.id)
        await pilot.pause()
        assert app.check_action("retry", ()) is False
        shown = [b.action for _, b, enabled, _ in app.screen.active_bindings.values() if enabled]
        assert "retry" not in shown and "run" in shown
