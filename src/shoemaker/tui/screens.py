"""Screens beyond the main one and the task screen (``task_screen.py``): the generations, the
plans, help, and the confirmation and note dialogs.

Each screen is given what it shows (a snapshot, rows of keys, a question) and answers through
``dismiss``; none reaches into the app.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    DataTable,
    Header,
    Input,
    Static,
)

from shoemaker.engine.schedule_state import ScheduleRow
from shoemaker.engine.views import (
    Snapshot,
    TaskRow,
)
from shoemaker.model import ACTIVE_TASK_STATES, TaskState
from shoemaker.tui.footer import PinnedFooter
from shoemaker.tui.guard import Guarded
from shoemaker.tui.rows import sync_rows
from shoemaker.tui.widgets import generation_state


@dataclass(frozen=True, slots=True)
class PlanProgress:
    """One plan's tasks counted by how far they are."""

    plan: str
    total: int
    done: int
    active: int
    failed: int


def plan_progress(snap: Snapshot) -> list[PlanProgress]:
    """The tasks of ``snap`` that came from plan files, grouped by plan, in order of
    appearance."""
    groups: dict[str, list[TaskRow]] = {}
    for row in snap.tasks:
        if row.plan:
            groups.setdefault(row.plan, []).append(row)
    return [
        PlanProgress(
            plan,
            len(rows),
            sum(r.state == TaskState.DONE for r in rows),
            sum(r.state in ACTIVE_TASK_STATES for r in rows),
            sum(r.state in (TaskState.FAILED, TaskState.CONFLICT, TaskState.BLOCKED) for r in rows),
        )
        for plan, rows in groups.items()
    ]


def progress_bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else 0
    return "█" * filled + "░" * (width - filled)


class PlansScreen(Guarded, Screen[None]):
    """The tasks from plan files, grouped by module, master plan or issues file, with the
    progress of each."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Back", id="plans.back", tooltip="Back")]

    def __init__(self, snapshot: Snapshot, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.clock = clock
        # A snapshot may arrive between the push and the mount: kept, shown by on_mount.
        self.ready = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="plans-table", cursor_type="row")
        yield PinnedFooter()

    def on_mount(self) -> None:
        table = self.query_one("#plans-table", DataTable)
        table.border_title = "Plans"
        table.add_columns("plan", "done", "running", "failed", "progress")
        self.sub_title = "plans"
        self.ready = True
        self.show(self.snapshot)

    def show(self, snap: Snapshot) -> None:
        """Show ``snap`` (the app hands each new snapshot over while this screen is up)."""
        self.snapshot = snap
        if not self.ready:
            return
        table = self.query_one("#plans-table", DataTable)
        rows = plan_progress(snap)
        table.border_subtitle = "" if rows else "no task came from a plan file"
        sync_rows(
            table,
            [
                (
                    p.plan,
                    [
                        Text(p.plan),
                        f"{p.done}/{p.total}",
                        str(p.active),
                        str(p.failed),
                        progress_bar(p.done, p.total),
                    ],
                )
                for p in rows
            ],
        )


class GenerationsScreen(Guarded, Screen[str | None]):
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

    #: Seconds between two readings of the schedules (their file and fire times).
    SCHEDULES_EVERY_S = 5.0

    def __init__(
        self,
        snapshot: Snapshot,
        schedules: Callable[[], Sequence[ScheduleRow]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.clock = clock
        # A snapshot may arrive between the push and the mount: kept, shown by on_mount.
        self.ready = False
        self._schedules = schedules
        self._schedule_rows: Sequence[ScheduleRow] = schedules() if schedules else ()
        self._schedules_read = time.monotonic()

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="gens-table", cursor_type="row")
        yield DataTable(id="cycles-table", cursor_type="row")
        if self._schedule_rows:
            yield DataTable(id="schedules-table", cursor_type="row")
        yield PinnedFooter()

    def on_mount(self) -> None:
        gens = self.query_one("#gens-table", DataTable)
        gens.border_title = "Generations"
        gens.add_columns("name", "state", "branch", "base", "cycle", "tasks", "cost")
        cycles = self.query_one("#cycles-table", DataTable)
        cycles.border_title = "Cycles"
        cycles.add_columns("cycle", "merged", "failed", "lines changed")
        if self._schedule_rows:
            table = self.query_one("#schedules-table", DataTable)
            table.border_title = "Schedules"
            table.add_columns("name", "cron", "next", "last batch")
            self._show_schedules()
        self.sub_title = "generations"
        self.ready = True
        self.show(self.snapshot)

    def show(self, snap: Snapshot) -> None:
        """Show ``snap`` (the app hands each new snapshot over while this screen is up)."""
        self.snapshot = snap
        if not self.ready:
            return
        gens = self.query_one("#gens-table", DataTable)
        now = self.clock()
        sync_rows(
            gens,
            [
                (
                    r.name,
                    [
                        r.name,
                        generation_state(r, now),
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
        due = time.monotonic() - self._schedules_read >= self.SCHEDULES_EVERY_S
        if self._schedules and self._schedule_rows and due:
            self._schedule_rows = self._schedules()
            self._schedules_read = time.monotonic()
            self._show_schedules()

    def _show_schedules(self) -> None:
        """Each schedule's next fire time (in its zone) and how its last batch ended."""
        table = self.query_one("#schedules-table", DataTable)
        sync_rows(
            table,
            [(r.name, [r.name, r.cron, r.next, r.last or "—"]) for r in self._schedule_rows],
        )
        firing = any(r.firing for r in self._schedule_rows)
        table.border_subtitle = (
            "the schedule daemon fires them" if firing else "no schedule daemon runs"
        )

    @on(DataTable.RowSelected, "#gens-table")
    def selected(self, event: DataTable.RowSelected) -> None:
        self.action_switch()

    def action_switch(self) -> None:
        gens = self.query_one("#gens-table", DataTable)
        if gens.row_count:
            name = str(gens.coordinate_to_cell_key(gens.cursor_coordinate).row_key.value)
            self.dismiss(name)


class HelpScreen(Guarded, ModalScreen[None]):
    """Every key of the screen it was opened on, what it does, and why it is disabled."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, rows: Sequence[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        # What the box is says its border, and no header row: every row inside is a key, so
        # that all of the main screen's keys fit at 80×24.
        table: DataTable[str] = DataTable(id="help-table", cursor_type="row", show_header=False)
        table.add_columns("key", "action", "")
        for row in self.rows:
            table.add_row(*row)
        box = Vertical(id="help-box")
        box.border_title = "shoemaker keys"
        box.border_subtitle = "ctrl+p: command palette · escape: close"
        with box:
            yield table


class ConfirmScreen(Guarded, ModalScreen[bool]):
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


class NoteScreen(Guarded, ModalScreen[str | None]):
    """Asks for a line of text (a rejection's note; a retry's, ``optional``); escape
    cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="note.cancel")]

    def __init__(self, question: str, detail: str = "", optional: bool = False) -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.optional = optional

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text(self.question, style="bold"), classes="question")
            if self.detail:
                yield Static(Text(self.detail), classes="detail")
            optional = " (or none)" if self.optional else ""
            yield Input(
                placeholder=f"a note for the agent{optional}; enter to send, escape to cancel",
                id="note",
            )

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        # Enter alone sends nothing to a rejection: the agent needs to know what to change.
        if event.value.strip() or self.optional:
            self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
