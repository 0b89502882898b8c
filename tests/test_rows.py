"""Rows kept in place: the cursor stays on the row the person put it on, through a refresh
that reorders the rows or that finds none for a moment."""

from __future__ import annotations

from rich.console import RenderableType
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from shoemaker.tui.rows import sync_rows


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable[RenderableType]()


def rows(*names: str) -> list[tuple[str, list[RenderableType]]]:
    return [(name, [name]) for name in names]


async def test_the_cursor_stays_on_its_row_through_a_reorder_and_an_empty_refresh() -> None:
    app = OneTable()
    async with app.run_test() as pilot:
        table = app.query_one(DataTable)
        table.add_column("file")
        sync_rows(table, rows("a.py", "b.py", "c.py", "d.py"))
        table.move_cursor(row=2)
        await pilot.pause()
        # Appended rows: nothing moves.
        sync_rows(table, rows("a.py", "b.py", "c.py", "d.py", "e.py"))
        assert table.cursor_row == 2
        # A row before it: the cursor follows its file, not its place.
        sync_rows(table, rows("0.py", "a.py", "b.py", "c.py", "d.py", "e.py"))
        assert table.get_row_at(table.cursor_row)[0] == "c.py"
        # No rows for a moment (a diff between two sources), then the same files again.
        sync_rows(table, [])
        assert table.row_count == 0
        sync_rows(table, rows("a.py", "b.py", "c.py", "d.py"))
        assert table.get_row_at(table.cursor_row)[0] == "c.py"
        # Its file gone: the cursor keeps its place.
        sync_rows(table, rows("a.py", "b.py", "x.py", "d.py"))
        assert table.cursor_row == 2
