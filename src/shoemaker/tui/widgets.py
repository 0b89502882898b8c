"""The main screen's panels: generations, the task queue, agent output and metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from rich.highlighter import Highlighter
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Log, Sparkline, Static

from shoemaker.engine.views import MARK, GenerationRow, Snapshot, TaskRow
from shoemaker.model import TaskState
from shoemaker.palette import STATE_STYLE

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


def state_text(state: TaskState) -> Text:
    return Text(state.value.replace("_", " "), style=STATE_STYLE[state])


class GenerationsPanel(Static):
    """Every generation: name, state, base branch, cycle, tasks done/total, cost so far.

    A plain table that fits 36 columns; switching happens on the generations screen.
    """

    def on_mount(self) -> None:
        self.border_title = "Generations"

    def show(self, rows: Sequence[GenerationRow], current: str | None) -> None:
        table = Table(
            box=None,
            expand=True,
            pad_edge=False,
            show_edge=False,
            header_style="bold",
            padding=(0, 1, 0, 0),
        )
        for name, justify in (
            ("name", "left"),
            ("state", "left"),
            ("base", "left"),
            ("cyc", "right"),
            ("tasks", "right"),
            ("cost", "right"),
        ):
            table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
        for r in rows:
            style = "bold reverse" if r.name == current else ""
            table.add_row(
                Text(r.name),
                r.state,
                Text(r.base_branch),
                str(r.cycle),
                f"{r.done}/{r.total}",
                f"${r.cost_usd:.2f}",
                style=style,
            )
        self.update(table if rows else Text("no generation yet: press g to start one", "dim"))


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


class TaskQueue(Touched, DataTable[str | Text]):
    """The task graph as a table: ready and running tasks first, filterable by state."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.state_filter: TaskState | None = None
        self.rows_shown: list[TaskRow] = []
        self._all: Sequence[TaskRow] = ()

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_column("id", key="id")
        self.add_column("title", key="title")
        self.add_column("state", key="state")
        self.add_column("after", key="after")
        self.add_column("try", key="try")
        self.add_column("tokens", key="tokens")
        self.add_column("cost", key="cost")
        self.add_column("time", key="time")
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
        return max(12, self.size.width - 58)

    def show(self, rows: Sequence[TaskRow]) -> None:
        self._all = rows
        selected = self.selected_task
        width = self._title_width()
        shown = [r for r in rows if self.state_filter is None or r.state == self.state_filter]
        shown.sort(key=lambda r: (STATE_ORDER[r.state], -r.priority, r.id))
        self.rows_shown = shown
        done = {r.id for r in rows if r.state == TaskState.DONE}
        self.clear()
        for r in shown:
            # A task from a plan file shows its id there first (`E05 · title`).
            title = f"{r.external_id} · {r.title}" if r.external_id else r.title
            self.add_row(
                f"#{r.id}",
                escape(title if len(title) <= width else title[: width - 1] + "…"),
                state_text(r.state),
                self._after(r, done),
                str(r.attempts),
                tokens(r.usage.input_tokens + r.usage.output_tokens)
                if r.usage.input_tokens
                else "",
                f"${r.cost_usd:.3f}" if r.cost_usd else "",
                duration(r.duration_s) if r.duration_s else "",
                key=str(r.id),
            )
        ids = [r.id for r in shown]
        if selected in ids:
            self.move_cursor(row=ids.index(selected), animate=False)
        total = len(rows)
        self.border_subtitle = f"{len(shown)} of {total}" if self.state_filter else f"{total}"

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


class OutputPane(Touched, Log):
    """Condensed agent output, tailing; tailing pauses while the user has scrolled up.

    Lines are not written as they arrive: ``feed`` hands over a batch, written in one
    ``write_lines`` by the caller's ~30 Hz flush, and the widget keeps at most ``max_lines``.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=2_000, auto_scroll=False, highlight=True, **kwargs)  # type: ignore[arg-type]
        self.highlighter = OutputHighlighter()
        self.task_id: int | None = None

    def feed(self, lines: list[str]) -> None:
        if not lines:
            return
        follow = self.is_vertical_scroll_end or self.max_scroll_y == 0
        self.write_lines(lines, scroll_end=follow)
        # A full Log(max_lines) stops repainting on its own: ask for it.
        self.refresh()

    def replace(self, task_id: int | None, lines: list[str], title: str) -> None:
        self.task_id = task_id
        self.border_title = Text(title)  # a task title is data, not markup
        self.clear()
        self.write_lines(lines[-2_000:], scroll_end=True)
        self.refresh()


class MetricsPanel(Vertical):
    """Tokens, cost, burn rate, tasks, LOC, time and ETA, with per-task sparklines."""

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.clock = clock
        self.parallel = 1
        # Held, not queried: the once-a-second tick may fire while the app tears its
        # screens down, and a query then finds nothing.
        self._text = Static(id="metrics-text")
        self._cost_spark = Sparkline([], id="cost-spark")
        self._time_spark = Sparkline([], id="time-spark")

    def compose(self) -> ComposeResult:
        yield self._text
        with Horizontal(classes="spark-row"):
            yield Static("$/task", classes="spark-label")
            yield self._cost_spark
            yield Static(" s/task", classes="spark-label")
            yield self._time_spark

    def on_mount(self) -> None:
        self.border_title = "Metrics"

    def show(self, snap: Snapshot) -> None:
        if not self.is_attached or not self._text.is_attached:
            return  # not composed yet, or being torn down
        t = snap.totals
        gen = snap.current
        elapsed = 0.0
        if gen is not None:
            end = gen.stopped_at if gen.stopped_at else self.clock()
            elapsed = max(0.0, end - gen.created_at)
        # A rate over less than a minute says more about start-up than about spending.
        rate = f"${t.cost_usd / (elapsed / 3600):.2f}/h" if elapsed >= 60 else "—/h"
        remaining = max(0, t.total - t.done - t.failed)
        mean = (
            sum(snap.duration_per_task) / len(snap.duration_per_task)
            if snap.duration_per_task
            else 0
        )
        eta = remaining * mean / max(1, self.parallel)
        eta_text = duration(eta) if remaining and mean else "—"
        u = t.usage
        lines = [
            f"[b]in[/] {tokens(u.input_tokens)} · [b]out[/] {tokens(u.output_tokens)} · "
            f"[b]cache[/] {tokens(u.cache_read_input_tokens)}/"
            f"{tokens(u.cache_creation_input_tokens)}",
            f"[b]cost[/] ${t.cost_usd:.2f} · {rate} · [b]LOC[/] [green]+{t.insertions}[/] "
            f"[red]−{t.deletions}[/]",
            f"[b]tasks[/] [green]{t.done} done[/] · [red]{t.failed} failed[/] · {t.total} in all",
            f"[b]time[/] {duration(elapsed)} · [b]ETA[/] {eta_text}",
        ]
        if snap.budgets:
            lines.append(
                "[b]budget[/] "
                + " · ".join(
                    f"[{'red' if b.crossed else 'green'}]{b.describe().replace(' budget:', '')}[/]"
                    for b in snap.budgets
                )
            )
        self._text.update("\n".join(lines))
        self._cost_spark.data = list(snap.cost_per_task) or [0.0]
        self._time_spark.data = list(snap.duration_per_task) or [0.0]
