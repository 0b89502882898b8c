"""Screens beyond the main one: a task in full, the generations, help and confirmation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    Log,
    Static,
    TabbedContent,
    TabPane,
)

from shoemaker.agents.sandbox import sandbox_of
from shoemaker.engine.views import DiffView, TaskDetail, load_diff, load_task_detail
from shoemaker.model import ACTIVE_TASK_STATES
from shoemaker.tui.widgets import duration, state_text, tokens

if TYPE_CHECKING:
    from shoemaker.tui.app import ShoemakerApp

#: Largest diff rendered with highlighting; beyond it the text is cut (the file list is whole).
MAX_DIFF_CHARS = 200_000


class TaskScreen(Screen[None]):
    """One task: its log (condensed or raw), live diff, gates, attempts and prompt."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="task.back", tooltip="Back to the queue"),
        Binding("l", "tab('log')", "Log", id="task.log", tooltip="The agent's condensed output"),
        Binding("d", "tab('diff')", "Diff", id="task.diff", tooltip="What the task changed"),
        Binding(
            "a",
            "tab('attempts')",
            "Attempts",
            id="task.attempts",
            tooltip="Runs and gates of every attempt",
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

    def __init__(self, task_id: int, tab: str = "log") -> None:
        super().__init__()
        self.task_id = task_id
        self.initial_tab = tab
        self.raw = False
        self.detail: TaskDetail | None = None
        self.diff: DiffView | None = None

    @property
    def shoemaker(self) -> ShoemakerApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="task-summary")
        with TabbedContent(initial=self.initial_tab):
            with TabPane("Log", id="log"):
                yield Log(max_lines=5_000, id="task-log")
            with TabPane("Diff", id="diff"), Horizontal():
                yield DataTable(id="diff-files", cursor_type="row")
                with VerticalScroll(id="diff-scroll"):
                    yield Static(id="diff-text")
            with TabPane("Attempts", id="attempts"), Vertical():
                yield DataTable(id="runs", cursor_type="row")
                yield DataTable(id="gates", cursor_type="row")
            with TabPane("Prompt", id="prompt"), VerticalScroll():
                yield Static(id="prompt-text")
        yield Footer()

    def on_mount(self) -> None:
        files = self.query_one("#diff-files", DataTable)
        files.add_columns("file", "+", "−")
        files.border_title = "Files"
        runs = self.query_one("#runs", DataTable)
        runs.add_columns(
            "try", "run", "sandbox", "exit", "result", "tokens in/out", "cost", "time", "reason"
        )
        runs.border_title = "Attempts"
        gates = self.query_one("#gates", DataTable)
        gates.add_columns("gate", "where", "passed", "exit", "time")
        gates.border_title = "Gates"
        self.load()
        self.set_interval(1.0, self.load)

    @work(group="task-screen", exclusive=True, exit_on_error=False, description="load task")
    async def load(self) -> None:
        project = self.shoemaker.project
        detail, diff = await asyncio.gather(
            asyncio.to_thread(load_task_detail, project, self.task_id),
            asyncio.to_thread(load_diff, project, self.task_id),
        )
        old = self.detail
        changed_log = old is None or (detail.log, detail.raw) != (old.log, old.raw)
        self.detail, self.diff = detail, diff
        self._summary(detail)
        if changed_log:
            self._log()
        self._diff(diff)
        self._attempts(detail)
        self.query_one("#prompt-text", Static).update(Text(detail.prompt or "(not run yet)"))

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
        )
        line.no_wrap = True
        line.overflow = "ellipsis"
        reason = Text(t.reason or " ", style="dim", no_wrap=True, overflow="ellipsis")
        self.query_one("#task-summary", Static).update(Text("\n").join([line, reason]))
        self.sub_title = f"task #{t.id}"

    def _log(self) -> None:
        if self.detail is None:
            return
        log = self.query_one("#task-log", Log)
        follow = log.is_vertical_scroll_end or log.max_scroll_y == 0
        log.clear()
        log.write_lines(list(self.detail.raw if self.raw else self.detail.log), scroll_end=follow)
        log.border_title = "raw stream-json" if self.raw else "condensed"
        log.refresh()

    def _diff(self, diff: DiffView) -> None:
        files = self.query_one("#diff-files", DataTable)
        files.clear()
        for f in diff.stat.files:
            files.add_row(f.path, Text(f"+{f.insertions}", "green"), Text(f"−{f.deletions}", "red"))
        label = {
            "worktree": "live from the worktree",
            "merged": "as merged",
            "branch": "on the task branch",
            "none": "nothing yet",
        }[diff.source]
        files.border_subtitle = label
        text = diff.text[:MAX_DIFF_CHARS]
        body = (
            Syntax(text, "diff", theme="ansi_dark", word_wrap=False) if text else Text("no changes")
        )
        self.query_one("#diff-text", Static).update(body)

    def _attempts(self, d: TaskDetail) -> None:
        runs = self.query_one("#runs", DataTable)
        runs.clear()
        for r in d.runs:
            result = (
                "running" if r.ended_at is None else ("ok" if r.ok else r.subtype or r.ended or "")
            )
            runs.add_row(
                str(r.attempt),
                str(r.id),
                sandbox_of(r.argv),
                "" if r.exit_code is None else str(r.exit_code),
                result,
                f"{tokens(r.input_tokens)}/{tokens(r.output_tokens)}",
                f"{'~' if r.cost_estimated else ''}${r.cost_usd:.3f}",
                duration(r.wall_s or 0),
                r.reason[:80],
            )
        gates = self.query_one("#gates", DataTable)
        gates.clear()
        for g in d.gates:
            passed = Text("passed", "green") if g["passed"] else Text("failed", "red")
            gates.add_row(
                str(g["name"]),
                str(g["location"]),
                passed,
                str(g["exit_code"]),
                duration(float(str(g["duration_s"]))),
            )

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        self.action_tab("log")
        self._log()

    @property
    def live(self) -> bool:
        return self.detail is not None and self.detail.task.state in ACTIVE_TASK_STATES


class GenerationsScreen(Screen[None]):
    """Every generation, switching between them, and the chosen one's cycles."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="gens.back", tooltip="Back"),
        Binding(
            "enter",
            "switch",
            "Switch",
            id="gens.switch",
            tooltip="Show this generation on the main screen",
        ),
    ]

    @property
    def shoemaker(self) -> ShoemakerApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="gens-table", cursor_type="row")
        yield DataTable(id="cycles-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        gens = self.query_one("#gens-table", DataTable)
        gens.border_title = "Generations"
        gens.add_columns("name", "state", "branch", "base", "cycle", "tasks", "cost")
        cycles = self.query_one("#cycles-table", DataTable)
        cycles.border_title = "Cycles"
        cycles.add_columns("cycle", "merged", "failed", "lines changed")
        self.sub_title = "generations"
        self.show()

    def show(self) -> None:
        snap = self.shoemaker.snapshot
        gens = self.query_one("#gens-table", DataTable)
        gens.clear()
        for r in snap.generations:
            gens.add_row(
                r.name,
                r.state,
                r.branch,
                r.base_branch,
                str(r.cycle),
                f"{r.done}/{r.total}",
                f"${r.cost_usd:.2f}",
                key=r.name,
            )
        cycles = self.query_one("#cycles-table", DataTable)
        cycles.clear()
        for c in snap.cycles:
            cycles.add_row(str(c.cycle), str(c.merged), str(c.failed), str(c.loc_delta))
        cycles.border_subtitle = snap.current.name if snap.current else ""

    @on(DataTable.RowSelected, "#gens-table")
    def selected(self, event: DataTable.RowSelected) -> None:
        self.action_switch()

    def action_switch(self) -> None:
        gens = self.query_one("#gens-table", DataTable)
        if gens.row_count:
            name = str(gens.coordinate_to_cell_key(gens.cursor_coordinate).row_key.value)
            self.shoemaker.switch_generation(name)
            self.app.pop_screen()


class HelpScreen(ModalScreen[None]):
    """Every key of the screen it was opened on, what it does, and why it is disabled."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, rows: Sequence[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="help-table", cursor_type="row")
        table.add_columns("key", "action", "")
        for row in self.rows:
            table.add_row(*row)
        with Vertical(id="help-box"):
            yield Label("[b]shoemaker keys[/]  (ctrl+p: command palette · escape: close)")
            yield table


class ConfirmScreen(ModalScreen[bool]):
    """Asks before something that cannot be undone; No has the focus, so Enter alone never
    does it."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text(self.question, style="bold"), classes="question")
            if self.detail:
                yield Static(Text(self.detail), classes="detail")
            with Horizontal():
                yield Button("No (n)", variant="primary", id="no")
                yield Button("Yes (y)", variant="error", id="yes")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class NoteScreen(ModalScreen[str | None]):
    """Asks for a line of text (a rejection note); escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="note.cancel")]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text(self.question, style="bold"), classes="question")
            if self.detail:
                yield Static(Text(self.detail), classes="detail")
            yield Input(
                placeholder="a note for the agent; enter to send, escape to cancel", id="note"
            )

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
