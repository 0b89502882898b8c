"""What a task screen redraws: a tab switch moves the underline at once (no 0.3 s slide of
redraws), and a reload that changes only the summary's text lays nothing out again."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import events
from textual.widgets import TabbedContent, Tabs

from shoemaker.tui.task_screen import TaskScreen
from test_tui import SIZE, fixed_app, loaded, until


async def test_a_tab_switch_moves_the_underline_at_once(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = TaskScreen(app.project, 1, refresh_s=3600)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.loads == 1)
        tabs = screen.query_one(TabbedContent).query_one(Tabs)
        underline: Any = tabs.query_one("Underline")

        def span(tab: str) -> tuple[int, int]:
            shown = tabs.query_one(f"#--content-tab-{tab}")
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
            tabbed = screen.query_one(TabbedContent)
            while tabbed.active != tab:
                await asyncio.sleep(0.01)
            target = span(tab)
            seen = set()
            # The slide would begin 0.02 s after the switch and last 0.3 s: watch 0.5 s.
            for _ in range(25):
                await asyncio.sleep(0.02)
                assert not app.animator.is_being_animated(underline, "highlight_start"), key
                seen.add((underline.highlight_start, underline.highlight_end))
            assert (underline.highlight_start, underline.highlight_end) == target, key
            assert seen <= {before, target}, (key, seen)


async def test_a_new_summary_is_drawn_without_laying_the_screen_out(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = TaskScreen(app.project, 1, refresh_s=3600)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.loads == 1)
        await pilot.pause()
        layouts: list[object] = []
        refresh_layout = screen._refresh_layout

        def counted(*args: Any, **kwargs: Any) -> None:
            layouts.append(args)
            refresh_layout(*args, **kwargs)

        screen._refresh_layout = counted  # type: ignore[method-assign]
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
        screen = app.screen
        layouts: list[object] = []
        refresh_layout = screen._refresh_layout

        def counted(*args: Any, **kwargs: Any) -> None:
            layouts.append(args)
            refresh_layout(*args, **kwargs)

        screen._refresh_layout = counted  # type: ignore[method-assign]
        panel = app.metrics
        snap = panel._snap
        before = panel.text()
        updated: list[str] = []
        for name, row in panel.rows.items():
            original = row.update

            def update(*args: Any, _name: str = name, _o: Any = original, **kw: Any) -> None:
                updated.append(_name)
                _o(*args, **kw)

            row.update = update  # type: ignore[method-assign]
        panel.show(snap)  # the same snapshot again: nothing to redraw
        assert updated == []
        richer = replace(snap, totals=replace(snap.totals, cost_usd=snap.totals.cost_usd + 100))
        panel.show(richer)
        assert 0 < len(updated) < len(panel.rows)
        await until(pilot, lambda: panel.text() != before)
        await pilot.pause()
        assert layouts == []
