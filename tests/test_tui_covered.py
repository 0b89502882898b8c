"""The main screen while another screen covers it: its panes wait, and catch up when shown.

Textual repaints the screen on top wherever a pane of the one below changes; a hidden output
pane written 30 times a second cost the task screen its redraws. Also: the heap the app
leaves out of full garbage collections while it runs.
"""

from __future__ import annotations

import gc
from pathlib import Path

from textual.widgets import DataTable

from shoemaker.store import NewTask
from shoemaker.tui.app import ShoemakerApp
from shoemaker.tui.bridge import OutputBuffers
from shoemaker.tui.screens import GenerationsScreen, HelpScreen, PlansScreen, plan_progress
from shoemaker.tui.task_screen import TaskScreen
from shoemaker.tui.widgets import OutputPane, TaskQueue
from test_tui import until
from tui_data import CLOCK, fixed_project

SIZE = (120, 36)


def fixed_app(tmp: Path) -> ShoemakerApp:
    return ShoemakerApp(fixed_project(tmp), clock=lambda: CLOCK, follow_idle_s=3600)


async def test_a_covered_main_screen_waits_and_catches_up_when_shown(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.snapshots_loaded > 0)
        pane, queue = app.query_one(OutputPane), app.query_one(TaskQueue)
        await pilot.pause()
        shown = pane.task_id  # the task under the queue's cursor
        before_lines, before_rows = list(pane.lines), len(queue.rows_shown)
        screen = TaskScreen(app.project, 1)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.loads > 0)
        # Output and a new task arrive while the task screen is up.
        for n in range(3):
            app.buffers.add(shown, f"covered line {n}")
        app.buffers.add(-1, "another task's line")
        gen = app.snapshot.current
        assert gen is not None
        app.project.store.add_tasks(gen.name, [NewTask("Arrived meanwhile")], 1, "test")
        loaded = app.snapshots_loaded
        app.refresh_snapshot()
        await until(pilot, lambda: app.snapshots_loaded > loaded)
        app.flush_output()
        assert any(r.title == "Arrived meanwhile" for r in app.snapshot.tasks)  # data is current
        assert list(pane.lines) == before_lines  # …the hidden panes are not redrawn
        assert len(queue.rows_shown) == before_rows
        assert app.buffers.pending == {}  # nothing is condensed for a hidden pane
        await app.pop_screen()
        await pilot.pause()
        assert list(pane.lines)[-3:] == [f"covered line {n}" for n in range(3)]
        assert any(r.title == "Arrived meanwhile" for r in queue.rows_shown)
        assert app.buffers.pending == {}


async def test_a_modal_screen_leaves_the_main_screen_live(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.snapshots_loaded > 0)
        pane = app.query_one(OutputPane)
        await pilot.pause()
        await app.push_screen(HelpScreen([("?", "help", "Show the keys")]))
        assert not app.main_covered
        app.buffers.add(pane.task_id, "seen under the dialog")
        await until(pilot, lambda: "seen under the dialog" in pane.lines)


def test_pending_lines_of_a_hidden_pane_are_bounded() -> None:
    buffers = OutputBuffers()
    for n in range(100):
        buffers.add(1, f"line {n}")
        buffers.add(2, f"other {n}")
    buffers.keep_pending(1, 90)
    assert list(buffers.pending) == [1]
    assert buffers.pending[1][0] == "line 10" and len(buffers.pending[1]) == 90
    assert len(buffers.history(2)) == 100  # the other task's lines stay in history


async def test_the_running_app_leaves_its_startup_heap_out_of_collections(
    fast_tmp: Path,
) -> None:
    assert gc.get_freeze_count() == 0
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.snapshots_loaded > 0)
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0  # given back: the next app's garbage is collected


async def test_a_snapshot_handed_to_a_screen_before_it_is_mounted_is_shown_once_it_is(
    fast_tmp: Path,
) -> None:
    # The engine runs on its own thread: a snapshot may reach a pushed screen before its
    # on_mount has added the table's columns.
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.snapshots_loaded > 0)
        snap = app.snapshot
        for screen, table_id in (
            (GenerationsScreen(snap), "#gens-table"),
            (PlansScreen(snap), "#plans-table"),
        ):
            screen.show(snap)  # not even composed yet: kept for on_mount
            await app.push_screen(screen)
            await pilot.pause()
            table = screen.query_one(table_id, DataTable)
            assert len(table.columns) > 1 and table.row_count == (
                len(snap.generations) if table_id == "#gens-table" else len(plan_progress(snap))
            )
            await app.pop_screen()
