"""The task screen: one task in full — its log (condensed or raw), its diff, every attempt
with why it failed, and the prompt it was sent.

It is given what it shows (a project and a task id) and reaches into nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.theme import Theme
from textual.widget import Widget
from textual.widgets import DataTable, Header, Log, Static, Tab, Tabs

from shoemaker.agents.sandbox import sandbox_of
from shoemaker.engine.project import Project
from shoemaker.engine.task_detail import (
    LogCache,
    TaskDetail,
    TaskDiff,
    load_diff,
    load_task_detail,
)
from shoemaker.model import ACTIVE_TASK_STATES, TaskState
from shoemaker.tui.diff_text import PLAIN_DIFF, diff_label, render_diff
from shoemaker.tui.footer import PinnedFooter
from shoemaker.tui.guard import Guarded, guarded_interval
from shoemaker.tui.rows import sync_rows
from shoemaker.tui.still_tabs import still_underline
from shoemaker.tui.theme import DiffColours, diff_colours
from shoemaker.tui.why_text import agent_of, gate_why, run_why
from shoemaker.tui.widgets import OutputHighlighter, duration, state_text, tokens

LOADING = Text("loading…", style="dim")
#: Lines of the log shown (and read back from the transcripts): the last ones.
LOG_LINES = 5_000
LIVE_STATES = ACTIVE_TASK_STATES | {TaskState.READY, TaskState.PROPOSED}
#: The tabs, by the name their key and ``TaskScreen(tab=…)`` use, and their labels.
TABS = {"log": "Log", "diff": "Diff", "attempts": "Attempts", "prompt": "Prompt"}


class TaskScreen(Guarded, Screen[None]):
    """One task: its log (condensed or raw), diff, attempts with why each failed, and prompt.

    It reloads every ``refresh_s`` while the task is active or yet to start, once otherwise,
    and changes only what changed: rows in place, the log by appending, the diff only when it
    differs (rendered in a thread).
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="task.back", tooltip="Back to the queue"),
        Binding("l", "tab('log')", "Log", id="task.log", tooltip="The agent's condensed output"),
        Binding("d", "tab('diff')", "Diff", id="task.diff", tooltip="What the task changed"),
        Binding(
            "a",
            "tab('attempts')",
            "Attempts",
            id="task.attempts",
            tooltip="Runs and gates of every attempt, and why each failed",
        ),
        Binding(
            "p", "tab('prompt')", "Prompt", id="task.prompt", tooltip="The prompt sent to the agent"
        ),
        Binding(
            "t",
            "toggle_raw",
            "Raw/condensed",
            id="task.raw",
            tooltip="Switch the log between condensed lines and raw stream-json",
        ),
    ]

    def __init__(
        self, project: Project, task_id: int, tab: str = "log", refresh_s: float = 1.0
    ) -> None:
        super().__init__()
        self.project = project
        self.task_id = task_id
        self.initial_tab = tab
        self.refresh_s = refresh_s
        self.raw = False
        self.detail: TaskDetail | None = None
        self.diff: TaskDiff | None = None
        self.loads = 0
        self.ticks = 0
        self._loading = False
        self._log_shown: tuple[str, ...] = ()
        self._log_skipped = 0
        self._log_cache = LogCache()
        self._texts: dict[str, Text] = {}
        """The task's transcripts as read so far: a reload parses only what is new."""
        self._file_starts: dict[str, int] = {}
        self._why: tuple[str, int] | None = None
        """What the why pane shows: ("gate" | "run", index); None until the person picks."""
        self._why_unread = False
        """A verdict not yet scrolled to its end (it came while its tab was hidden)."""
        self.colours = PLAIN_DIFF
        """The diff's colours, from the app's theme (and again whenever it changes)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(LOADING, id="task-summary")
        # Tabs over panes shown one at a time, and no container around them: Textual draws
        # every visible container's whole area on a repaint, what its children cover too,
        # and a TabbedContent's three nested ones drew more than the log they held.
        yield Tabs(
            *(Tab(label, id=f"tab-{name}") for name, label in TABS.items()),
            active=f"tab-{self.initial_tab}",
        )
        yield Log(max_lines=LOG_LINES, id="task-log", highlight=True, classes="pane")
        with Horizontal(id="diff-pane", classes="pane"):
            yield DataTable(id="diff-files", cursor_type="row")
            with VerticalScroll(id="diff-scroll"):
                yield Static(LOADING, id="diff-text")
        with Vertical(id="attempts-pane", classes="pane"):
            yield DataTable(id="runs", cursor_type="row")
            yield DataTable(id="gates", cursor_type="row")
            with VerticalScroll(id="why"):
                yield Static(LOADING, id="why-text")
        with VerticalScroll(id="prompt-pane", classes="pane"):
            yield Static(LOADING, id="prompt-text")
        yield PinnedFooter()

    @property
    def active_tab(self) -> str:
        """The tab shown: one of :data:`TABS`."""
        return str(self.query_one(Tabs).active).removeprefix("tab-")

    def _pane(self, tab: str) -> Widget:
        return self.query_one("#task-log" if tab == "log" else f"#{tab}-pane")

    def on_mount(self) -> None:
        self.query_one("#task-log", Log).highlighter = OutputHighlighter()
        tabs = self.query_one(Tabs)
        still_underline(tabs)
        for name in TABS:
            self._pane(name).display = name == self.initial_tab
        files = self.query_one("#diff-files", DataTable)
        files.add_columns("file", "+", "−")
        files.border_title = "Files"
        files.border_subtitle = "enter: jump to it"
        runs = self.query_one("#runs", DataTable)
        runs.add_columns(
            "try",
            "run",
            "agent",
            "sandbox",
            "exit",
            "result",
            "tokens in/out",
            "cost",
            "time",
            "reason",
        )
        runs.border_title = "Attempts"
        gates = self.query_one("#gates", DataTable)
        gates.add_columns("gate", "try", "where", "passed", "exit", "time")
        gates.border_title = "Gates"
        self.query_one("#why").border_title = "Why"
        self.sub_title = f"task #{self.task_id}"
        self.colours = diff_colours(self.app.current_theme)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self.load()
        guarded_interval(self, self.refresh_s, self._tick, "reload an active task")

    def _tick(self) -> None:
        self.ticks += 1
        if not self._loading and (self.detail is None or self.live):
            self.load()

    @work(group="task-screen", exit_on_error=False, description="load task")
    async def load(self) -> None:
        self._loading = True
        colours = self.colours
        try:
            # The state first, then the diff: read side by side, a diff read just before
            # the task finished would pair with its finished state, and a finished task
            # is not reloaded, so the screen would keep a diff that is missing files.
            detail = await asyncio.to_thread(
                load_task_detail, self.project, self.task_id, LOG_LINES, self._log_cache
            )
            diff = await asyncio.to_thread(load_diff, self.project, self.task_id)
            rendered = None
            if self.diff is None or diff.text != self.diff.text:
                rendered = await asyncio.to_thread(render_diff, diff.text, colours)
        except Exception as exc:
            # Said in place of the summary, not as a notification a second (the next tick
            # tries again: a locked store or a git index lock pass).
            if self.is_attached:
                problem = Text(f"cannot load task #{self.task_id}: {exc}", style="bold red")
                self._set("#task-summary", problem)
            return
        finally:
            self._loading = False
        if not self.is_attached:
            return
        self.detail, self.diff = detail, diff
        self._summary(detail)
        self._log()
        self._diff(diff, rendered)
        if rendered is not None and colours != self.colours:  # the theme changed meanwhile
            self._recolour(diff.text, self.colours)
        self._attempts(detail)
        self._set("#prompt-text", Text(detail.prompt or "(not run yet)"))
        self.loads += 1

    def _set(self, selector: str, text: Text, layout: bool = True) -> None:
        """Show ``text`` unless it is shown already: an update lays the screen out again,
        and a running task is reloaded every second. ``layout=False`` for a widget whose
        size its text does not change: only it is redrawn."""
        if self._texts.get(selector) != text:
            self._texts[selector] = text
            self.query_one(selector, Static).update(text, layout=layout)

    def _summary(self, d: TaskDetail) -> None:
        t = d.task
        line = Text.assemble(
            (f"#{t.id} ", "bold"),
            (t.title, "bold"),
            "  ",
            state_text(t.state),
            f"  after {' '.join(f'#{x}' for x in t.depends_on) or '—'}",
            f"  · {t.attempts} attempt(s) · ${t.cost_usd:.3f}",
            f"  · branch {t.branch or '—'}",
            f"  · from {d.source}" if d.source else "",
        )
        line.no_wrap = True
        line.overflow = "ellipsis"
        reason = Text(t.reason or " ", style="dim", no_wrap=True, overflow="ellipsis")
        summary = Text("\n").join([line, reason])
        summary.no_wrap, summary.overflow = True, "ellipsis"
        # Its size is fixed (two lines, the screen's width): a running task's cost and
        # reason change it every second without laying the screen out again.
        self._set("#task-summary", summary, layout=False)

    def _log(self) -> None:
        if self.detail is None:
            return
        lines = self.detail.raw if self.raw else self.detail.log
        log = self.query_one("#task-log", Log)
        log.border_title = "raw stream-json" if self.raw else "condensed"
        skipped = self.detail.raw_skipped if self.raw else self.detail.log_skipped
        old, old_skipped = self._log_shown, self._log_skipped
        if lines == old and skipped == old_skipped:
            return
        follow = log.is_vertical_scroll_end or log.max_scroll_y == 0
        # The log is the last lines only: those that dropped off its top since are `dropped`.
        dropped = skipped - old_skipped
        kept = len(old) - dropped
        if old and 0 <= kept <= len(lines) and lines[:kept] == old[dropped:]:
            # The widget keeps as many lines as the log has: it drops the same ones.
            log.write_lines(list(lines[kept:]), scroll_end=follow)
        else:
            log.clear()
            log.write_lines(list(lines), scroll_end=follow)
        self._log_shown, self._log_skipped = lines, skipped
        log.refresh()

    def _diff(self, diff: TaskDiff, rendered: tuple[Text, dict[str, int]] | None) -> None:
        files = self.query_one("#diff-files", DataTable)
        sync_rows(
            files,
            [
                (
                    f.path,
                    [f.path, Text(f"+{f.insertions}", "green"), Text(f"−{f.deletions}", "red")],
                )
                for f in diff.stat.files
            ],
        )
        self.query_one("#diff-scroll").border_title = diff_label(diff)
        if rendered is not None:
            body, self._file_starts = rendered
            self.query_one("#diff-text", Static).update(body)

    def _theme_changed(self, theme: Theme) -> None:
        self.colours = diff_colours(theme)
        if self.diff is not None:
            self._recolour(self.diff.text, self.colours)

    @work(group="diff-colours", exclusive=True, exit_on_error=False, description="recolour diff")
    async def _recolour(self, text: str, colours: DiffColours) -> None:
        body, starts = await asyncio.to_thread(render_diff, text, colours)
        if self.is_attached and self.diff is not None and self.diff.text == text:
            self._file_starts = starts
            self.query_one("#diff-text", Static).update(body)

    @on(DataTable.RowSelected, "#diff-files")
    def jump_to_file(self, event: DataTable.RowSelected) -> None:
        line = self._file_starts.get(str(event.row_key.value))
        if line is not None:
            self.query_one("#diff-scroll", VerticalScroll).scroll_to(y=line, animate=False)

    def _attempts(self, d: TaskDetail) -> None:
        runs: list[tuple[str, Sequence[RenderableType]]] = []
        for r in d.runs:
            result = (
                "running" if r.ended_at is None else ("ok" if r.ok else r.subtype or r.ended or "")
            )
            runs.append(
                (
                    str(r.id),
                    [
                        str(r.attempt),
                        str(r.id),
                        agent_of(r),
                        d.sandboxes.get(r.id) or sandbox_of(r.argv),
                        "" if r.exit_code is None else str(r.exit_code),
                        result if r.ok or r.ended_at is None else Text(result, "red"),
                        f"{tokens(r.usage.input_tokens)}/{tokens(r.usage.output_tokens)}",
                        f"{'~' if r.cost_estimated else ''}${r.cost_usd:.3f}",
                        duration(r.wall_s or 0),
                        r.reason[:80],
                    ],
                )
            )
        sync_rows(self.query_one("#runs", DataTable), runs)
        gates: list[tuple[str, Sequence[RenderableType]]] = []
        for n, g in enumerate(d.gates):
            gates.append(
                (
                    str(n),
                    [
                        g.name,
                        "" if g.attempt is None else str(g.attempt),
                        "after merge" if g.where == "merged" else g.where,
                        Text("passed", "green") if g.passed else Text("failed", "red"),
                        "" if g.exit_code is None else str(g.exit_code),
                        duration(g.duration_s),
                    ],
                )
            )
        sync_rows(self.query_one("#gates", DataTable), gates)
        if self.loads == 0:  # the cursor starts on what failed last
            latest = self._latest_failure()
            if latest is not None:
                table = self.query_one("#gates" if latest[0] == "gate" else "#runs", DataTable)
                table.move_cursor(row=latest[1], animate=False)
        self._show_why()

    def _latest_failure(self) -> tuple[str, int] | None:
        """The last failed gate of the last attempt that failed, else its failed run."""
        d = self.detail
        if d is None:
            return None
        failed_runs = [n for n, r in enumerate(d.runs) if r.ended_at is not None and not r.ok]
        failed_gates = [n for n, g in enumerate(d.gates) if not g.passed]
        last_run = d.runs[failed_runs[-1]].attempt if failed_runs else -1
        last_gate = d.gates[failed_gates[-1]].attempt or 0 if failed_gates else -1
        if failed_gates and last_gate >= last_run:
            return ("gate", failed_gates[-1])
        if failed_runs:
            return ("run", failed_runs[-1])
        return None

    def _show_why(self) -> None:
        d = self.detail
        if d is None:
            return
        which = self._why or self._latest_failure()
        if which is None:
            why = Text("nothing failed", style="dim")
        elif which[0] == "gate" and which[1] < len(d.gates):
            why = gate_why(d.gates[which[1]])
        elif which[0] == "run" and which[1] < len(d.runs):
            why = run_why(d.runs[which[1]])
        else:
            return
        if self._texts.get("#why-text") == why:
            return
        self._set("#why-text", why)
        pane = self.query_one("#why", VerticalScroll)
        # What failed is said last (a test run's summary, a traceback's error): a new verdict
        # opens on its end, with its first line kept in view on the border.
        pane.border_title = Text(f"Why · {why.plain.split(chr(10), 1)[0]}")
        self._why_unread = True
        self._open_why_on_end()

    def _open_why_on_end(self) -> None:
        # A hidden pane has no height to scroll in: a verdict that came while the Attempts tab
        # was hidden is scrolled to once the tab is shown.
        if self._why_unread and self.active_tab == "attempts":
            self._why_unread = False
            self.query_one("#why", VerticalScroll).scroll_end(animate=False)

    @on(Tabs.TabActivated)
    def _tab_shown(self) -> None:
        shown = self.active_tab
        for name in TABS:
            self._pane(name).display = name == shown
        # Scrolled once the pane just shown has been laid out and has a height.
        self.call_after_refresh(self._open_why_on_end)

    @on(DataTable.RowHighlighted, "#gates")
    def gate_picked(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.has_focus:
            self._why = ("gate", event.cursor_row)
            self._show_why()

    @on(DataTable.RowHighlighted, "#runs")
    def run_picked(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.has_focus:
            self._why = ("run", event.cursor_row)
            self._show_why()

    def action_tab(self, tab: str) -> None:
        self.query_one(Tabs).active = f"tab-{tab}"

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        self.action_tab("log")
        self._log()

    @property
    def live(self) -> bool:
        """Whether the task may still change: at work, or yet to start (its agent may start
        while the screen is open)."""
        return self.detail is not None and self.detail.task.state in LIVE_STATES
