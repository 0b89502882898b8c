"""The main screen's panels: generations, the task queue and agent output."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from rich.cells import cell_len
from rich.highlighter import Highlighter
from rich.markup import escape
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import DataTable, Log
from textual.widgets.data_table import RowKey

from shoemaker.engine.task_detail import MARK
from shoemaker.engine.views import GenerationRow, TaskRow
from shoemaker.model import TaskState
from shoemaker.palette import STATE_STYLE
from shoemaker.tui.guard import Guarded

#: Queue order: ready tasks first, then what is running, finished work last.
STATE_ORDER = {
    TaskState.READY: 0,
    TaskState.RUNNING: 1,
    TaskState.VERIFYING: 1,
    TaskState.MERGING: 1,
    TaskState.NEEDS_REVIEW: 2,
    TaskState.CONFLICT: 2,
    TaskState.PROPOSED: 3,
    TaskState.FAILED: 4,
    TaskState.BLOCKED: 4,
    TaskState.DONE: 5,
    TaskState.CANCELLED: 6,
}
#: The filter cycle of the queue (None shows everything): every state a task can be in.
FILTERS: tuple[TaskState | None, ...] = (
    None,
    TaskState.READY,
    TaskState.RUNNING,
    TaskState.DONE,
    TaskState.FAILED,
    TaskState.BLOCKED,
    TaskState.CONFLICT,
    TaskState.NEEDS_REVIEW,
    TaskState.VERIFYING,
    TaskState.MERGING,
    TaskState.PROPOSED,
    TaskState.CANCELLED,
)


def tokens(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return f"{int(n)}"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def countdown(seconds: float) -> str:
    """Time left until a reset, never negative: ``4m12s``, ``0s`` once it has come."""
    return duration(max(0.0, seconds))


def generation_state(row: GenerationRow, now: float) -> str:
    """A generation's state; a rate-limited one with the countdown to its reset."""
    if row.rate_limited_until is not None and row.state == "rate_limited":
        return f"rate_limited {countdown(row.rate_limited_until - now)}"
    return row.state


def state_text(state: TaskState) -> Text:
    return Text(state.value.replace("_", " "), style=STATE_STYLE[state])


#: The generations panel's columns in the order they are dropped from the end when the panel
#: is too narrow for all of them: (name, right-justified).
GENERATION_COLUMNS = (
    ("name", False),
    ("state", False),
    ("tasks", True),
    ("cost", True),
    ("cyc", True),
    ("base", False),
)


class GenerationsPanel(Guarded, DataTable[Text]):
    """Every generation: name, state, tasks done/total, cost so far, cycle and base branch,
    as many columns as the width allows. It scrolls (with the mouse wheel) and keeps the
    current generation, highlighted, in view; switching happens on the generations screen.
    """

    can_focus = False

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs: object) -> None:
        # Cells carry their own one-space gap: no padding is wasted at the panel's edges.
        super().__init__(cursor_type="row", cell_padding=0, **kwargs)  # type: ignore[arg-type]
        self.clock = clock
        self._rows: Sequence[GenerationRow] = ()
        self._current: str | None = None
        self._shown: tuple[object, ...] = ()

    def on_mount(self) -> None:
        self.border_title = "Generations"

    def on_resize(self) -> None:
        self.show(self._rows, self._current)

    def show(self, rows: Sequence[GenerationRow], current: str | None) -> None:
        self._rows, self._current = rows, current
        now = self.clock()
        values = [
            {
                "name": r.name,
                "state": generation_state(r, now),
                "tasks": f"{r.done}/{r.total}",
                "cost": f"${r.cost_usd:.2f}",
                "cyc": str(r.cycle),
                "base": r.base_branch,
            }
            for r in rows
        ]
        room = self.content_size.width
        columns: list[tuple[str, bool, int]] = []
        for name, right in GENERATION_COLUMNS:
            need = max(len(name), *(len(v[name]) for v in values)) + 1 if values else len(name)
            if columns and need > room:
                break
            columns.append((name, right, need))
            room -= need
        shown = (tuple(rows), current, tuple(columns), tuple(v["state"] for v in values))
        if shown == self._shown:
            return  # unchanged: leave the scroll where it is
        self._shown = shown

        def cell(text: str, right: bool) -> Text:
            return Text(f" {text}", justify="right") if right else Text(f"{text} ")

        self.clear(columns=True)
        # Widths are given, not measured: DataTable measures auto widths on idle without
        # invalidating lines it painted in between, which left cells cut short under load.
        for name, right, width in columns:
            self.add_column(cell(name, right), width=width, key=name)
        for r, v in zip(rows, values, strict=True):
            self.add_row(*(cell(v[name], right) for name, right, _ in columns), key=r.name)
        if not rows:
            self.border_subtitle = "none yet: g starts one"
            return
        self.border_subtitle = ""
        names = [r.name for r in rows]
        if current in names:
            self.move_cursor(row=names.index(current), animate=False, scroll=True)


#: Keys that move a cursor or scroll; other keys pressed in a widget are the app's verbs.
NAVIGATION_KEYS = {"up", "down", "pageup", "pagedown", "home", "end", "left", "right"}


class Touched:
    """Remembers when the person last moved the cursor or scrolled in a widget."""

    touched_at = float("-inf")

    def touch(self) -> None:
        self.touched_at = time.monotonic()

    def on_key(self, event: events.Key) -> None:
        if event.key in NAVIGATION_KEYS:
            self.touch()

    def on_mouse_down(self) -> None:
        self.touch()

    def on_mouse_scroll_up(self) -> None:
        self.touch()

    def on_mouse_scroll_down(self) -> None:
        self.touch()


#: The queue's columns, each its own key.
COLUMNS = ("id", "title", "state", "after", "try", "tokens", "cost", "time")


class MeasuredTable(DataTable[str | Text]):
    """A DataTable whose auto-width columns never leave a row drawn at an older width.

    DataTable measures auto-width columns when it is idle, and lines painted before that keep
    their cached, narrower cells (``runnin``) until the data changes again; on a busy machine
    a frame often falls in between. Once the widths are measured, the cached lines go.
    (Textual is pinned exactly: this hooks a private method of its DataTable.)
    """

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # Called on idle after rows were added or cells changed, once their widths are known.
        super()._update_dimensions(new_rows)
        self._clear_caches()
        self.refresh()


class TaskQueue(Guarded, Touched, MeasuredTable):
    """The task graph as a table: ready and running tasks first, filterable by state."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.state_filter: TaskState | None = None
        self.rows_shown: list[TaskRow] = []
        self._all: Sequence[TaskRow] = ()
        self._cells: list[tuple[str | Text, ...]] = []
        self._keys: list[str] = []
        self._width = 0
        """The rows shown, cell by cell: a snapshot that changes none is not redrawn."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for column in COLUMNS:
            self.add_column(column, key=column)
        self._title()

    def _title(self) -> None:
        label = "all" if self.state_filter is None else self.state_filter.value
        self.border_title = f"Tasks · {label}"

    def cycle_filter(self) -> TaskState | None:
        """The next filter of :data:`FILTERS`, from whichever filter is set now."""
        at = FILTERS.index(self.state_filter) if self.state_filter in FILTERS else 0
        self.state_filter = FILTERS[(at + 1) % len(FILTERS)]
        self._title()
        return self.state_filter

    def set_filter(self, state: TaskState | None) -> None:
        self.state_filter = state
        self._title()

    def on_resize(self) -> None:
        self.show(self._all)  # titles are cut to the width there is

    def _title_width(self) -> int:
        # What the other columns and the borders take, measured at their widest.
        return max(12, self.size.width - 62)

    def show(self, rows: Sequence[TaskRow]) -> None:
        self._all = rows
        selected = self.selected_task
        width = self._title_width()
        shown = [r for r in rows if self.state_filter is None or r.state == self.state_filter]
        shown.sort(key=lambda r: (STATE_ORDER[r.state], -r.priority, r.id))
        self.rows_shown = shown
        done = {r.id for r in rows if r.state == TaskState.DONE}
        cells: list[tuple[str | Text, ...]] = []
        for r in shown:
            # A task from a plan file shows its id there first (`E05 · title`).
            title = f"{r.external_id} · {r.title}" if r.external_id else r.title
            cells.append(
                (
                    f"#{r.id}",
                    escape(title if len(title) <= width else title[: width - 1] + "…"),
                    state_text(r.state),
                    self._after(r, done),
                    str(r.attempts),
                    *self._spend(r),
                    duration(r.duration_s) if r.duration_s else "",
                )
            )
        keys = [str(r.id) for r in shown]
        if cells != self._cells:  # a snapshot that changed no row: no rebuild, no layout
            if keys == self._keys and width == self._width:
                # The same rows in the same order (a running task's time and spend): their
                # changed cells in place, a redraw of the table without laying the screen out.
                # (A new width rebuilds: columns measured in place only ever grow.)
                for key, old, new in zip(keys, self._cells, cells, strict=True):
                    for column, was, now in zip(COLUMNS, old, new, strict=True):
                        if was != now:
                            self.update_cell(key, column, now, update_width=True)
            else:
                self.clear()
                for key, row in zip(keys, cells, strict=True):
                    self.add_row(*row, key=key)
            self._cells, self._keys, self._width = cells, keys, width
        ids = [r.id for r in shown]
        if selected in ids:
            self.move_cursor(row=ids.index(selected), animate=False)
        total = len(rows)
        count = f"{len(shown)} of {total}" if self.state_filter else f"{total}"
        live = any(r.so_far for r in shown)
        self.border_subtitle = f"…: so far · {count}" if live else count

    @staticmethod
    def _spend(row: TaskRow) -> tuple[str | Text, str | Text]:
        """Tokens in+out and cost; for a running agent, what it spent so far (its messages'
        usage at the configured price: ``~$``), marked ``…``."""
        spent = row.usage.input_tokens + row.usage.output_tokens
        if row.so_far is None:
            return (
                tokens(spent) if row.usage.input_tokens else "",
                f"${row.cost_usd:.3f}" if row.cost_usd else "",
            )
        live = row.so_far.usage
        return (
            Text(f"{tokens(spent + live.input_tokens + live.output_tokens)}…", style="italic"),
            Text(f"~${row.cost_usd + row.so_far.cost_usd:.3f}…", style="italic"),
        )

    @staticmethod
    def _after(row: TaskRow, done: set[int]) -> Text:
        """Dependencies: done ones dimmed, the ones it still waits for in bold."""
        text = Text()
        for n, dep in enumerate(row.depends_on):
            if n:
                text.append(" ")
            text.append(f"#{dep}", style="dim" if dep in done else "bold yellow")
        return text

    @property
    def selected_task(self) -> int | None:
        if not self.rows_shown or not 0 <= self.cursor_row < len(self.rows_shown):
            return None
        return self.rows_shown[self.cursor_row].id


class OutputHighlighter(Highlighter):
    """Colours a condensed log line: tool calls, their results, errors and shoemaker's own
    lines (gates, merges, how an agent ended)."""

    def highlight(self, text: Text) -> None:
        plain = text.plain
        if plain.startswith(("[ERROR", f"{MARK}stderr:", f"{MARK}result:")):
            text.stylize("bold red")
        elif plain.startswith(MARK):
            good = ("passed", "merged as", "ended: ok")
            bad = "failed" in plain or "conflict" in plain or plain.startswith(f"{MARK}ended:")
            style = "green" if any(g in plain for g in good) else "bold red" if bad else "magenta"
            text.stylize(style)
        elif plain.lstrip().startswith("↳"):
            text.stylize("dim")
        elif plain.startswith("──"):
            text.stylize("bold")
        elif plain.startswith("[") and "]" in plain:
            text.stylize("cyan", 0, plain.index("]") + 1)  # a tool call, or the agent's own note


#: Lines the output pane keeps.
PANE_LINES = 2_000
#: Seconds between the output pane's intakes: each written batch redraws the pane's region
#: (several milliseconds under load), and ten a second read as live as thirty.
FLUSH_S = 0.1


class OutputPane(Guarded, Touched, Log):
    """Condensed agent output, tailing; tailing pauses while the user has scrolled up.

    Lines are not written as they arrive: ``feed`` hands over a batch, written in one
    ``write_lines`` by the caller's flush every ``FLUSH_S``, and only when lines arrived;
    the widget keeps at most ``max_lines``.
    """

    #: Textual lays the whole screen out whenever a widget's content grows: here with each
    #: write until the pane holds ``PANE_LINES`` lines, and with each line longer than any
    #: before. The pane's scrollbars are always shown (``overflow: scroll``), so its growing
    #: moves nothing on screen but their thumbs, which are updated without a layout.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=PANE_LINES, auto_scroll=False, highlight=True, **kwargs)  # type: ignore[arg-type]
        self.highlighter = OutputHighlighter()
        self.task_id: int | None = None

    def watch_virtual_size(self, size: Size) -> None:
        styles = self.styles
        if self.container_size and styles.overflow_x == styles.overflow_y == "scroll":
            self._scroll_update(size)
        else:
            self.refresh(layout=True)  # a scrollbar may come or go: the layout decides

    def _update_size(self, updates: int, lines: list[str]) -> None:  # type: ignore[override]
        # Log measures each write's width in a thread worker that asks for ``self.app`` from
        # the thread: once the pane has left the DOM (the dashboard quitting while agents
        # print), that raises, and the failed worker ends the app in a traceback. A batch a
        # tenth of a second is measured here for less than a thread's start.
        if lines:
            process = self._process_line
            self._update_maximum_width(updates, max(cell_len(process(line)) for line in lines))

    def feed(self, lines: list[str]) -> None:
        if not lines:
            return
        follow = self.is_vertical_scroll_end or self.max_scroll_y == 0
        # More than the pane keeps arrived since the last flush: the older ones would only be
        # measured and pruned again.
        self.write_lines(lines[-PANE_LINES:], scroll_end=follow)
        # A full Log(max_lines) stops repainting on its own: ask for it.
        self.refresh()

    def replace(self, task_id: int | None, lines: list[str], title: str) -> None:
        self.task_id = task_id
        self.border_title = Text(title)  # a task title is data, not markup
        self.clear()
        self.write_lines(lines[-PANE_LINES:], scroll_end=True)
        self.refresh()
