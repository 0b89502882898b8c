"""Pictures of the dashboard with fixed data and a fixed clock, at 80×24, 160×48 and 220×55."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from shoemaker.tui.app import ShoemakerApp
from shoemaker.tui.task_screen import TaskScreen
from test_tui import fixed_app, loaded, until
from tui_data import CLOCK, agent_at_work, assistant_line, fixed_project, live_worktree

SIZES = [(80, 24), (160, 48)]
#: From 160 columns on the main screen has a diff side panel; at 220 it has room to read.
WIDE = (220, 55)


async def settled(pilot: Pilot[None], task_id: int) -> None:
    """The cursor's task shown in the output pane (and in the diff side panel, when the
    screen is wide enough for it), and the footer redrawn for it."""
    app = pilot.app
    assert isinstance(app, ShoemakerApp)
    side = app.side
    await until(pilot, lambda: app.output.task_id == task_id and app.output.line_count > 0)
    await until(
        pilot, lambda: not side.display or (side.task_id == task_id and side.diff is not None)
    )
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


async def main_ready(pilot: Pilot[None]) -> None:
    """The queue loaded and the cursor on the running task, whose output is shown."""
    await loaded(pilot)
    await pilot.press("down")
    await settled(pilot, 3)


async def merged_task_ready(pilot: Pilot[None]) -> None:
    """The cursor on the first merged task: its diff in the side panel."""
    await loaded(pilot)
    app = pilot.app
    assert isinstance(app, ShoemakerApp)
    ids = [r.id for r in app.queue.rows_shown]
    app.queue.move_cursor(row=ids.index(1))
    await settled(pilot, 1)


async def task_ready(pilot: Pilot[None]) -> None:
    await main_ready(pilot)
    await pilot.press("enter")
    screen = pilot.app.screen
    assert isinstance(screen, TaskScreen)
    await until(pilot, lambda: screen.detail is not None)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(
    snap_compare: Callable[..., bool], fast_tmp: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(fixed_app(fast_tmp), terminal_size=size, run_before=main_ready)


def test_main_screen_with_a_running_agent_and_its_live_diff(
    snap_compare: Callable[..., bool], fast_tmp: Path
) -> None:
    """Task #3's agent at work: what it spent so far in its row and in the metrics, and
    what it changed so far beside the queue."""
    project = fixed_project(fast_tmp)
    agent_at_work(project, 3, [assistant_line("m1", "Rendering the queue.", 1800, 240)])
    live_worktree(
        project, 3, {"queue.py": "def render(rows):\n    return [str(r) for r in rows]\n"}
    )
    app = ShoemakerApp(project, clock=lambda: CLOCK, follow_idle_s=3600)
    assert snap_compare(app, terminal_size=WIDE, run_before=main_ready)


def test_main_screen_with_a_merged_diff_beside_the_queue(
    snap_compare: Callable[..., bool], fast_tmp: Path
) -> None:
    assert snap_compare(fixed_app(fast_tmp), terminal_size=WIDE, run_before=merged_task_ready)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_task_screen(
    snap_compare: Callable[..., bool], fast_tmp: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(fixed_app(fast_tmp), terminal_size=size, run_before=task_ready)


async def failed_task_attempts(pilot: Pilot[None]) -> None:
    """The failed task's Attempts tab: its gate, and why it failed."""
    await loaded(pilot)
    app = pilot.app
    assert isinstance(app, ShoemakerApp)
    app.action_filter("failed")
    await pilot.press("enter")
    screen = app.screen
    assert isinstance(screen, TaskScreen) and screen.task_id == 6
    await until(pilot, lambda: screen.detail is not None)
    await pilot.press("a")
    await pilot.pause()


async def stop_dialog(pilot: Pilot[None]) -> None:
    await loaded(pilot)
    await pilot.press("s")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_failed_task_attempts(
    snap_compare: Callable[..., bool], fast_tmp: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(fixed_app(fast_tmp), terminal_size=size, run_before=failed_task_attempts)


def test_stop_dialog(snap_compare: Callable[..., bool], fast_tmp: Path) -> None:
    assert snap_compare(fixed_app(fast_tmp), terminal_size=(80, 24), run_before=stop_dialog)
