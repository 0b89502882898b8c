"""Screens beyond the main one: a task in full, the generations, help and confirmation.

Each screen is given what it shows (a project and a task id, a snapshot, rows of keys) and
answers through ``dismiss``; none reaches into the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rich.console import RenderableType
from rich.markup import escape
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
from shoemaker.engine.project import Project
from shoemaker.engine.views import (
    GateRow,
    Snapshot,
    TaskDetail,
    TaskDiff,
    gate_verdict,
    load_diff,
    load_task_detail,
)
from shoemaker.model import ACTIVE_TASK_STATES
from shoemaker.store import RunRecord
from shoemaker.tui.widgets import OutputHighlighter, duration, state_text, tokens

#: Largest diff rendered with highlighting; beyond it the text is cut (the file list is whole).
MAX_DIFF_CHARS = 200_000
LOADING = Text("loading…", style="dim")


def render_diff(text: str) -> tuple[Text, dict[str, int]]:
    """The diff highlighted, and the line each file's part starts on. Slow for a big diff:
    call it in a thread."""
    text = text[:MAX_DIFF_CHARS]
    if not text:
        return Text("no changes", style="dim"), {}
    body = Syntax(text, "diff", theme="ansi_dark", word_wrap=False).highlight(text)
    body.no_wrap = True
    starts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines()):
        if line.startswith("diff --git a/") and " b/" in line:
            starts.setdefault(line.split(" b/", 1)[1], number)
    return body, starts


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


class TaskScreen(Screen[None]):
    """One task: its log (condensed or raw), diff, attempts with why each failed, and prompt.

    It reloads every ``refresh_s`` while the task is active, once otherwise, and changes only
    what changed: rows in place, the log by appending, the diff only when it differs
    (highlighted in a thread).
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
        self._file_starts: dict[str, int] = {}
        self._why: tuple[str, int] | None = None
        """What the why pane shows: ("gate" | "run", index); None until the person picks."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(LOADING, id="task-summary")
        with TabbedContent(initial=self.initial_tab):
            with TabPane("Log", id="log"):
                yield Log(max_lines=5_000, id="task-log", highlight=True)
            with TabPane("Diff", id="diff"), Horizontal():
                yield DataTable(id="diff-files", cursor_type="row")
                with VerticalScroll(id="diff-scroll"):
                    yield Static(LOADING, id="diff-text")
            with TabPane("Attempts", id="attempts"), Vertical():
                yield DataTable(id="runs", cursor_type="row")
                yield DataTable(id="gates", cursor_type="row")
                with VerticalScroll(id="why"):
                    yield Static(LOADING, id="why-text")
            with TabPane("Prompt", id="prompt"), VerticalScroll():
                yield Static(LOADING, id="prompt-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#task-log", Log).highlighter = OutputHighlighter()
        files = self.query_one("#diff-files", DataTable)
        files.add_columns("file", "+", "−")
        files.border_title = "Files"
        files.border_subtitle = "enter: jump to it"
        runs = self.query_one("#runs", DataTable)
        runs.add_columns(
            "try", "run", "sandbox", "exit", "result", "tokens in/out", "cost", "time", "reason"
        )
        runs.border_title = "Attempts"
        gates = self.query_one("#gates", DataTable)
        gates.add_columns("gate", "try", "where", "passed", "exit", "time")
        gates.border_title = "Gates"
        self.query_one("#why").border_title = "Why"
        self.sub_title = f"task #{self.task_id}"
        self.load()
        self.set_interval(self.refresh_s, self._tick, name="reload an active task")

    def _tick(self) -> None:
        self.ticks += 1
        if not self._loading and (self.detail is None or self.live):
            self.load()

    @work(group="task-screen", exit_on_error=False, description="load task")
    async def load(self) -> None:
        self._loading = True
        try:
            detail, diff = await asyncio.gather(
                asyncio.to_thread(load_task_detail, self.project, self.task_id),
                asyncio.to_thread(load_diff, self.project, self.task_id),
            )
            rendered = None
            if self.diff is None or diff.text != self.diff.text:
                rendered = await asyncio.to_thread(render_diff, diff.text)
        except Exception as exc:
            # Said in place of the summary, not as a notification a second (the next tick
            # tries again: a locked store or a git index lock pass).
            if self.is_attached:
                problem = Text(f"cannot load task #{self.task_id}: {exc}", style="bold red")
                self.query_one("#task-summary", Static).update(problem)
            return
        finally:
            self._loading = False
        if not self.is_attached:
            return
        self.detail, self.diff = detail, diff
        self._summary(detail)
        self._log()
        self._diff(diff, rendered)
        self._attempts(detail)
        self.query_one("#prompt-text", Static).update(Text(detail.prompt or "(not run yet)"))
        self.loads += 1

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
        summary = Text("\n").join([line, reason])
        summary.no_wrap, summary.overflow = True, "ellipsis"
        self.query_one("#task-summary", Static).update(summary)

    def _log(self) -> None:
        if self.detail is None:
            return
        lines = self.detail.raw if self.raw else self.detail.log
        log = self.query_one("#task-log", Log)
        log.border_title = "raw stream-json" if self.raw else "condensed"
        old = self._log_shown
        if lines == old:
            return
        follow = log.is_vertical_scroll_end or log.max_scroll_y == 0
        if old and lines[: len(old)] == old:
            log.write_lines(list(lines[len(old) :]), scroll_end=follow)
        else:
            log.clear()
            log.write_lines(list(lines), scroll_end=follow)
        self._log_shown = lines
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
        label = {
            "worktree": "live from the worktree",
            "merged": "as merged",
            "branch": f"on {diff.ref}",
            "attempt": f"an earlier attempt, kept on {diff.ref}",
            "none": "nothing yet",
        }[diff.source]
        self.query_one("#diff-scroll").border_title = label
        if rendered is not None:
            body, self._file_starts = rendered
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
                        sandbox_of(r.argv),
                        "" if r.exit_code is None else str(r.exit_code),
                        result if r.ok or r.ended_at is None else Text(result, "red"),
                        f"{tokens(r.input_tokens)}/{tokens(r.output_tokens)}",
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
        why = self.query_one("#why-text", Static)
        if which is None:
            why.update(Text("nothing failed", style="dim"))
        elif which[0] == "gate" and which[1] < len(d.gates):
            why.update(gate_why(d.gates[which[1]]))
        elif which[0] == "run" and which[1] < len(d.runs):
            why.update(run_why(d.runs[which[1]]))

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
        self.query_one(TabbedContent).active = tab

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        self.action_tab("log")
        self._log()

    @property
    def live(self) -> bool:
        return self.detail is not None and self.detail.task.state in ACTIVE_TASK_STATES


def gate_why(g: GateRow) -> Text:
    """A gate's verdict and the tail of its output."""
    head = gate_verdict(g.name, g.where, g.passed, g.exit_code, g.duration_s).removeprefix("» ")
    attempt = f"attempt {g.attempt} · " if g.attempt is not None else ""
    text = Text(f"{attempt}{head}\n", style="bold red" if not g.passed else "bold green")
    text.append(g.output_tail.strip() or "(no output)", style="" if g.output_tail else "dim")
    return text


def run_why(r: RunRecord) -> Text:
    """How an agent run ended: its reason, its error result and its stderr."""
    if r.ended_at is None:
        return Text(f"attempt {r.attempt} · run {r.id} · still running", style="dim")
    state = "ok" if r.ok else r.reason or "not ok"
    text = Text(
        f"attempt {r.attempt} · run {r.id} · {state}\n", style="bold" if r.ok else "bold red"
    )
    if r.result_text and (r.is_error or not r.ok):
        text.append("result: ", style="bold")
        text.append(r.result_text.strip() + "\n")
    if r.stderr_tail.strip():
        text.append("stderr:\n", style="bold")
        text.append(r.stderr_tail.rstrip() + "\n")
    return text


class GenerationsScreen(Screen[str | None]):
    """Every generation and the shown one's cycles; dismissed with the name to switch to."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Back", id="gens.back", tooltip="Back"),
        Binding(
            "enter",
            "switch",
            "Switch",
            id="gens.switch",
            tooltip="Show this generation on the main screen",
        ),
    ]

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

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
        self.show(self.snapshot)

    def show(self, snap: Snapshot) -> None:
        """Show ``snap`` (the app hands each new snapshot over while this screen is up)."""
        self.snapshot = snap
        gens = self.query_one("#gens-table", DataTable)
        sync_rows(
            gens,
            [
                (
                    r.name,
                    [
                        r.name,
                        r.state,
                        r.branch,
                        r.base_branch,
                        str(r.cycle),
                        f"{r.done}/{r.total}",
                        f"${r.cost_usd:.2f}",
                    ],
                )
                for r in snap.generations
            ],
        )
        cycles = self.query_one("#cycles-table", DataTable)
        sync_rows(
            cycles,
            [
                (str(c.cycle), [str(c.cycle), str(c.merged), str(c.failed), str(c.loc_delta)])
                for c in snap.cycles
            ],
        )
        cycles.border_subtitle = snap.current.name if snap.current else ""

    @on(DataTable.RowSelected, "#gens-table")
    def selected(self, event: DataTable.RowSelected) -> None:
        self.action_switch()

    def action_switch(self) -> None:
        gens = self.query_one("#gens-table", DataTable)
        if gens.row_count:
            name = str(gens.coordinate_to_cell_key(gens.cursor_coordinate).row_key.value)
            self.dismiss(name)


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
        if event.value.strip():  # Enter alone sends nothing: the agent needs to know what
            self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
