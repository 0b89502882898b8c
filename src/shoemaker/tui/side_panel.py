"""The diff side panel of a wide main screen: the changes of the task under the cursor.

It shows what the task screen's Diff tab shows (:func:`shoemaker.engine.task_detail.load_diff`,
highlighted by :func:`shoemaker.tui.diff_text.render_diff`), loaded and highlighted in
threads. While the task is active it reloads every ``refresh_s``: live from the worktree
while the task's branch is checked out there. Hidden (and idle) on a narrow screen.
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from shoemaker.engine.project import Project
from shoemaker.engine.task_detail import TaskDiff, load_diff
from shoemaker.model import ACTIVE_TASK_STATES, TaskState
from shoemaker.tui.diff_text import diff_label, render_diff
from shoemaker.tui.guard import Guarded, guarded_interval
from shoemaker.tui.task_screen import LOADING
from shoemaker.tui.theme import DiffColours, diff_colours

#: Files listed above the diff; the rest are summed up in one line.
MAX_FILES = 7


class DiffPanel(Guarded, Vertical):
    """The diff of one task (the one under the queue's cursor), with its file list."""

    def __init__(self, project: Project, refresh_s: float = 1.0, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.project = project
        self.refresh_s = refresh_s
        self.task_id: int | None = None
        self.task_title = ""
        self.state: TaskState | None = None
        self.diff: TaskDiff | None = None
        """The diff shown, for :attr:`task_id` (None until it is loaded)."""
        self.loads = 0
        self._loading = False
        self._colours: DiffColours | None = None  # those the diff shown was drawn in
        self._files = Static(id="side-files")
        self._body = Static(LOADING, id="side-diff")
        self._files_shown: Text | None = None
        self._blank = False  # the task changed while hidden: cleared when shown

    def compose(self) -> ComposeResult:
        yield self._files
        with VerticalScroll(id="side-scroll"):
            yield self._body

    def on_mount(self) -> None:
        self.border_title = "Diff"
        guarded_interval(self, self.refresh_s, self._tick, "reload a running task's diff")
        # The diff follows the theme, as the task screen's does.
        self.app.theme_changed_signal.subscribe(self, lambda _: self.load())

    def on_show(self) -> None:
        if self._blank:
            self._clear()
        self.load()  # the screen became wide: what was skipped while hidden

    @property
    def live(self) -> bool:
        return self.state in ACTIVE_TASK_STATES

    def show_task(self, task_id: int | None, title: str, state: TaskState | None) -> None:
        """Follow the cursor: show task ``task_id`` (its diff loads in a thread)."""
        self.state = state
        if task_id == self.task_id:
            return
        self.task_id, self.task_title, self.diff = task_id, title, None
        self.border_title = Text(f"Diff · #{task_id} {title}" if task_id else "Diff")
        self.border_subtitle = ""
        # A text changed in the panel lays the whole screen out, shown or not: while hidden
        # (a narrow screen) it is cleared only when shown.
        self._blank = not self.display
        if self.display:
            self._clear()
            self.load()

    def _clear(self) -> None:
        self._blank = False
        self._files_shown = None
        self._files.update("")
        self._body.update(LOADING if self.task_id is not None else Text("no task", style="dim"))

    def _tick(self) -> None:
        if self.live and self.display and not self._loading:
            self.load()

    @work(group="side-diff", exclusive=True, exit_on_error=False, description="load a diff")
    async def load(self) -> None:
        task_id = self.task_id
        if task_id is None or not self.display or not self.screen.is_current:
            return
        self._loading = True
        try:
            diff = await asyncio.to_thread(load_diff, self.project, task_id)
            colours = diff_colours(self.app.current_theme)
            same = self.diff is not None and diff.text == self.diff.text
            if same and colours == self._colours:
                rendered = None
            else:
                rendered = await asyncio.to_thread(render_diff, diff.text, colours)
                self._colours = colours
        finally:
            self._loading = False
        if not self.is_attached or task_id != self.task_id:
            return  # the cursor moved on meanwhile
        self.diff = diff
        self.loads += 1
        self.border_subtitle = diff_label(diff)
        files = Text()
        shown = diff.stat.files[:MAX_FILES]
        for n, f in enumerate(shown):
            if n:
                files.append("\n")
            files.append(f"+{f.insertions}", "green")
            files.append(" ")
            files.append(f"−{f.deletions}", "red")
            files.append(f" {f.path}")
        if len(diff.stat.files) > len(shown):
            files.append(f"\n… and {len(diff.stat.files) - len(shown)} more files", "dim")
        files.no_wrap, files.overflow = True, "ellipsis"
        # A running task's diff reloads every second; the same list redrawn would lay the
        # screen out each time.
        if files != self._files_shown:
            self._files_shown = files
            self._files.update(files)
            self._files.display = bool(diff.stat.files)
        if rendered is not None:
            self._body.update(rendered[0])
