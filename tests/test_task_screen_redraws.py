"""What the dashboard redraws: a task screen's tab switch moves the underline at once (no
0.3 s slide of redraws), a reload that changes only the summary's text lays nothing out again,
a snapshot redraws only the metrics rows and queue rows it changed, and the output pane
grows without laying the screen out."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import events
from textual.widgets import Tabs

from shoemaker.tui.task_screen import TaskScreen
from shoemaker.tui.widgets import PANE_LINES, OutputPane, TaskQueue
from test_tui import SIZE, UNTIL_LIMIT_S, fixed_app, loaded, until
from tui_data import count_layouts


async def test_a_tab_switch_moves_the_underline_at_once(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = TaskScreen(app.project, 1, refresh_s=3600)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.loads == 1)
        tabs = screen.query_one(Tabs)
        underline: Any = tabs.query_one("Underline")

        def span(tab: str) -> tuple[int, int]:
            shown = tabs.query_one(f"#tab-{tab}")
            start, end = shown.virtual_region.shrink(shown.styles.gutter).column_span
            return start, end

        # Placed under the first tab after the first refresh.
        await until(
            pilot, lambda: (underline.highlight_start, underline.highlight_end) == span("log")
        )
        for key, tab in (("a", "attempts"), ("p", "prompt"), ("l", "log")):
            before = (underline.highlight_start, underline.highlight_end)
            # As a terminal's key arrives: `pilot.press` would wait for animations to end.
            app.post_message(events.Key(key, key))
            while screen.active_tab != tab:
                await asyncio.sleep(0.01)
            target = span(tab)
            seen = set()
            # Placed after the next refresh, however late that comes on a busy machine; then
            # watched 0.5 s more (a slide would begin 0.02 s after the switch and last 0.3 s).
            # At no moment is it animated or anywhere but before or under the target.
            loop = asyncio.get_running_loop()
            deadline, watched = loop.time() + UNTIL_LIMIT_S, 0
            while watched < 25:
                await asyncio.sleep(0.02)
                assert not app.animator.is_being_animated(underline, "highlight_start"), key
                place = (underline.highlight_start, underline.highlight_end)
                seen.add(place)
                assert seen <= {before, target}, (key, seen)
                if place == target:
                    watched += 1
                assert loop.time() < deadline, (key, "the underline never moved")
            assert (underline.highlight_start, underline.highlight_end) == target, key


async def test_a_new_summary_is_drawn_without_laying_the_screen_out(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = TaskScreen(app.project, 1, refresh_s=3600)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.loads == 1)
        await pilot.pause()
        layouts = count_layouts(screen)
        assert screen.detail is not None
        task = screen.detail.task
        screen._summary(replace(screen.detail, task=replace(task, cost_usd=task.cost_usd + 1)))
        summary = screen.query_one("#task-summary")
        await until(pilot, lambda: "$1." in str(summary.render()))
        await pilot.pause()
        assert layouts == []
        # A text in a pane whose height follows it still lays the screen out (the check can fail).
        screen._set("#prompt-text", screen._texts["#prompt-text"] + "\nmore")
        await until(pilot, lambda: len(layouts) > 0)


async def test_the_metrics_redraw_only_the_rows_that_changed_without_a_layout(
    fast_tmp: Path,
) -> None:
    """The metrics are shown with every snapshot, several times a second during a run."""
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.pause()
        panel = app.metrics
        snap = panel._snap
        before = panel.text()
        refreshed: list[tuple[str, bool]] = []
        for name, row in panel.rows.items():
            original = row.refresh

            def refresh(*args: Any, _name: str = name, _o: Any = original, **kw: Any) -> Any:
                refreshed.append((_name, bool(kw.get("layout", False))))
                return _o(*args, **kw)

            row.refresh = refresh  # type: ignore[method-assign]
        panel.show(snap)  # the same snapshot again: nothing to redraw
        assert refreshed == []
        richer = replace(snap, totals=replace(snap.totals, cost_usd=snap.totals.cost_usd + 100))
        panel.show(richer)
        assert 0 < len(refreshed) < len(panel.rows)
        assert not any(layout for _, layout in refreshed), refreshed
        await until(pilot, lambda: panel.text() != before)


async def test_the_queue_is_rebuilt_only_when_a_row_changed(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        queue = app.query_one(TaskQueue)
        rows = list(queue._all)
        assert rows
        cleared: list[int] = []
        original = queue.clear

        def clear(*args: Any, **kwargs: Any) -> Any:
            cleared.append(1)
            return original(*args, **kwargs)

        queue.clear = clear  # type: ignore[method-assign]
        await pilot.pause()
        layouts = count_layouts(app.screen)
        queue.show(rows)  # the same rows again (a snapshot that changed nothing here)
        assert cleared == []
        # A cell of a row changed (a running task's time, its spend): updated in place, and
        # the screen is not laid out again.
        queue.show([replace(rows[0], attempts=rows[0].attempts + 7), *rows[1:]])
        assert cleared == []
        assert any(str(rows[0].attempts + 7) == str(c) for c in queue.get_row(str(rows[0].id)))
        await pilot.pause()
        assert layouts == []
        # Rows that come and go (or move) rebuild the table.
        queue.show(rows[1:])
        assert cleared == [1] and {r.id for r in queue.rows_shown} == {r.id for r in rows[1:]}
        assert queue.row_count == len(rows) - 1


async def test_the_output_pane_grows_without_laying_the_screen_out(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        pane = app.query_one(OutputPane)
        await pilot.pause()
        layouts = count_layouts(app.screen)
        before = pane.line_count
        pane.feed([f"line {n}" for n in range(100)])
        await pilot.pause()
        pane.feed(["x" * (pane.size.width * 2)])  # wider than any line before
        # Measured at once, by no thread worker: one that outlived the pane (the dashboard
        # quitting while agents print) failed and ended the app in a traceback.
        assert pane.virtual_size.width == pane.size.width * 2
        assert not [w for w in app.workers if w.node is pane]
        await pilot.pause()
        assert layouts == []
        # What a layout would have done: the scrollbars' thumbs follow the content, and the
        # pane follows its tail.
        assert pane.line_count == min(before + 101, PANE_LINES)
        assert pane.vertical_scrollbar.window_virtual_size == pane.line_count
        assert pane.max_scroll_x == pane.size.width * 2 - pane.scrollable_content_region.width
        assert pane.scroll_y == pane.max_scroll_y > 0
        painted = [strip.text for strip in app.screen._compositor.render_strips()]
        assert any("line 99" in line for line in painted)
