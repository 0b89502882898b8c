"""DataTable rows kept in place: a refresh changes only the cells that changed, so the
cursor and the scroll stay where the person left them."""

from __future__ import annotations

from collections.abc import Sequence
from weakref import WeakKeyDictionary

from rich.console import RenderableType
from rich.markup import escape
from textual.widgets import DataTable

#: The key a table's cursor was on when a refresh emptied it (a diff between two sources):
#: the cursor goes back to it when the rows do.
_EMPTIED_AT: WeakKeyDictionary[DataTable[RenderableType], str] = WeakKeyDictionary()


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
        at = shown[cursor] if 0 <= cursor < len(shown) else None
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if not rows and at is not None:
            _EMPTIED_AT[table] = at
        elif rows:
            # On the row it was on, wherever that is now; else at the same place.
            row = keys.index(at) if at in keys else min(cursor, len(rows) - 1)
            table.move_cursor(row=row, animate=False)
        return
    for key, cells in rows[: len(shown)]:
        for column, value in zip(columns, cells, strict=False):
            if table.get_cell(key, column) != value:
                table.update_cell(key, column, value)
    for key, cells in rows[len(shown) :]:
        table.add_row(*cells, key=key)
    if not shown and (at := _EMPTIED_AT.pop(table, None)) in keys:
        table.move_cursor(row=keys.index(at), animate=False)
