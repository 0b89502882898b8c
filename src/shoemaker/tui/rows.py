"""DataTable rows kept in place: a refresh changes only the cells that changed, so the
cursor and the scroll stay where the person left them."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.markup import escape
from textual.widgets import DataTable


def sync_rows(
    table: DataTable[RenderableType], rows: Sequence[tuple[str, Sequence[RenderableType]]]
) -> None:
    """Show ``rows`` (key, cells) in ``table``, changing only what changed, so that the cursor
    and the scroll stay where the person left them. A string cell is data (a task title, a
    path), never markup: it is escaped (DataTable reads strings as markup)."""
    rows = [(key, [escape(c) if isinstance(c, str) else c for c in cells]) for key, cells in rows]
    keys = [key for key, _ in rows]
    shown = [str(row_key.value) for row_key in table.rows]
    columns = list(table.columns)
    if shown != keys[: len(shown)]:
        cursor = table.cursor_row
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1), animate=False)
        return
    for key, cells in rows[: len(shown)]:
        for column, value in zip(columns, cells, strict=False):
            if table.get_cell(key, column) != value:
                table.update_cell(key, column, value)
    for key, cells in rows[len(shown) :]:
        table.add_row(*cells, key=key)
