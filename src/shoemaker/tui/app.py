"""The dashboard app: the engine's story on screen, and the keys that drive it.

The engine runs on the app's own event loop (its agents are asyncio subprocesses); blocking
store and git calls go through threads. Everything on screen comes from the engine's events,
through :mod:`shoemaker.tui.bridge`, and from read-only views (:mod:`shoemaker.engine.views`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from textual import on, work
from textual.actions import ActionParseResult
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Container, Horizontal, Vertical
from textual.dom import DOMNode
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import DataTable, Header
from textual.worker import Worker, WorkerState

from shoemaker.engine import review
from shoemaker.engine.ending import reset_generation, stop_generation
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import pause_generation, start_generation, switch_generation
from shoemaker.engine.loop_thread import LoopThread
from shoemaker.engine.project import Project, RunLock, run_lock_holder
from shoemaker.engine.retry import RETRYABLE, retry_tasks
from shoemaker.engine.schedule_state import ScheduleRow, schedule_rows
from shoemaker.engine.task_detail import MARK, last_lines, load_task_detail
from shoemaker.engine.views import LiveUsage, Snapshot, TaskRow, load_snapshot
from shoemaker.errors import GenerationError, ShoemakerError
from shoemaker.events import (
    AgentFinished,
    AgentStarted,
    BudgetCrossed,
    GenerationStateChanged,
    Notice,
    RateLimited,
    Recovered,
    TaskStateChanged,
)
from shoemaker.model import DRIVEN_GENERATION_STATES, GenerationState, TaskState
from shoemaker.resources import data_dir
from shoemaker.tui.bridge import EngineEvent, EventBridge, OutputBuffers
from shoemaker.tui.footer import PinnedFooter
from shoemaker.tui.guard import Guarded, guarded_interval, report_error
from shoemaker.tui.heap import freeze_heap, thaw_heap
from shoemaker.tui.metrics import MetricsPanel
from shoemaker.tui.screens import (
    ConfirmScreen,
    GenerationsScreen,
    HelpScreen,
    NoteScreen,
    PlansScreen,
)
from shoemaker.tui.side_panel import DiffPanel
from shoemaker.tui.task_screen import TaskScreen
from shoemaker.tui.theme import ThemeFile
from shoemaker.tui.widgets import (
    FILTERS,
    FLUSH_S,
    PANE_LINES,
    GenerationsPanel,
    OutputPane,
    TaskQueue,
    countdown,
)

Mode = Literal["live", "attach"]
#: Every error shoemaker explains: shown as a notification, the dashboard goes on.
T = TypeVar("T")

ENGINE_ERRORS = (ShoemakerError,)
#: Actions that change something; an attached dashboard allows only ATTACHED_ACTIONS.
ENGINE_ACTIONS = {
    "start",
    "run",
    "resume",
    "pause",
    "stop",
    "reset",
    "measure",
    "kill_run",
    "approve",
    "reject",
}
#: What an attached dashboard may do to a run that another process drives: through the store
#: (pause, reviews), with a signal (kill, as an interrupt would), or by taking over (resume).
ATTACHED_ACTIONS = {"pause", "kill_run", "approve", "reject", "resume"}
#: Keys that act everywhere; the main screen's other keys are hidden on the other screens.
GLOBAL_ACTIONS = {"help", "quit"}
#: Task states whose agent is at work (or whose work is being checked and merged).
ACTIVE = (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING)
#: Task states whose agent has not started yet.
NOT_STARTED = (TaskState.READY, TaskState.PROPOSED)
#: Task states that leave nothing to do.
FINISHED = (TaskState.DONE, TaskState.CANCELLED)
#: Task states that wait for the person, in the order the header counts them.
ATTENTION = {
    TaskState.NEEDS_REVIEW: "awaiting review",
    TaskState.FAILED: "failed",
    TaskState.CONFLICT: "in conflict",
    TaskState.BLOCKED: "blocked",
}


def waiting_for_you(snap: Snapshot) -> list[str]:
    """What waits for the person, for the header: ``["1 awaiting review", "1 failed"]``."""
    counts = {state: 0 for state in ATTENTION}
    for row in snap.tasks:
        if row.state in counts:
            counts[row.state] += 1
    return [f"{n} {ATTENTION[state]}" for state, n in counts.items() if n]


class ShoemakerCommands(Provider):
    """The dashboard's verbs in the command palette."""

    async def _commands(self) -> AsyncIterator[tuple[str, str, Callable[[], object]]]:
        app = self.app
        assert isinstance(app, ShoemakerApp)
        for title, help_text, action in app.palette_commands():
            yield title, help_text, action

    async def discover(self) -> Hits:
        async for title, help_text, action in self._commands():
            yield DiscoveryHit(title, action, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        async for title, help_text, action in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), action, help=help_text)


class ShoemakerApp(Guarded, App[None]):
    """Generations, the task queue, live agent output and metrics, driven from the keyboard."""

    TITLE = "shoemaker"
    COMMANDS = App.COMMANDS | {ShoemakerCommands}
    #: From 160 columns on the main screen shows the diff of the task under the cursor.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (160, "-wide")]
    BINDINGS = [
        Binding("g", "start", "Start", id="start", tooltip="Start a new generation"),
        Binding("r", "run", "Run", id="run", tooltip="Run measure+stitch cycles"),
        Binding(
            "p", "pause", "Pause", id="pause", tooltip="Running tasks finish; no new task starts"
        ),
        Binding(
            "s",
            "stop",
            "Stop gen",
            id="stop",
            tooltip="Merge the generation into its base branch (asks first)",
        ),
        Binding("m", "measure", "Measure", id="measure", tooltip="Propose tasks once"),
        Binding("enter", "open_task", "Open", id="open", tooltip="The selected task in full"),
        Binding("d", "diff", "Diff", id="diff", tooltip="The selected task's changes"),
        Binding("l", "log", "Log", id="log", tooltip="The selected task's full log"),
        Binding("f", "filter", "Filter", id="filter", tooltip="Show tasks of one state"),
        Binding(
            "F",
            "follow",
            "Follow",
            id="follow",
            show=False,
            tooltip="Move to each task as its agent starts (on/off)",
        ),
        Binding(
            "G",
            "generations",
            "Generations",
            id="generations",
            tooltip="List, switch, and see cycles",
        ),
        Binding(
            "n",
            "next_agent",
            "Next agent",
            id="next-agent",
            tooltip="Show the output of the next running agent",
        ),
        Binding(
            "k",
            "kill_run",
            "Kill run",
            id="kill",
            show=False,
            tooltip="Stop running agents now: their work is kept, the tasks go back to ready",
        ),
        Binding(
            "v", "review_queue", "Review", id="review", tooltip="Show the tasks waiting for review"
        ),
        Binding(
            "a",
            "approve",
            "Approve",
            id="approve",
            tooltip="Merge the task under the cursor, which waits for review",
        ),
        Binding(
            "x",
            "reject",
            "Reject",
            id="reject",
            tooltip="Send the task under the cursor back to its agent with a note",
        ),
        Binding(
            "e",
            "retry",
            "Retry",
            id="retry",
            tooltip="Run the failed, blocked or conflict task again, with an optional note",
        ),
        Binding(
            "R",
            "resume",
            "Resume",
            id="resume",
            tooltip="After a pause or a crash: recover what was left, then run",
        ),
        Binding(
            "X",
            "reset",
            "Reset",
            id="reset",
            tooltip="Abandon the generation: tag it NAME-abandoned, remove its branches",
        ),
        Binding(
            "P",
            "plans",
            "Plans",
            id="plans",
            show=False,
            tooltip="Tasks from plan files, by module or master plan, with progress",
        ),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
        Binding("q", "quit", "Quit", id="quit", tooltip="Stop agents cleanly and quit"),
    ]

    def __init__(
        self,
        project: Project,
        *,
        mode: Mode = "live",
        demo: bool = False,
        parallel: int | None = None,
        clock: Callable[[], float] = time.time,
        css_path: Path | None = None,
        follow_idle_s: float = 8.0,
    ) -> None:
        super().__init__(css_path=css_path or data_dir("styles") / "dashboard.tcss")
        self.project = project
        self.mode: Mode = mode
        self.demo = demo
        self.parallel = parallel
        self.clock = clock
        self.snapshot = Snapshot()
        self.generation: str | None = None
        self.engine: Engine | None = None
        self._engine_loop: LoopThread | None = None
        self._pause_asked = False
        self.busy: str | None = None
        self.follow = True
        self.follow_idle_s = follow_idle_s
        """Follow moves the output pane only after the person left the cursor and the output
        alone this long (or while the pane shows a task that is finished)."""
        self._agent_hint = ""
        self.snapshots_loaded = 0
        self._cursor_wanted: int | None = None
        self.note = ""
        self.buffers = OutputBuffers()
        self.live_usage = LiveUsage(project.runs_dir, project.config, project.spent_so_far)
        self.bridge = EventBridge(self, self.buffers)
        self._dirty = True
        self._panels_stale = False
        self._loading = False
        self.other_run: int | None = None
        """In attach mode: the pid of the process that drives the run, while it runs."""
        self.demo_started: float | None = None
        self.demo_ended: float | None = None
        """When the demo generation started and stopped or was left open (monotonic): the
        summary printed after quitting gives its wall time."""
        self.theme_file = ThemeFile()
        self._theme_kept: str | None = None

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications carry task titles, reasons and errors: data, so plain by default."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # -- theme --------------------------------------------------------------------------------

    def _restore_theme(self) -> None:
        """The theme chosen in an earlier session; a file that cannot be used is said once."""
        name, problem = self.theme_file.load(self.available_themes)
        if problem:
            self.notify(problem, title="theme", severity="warning", timeout=15)
        if name:
            self.theme = name
        self._theme_kept = self.theme

    def watch_theme(self, name: str) -> None:
        # Kept for the next session: chosen from the palette (ctrl+p → Change theme).
        if self._theme_kept is None or name == self._theme_kept:
            return
        self._theme_kept = name
        problem = self.theme_file.save(name)
        if problem:
            self.notify(problem, title="theme", severity="warning", timeout=15)

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept as attributes: handlers may run while another screen is on top.
        self.generations_panel = GenerationsPanel(clock=self.clock, id="generations")
        self.metrics = MetricsPanel(clock=self.clock, id="metrics")
        notifier = self.project.notifier
        if notifier is not None:
            self.metrics.notifications = lambda: notifier.status.line()
        self.queue = TaskQueue(id="queue")
        self.output = OutputPane(id="output")
        self.side = DiffPanel(self.project, id="side")
        yield Header(show_clock=False)
        with Horizontal(id="body"):
            with Vertical(id="main"):
                with Horizontal(id="top"):
                    yield self.generations_panel
                    yield self.metrics
                # Boxed, the queue is not redrawn with each frame of the output pane below
                # it: Textual redraws every widget whose container overlaps what changed.
                with Container(id="queue-box"):
                    yield self.queue
                yield self.output
            yield self.side
        yield PinnedFooter()

    def on_mount(self) -> None:
        self._restore_theme()
        self.metrics.parallel = self.parallel or self.project.config.max_parallel
        self.output.border_title = "Agent output"
        self._output_subtitle()
        self.queue.focus()
        if self.mode == "attach":
            self.run_worker(
                self.bridge.follow_store(self.project.store, self.project.runs_dir),
                group="follow",
                exit_on_error=False,
                description="follow the store",
            )
            guarded_interval(self, 1.0, self._watch_other_run, "watch the run lock")
            self._watch_other_run()
            self.notify(
                "following a run that another process drives: p pauses it, k kills it, "
                "a/x review; R takes over once it ended",
                title="attached",
                timeout=10,
            )
        else:
            self.bridge.attach_bus(self.project.bus)
        self.screen_change_signal.subscribe(self, self._uncovered)
        guarded_interval(self, FLUSH_S, self.flush_output, "flush output")
        guarded_interval(self, 0.2, self._refresh_if_dirty, "refresh snapshot")
        guarded_interval(self, 1.0, self._tick, "tick")
        self.refresh_snapshot()
        if self.demo:
            self.run_worker(
                self._demo(),
                group="engine",
                exclusive=True,
                exit_on_error=False,
                description="demo generation",
            )

    def on_ready(self) -> None:
        # Drawn once: what is alive now stays, and full collections need not walk it again.
        freeze_heap()

    def on_unmount(self) -> None:
        thaw_heap()
        if self._engine_loop is not None:
            self._engine_loop.close()

    async def run_engine(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` (an engine's run or measure) on the engine's own thread and loop.

        The engine reads, parses and stores every line its agents print; on this loop that
        work would queue in front of each key press and redraw. Its events come back through
        the bus, on this loop (the bridge listens here), a batch at a time.
        """
        if self._engine_loop is None:
            self._engine_loop = LoopThread()
        return await self._engine_loop.run(coro)

    # -- data ---------------------------------------------------------------------------------

    @work(group="snapshot", exit_on_error=False, description="load snapshot")
    async def refresh_snapshot(self) -> None:
        self._loading, self._dirty = True, False
        try:
            snap = await asyncio.to_thread(
                load_snapshot,
                self.project.store,
                self.generation,
                self.project.config,
                self.live_usage,
            )
        finally:
            self._loading = False
        self.apply_snapshot(snap)

    def apply_snapshot(self, snap: Snapshot) -> None:
        if not self.queue.is_attached:
            return  # the app is tearing its screens down
        self.snapshot = snap
        self.snapshots_loaded += 1
        out = self.output
        if out.task_id is not None:
            title = self._output_title(out.task_id)
            if out.border_title != title:
                out.border_title = title  # the task's row came after its first lines
        if snap.current is not None:
            self.generation = snap.current.name
        if self.main_covered:
            self._panels_stale = True  # shown when the main screen is again (`_uncovered`)
        else:
            self._show_panels(snap)
        self._show_header(snap)
        if isinstance(self.screen, (GenerationsScreen, PlansScreen)):
            self.screen.show(snap)

    def _show_header(self, snap: Snapshot) -> None:
        current = snap.current
        state = current.state if current else "no generation"
        parts = [f"{self.project.root.name} · {self.generation or '—'} {state}"]
        if current is not None and current.state == "rate_limited" and current.rate_limited_until:
            parts[0] += f" · resumes in {countdown(current.rate_limited_until - self.clock())}"
        if self.busy:
            parts.append(f"{self.busy}…")
        if self.mode == "attach":
            parts.append(
                f"attached to the run of pid {self.other_run}"
                if self.other_run is not None
                else "attached: no run in progress"
            )
        parts += waiting_for_you(snap)
        if self.note:
            parts.append(self.note)
        self.sub_title = " · ".join(parts)
        self.refresh_bindings()

    def _show_panels(self, snap: Snapshot) -> None:
        self._panels_stale = False
        self.generations_panel.show(snap.generations, self.generation)
        self.queue.show(snap.tasks)
        if self._cursor_wanted is not None and self._move_cursor_to(self._cursor_wanted):
            self._cursor_wanted = None
        self.metrics.show(snap)
        self._show_side()

    @property
    def main_covered(self) -> bool:
        """Whether a full screen (a task's, the generations…) hides the main one.

        Its panes then wait: Textual repaints the screen on top wherever a pane below it
        changes, so a hidden output pane written at 30 Hz and a queue redrawn with every
        snapshot cost the screen on top its redraws. The snapshot is still loaded; the
        panes catch up when the main screen is shown again.
        """
        return any(not isinstance(s, ModalScreen) for s in self.screen_stack[1:])

    def _uncovered(self, screen: object) -> None:
        if self.main_covered:
            return
        if self._panels_stale:
            self._show_panels(self.snapshot)
        # What the pane's task printed meanwhile waited uncondensed: as many lines as the pane
        # shows are condensed now, once, not ten times a second behind the screen on top.
        self.buffers.keep_pending(self.output.task_id, PANE_LINES)
        self.flush_output()
        self._tick()

    def _refresh_if_dirty(self) -> None:
        if self._dirty and not self._loading:
            self.refresh_snapshot()

    def _tick(self) -> None:
        # Elapsed time and burn rate move even when no event arrives; what running agents
        # spent so far is read again.
        if self._running_tasks():
            self._dirty = True
        if any(g.rate_limited_until is not None for g in self.snapshot.generations):
            # The countdown to a rate limit's reset moves on its own.
            self._show_header(self.snapshot)
            if isinstance(self.screen, GenerationsScreen):
                self.screen.show(self.snapshot)
            elif not self.main_covered:
                self.generations_panel.show(self.snapshot.generations, self.generation)
        if self.main_covered:
            return
        self.metrics.show(self.snapshot)
        if self.output.is_attached:
            self._output_subtitle()

    @on(EngineEvent)
    def engine_event(self, message: EngineEvent) -> None:
        self._dirty = True
        event = message.event
        if isinstance(event, AgentStarted) and self._may_follow():
            self.show_output(event.task_id, move_cursor=True)
        elif isinstance(event, AgentFinished) and not event.ok:
            self._last_words(event.run_id, event.task_id)
        elif isinstance(event, Notice) and event.level in ("warning", "error"):
            self.notify(event.message, severity="error" if event.level == "error" else "warning")
        elif isinstance(event, BudgetCrossed):
            self.notify(event.message, title="budget reached", severity="error", timeout=20)
        elif isinstance(event, RateLimited):
            self.notify(
                event.reason, title=f"rate limit: {event.status}", severity="warning", markup=False
            )
        elif isinstance(event, Recovered):
            self.notify(event.summary, title="recovered after a crash", severity="warning")
        elif isinstance(event, TaskStateChanged) and event.new in ATTENTION:
            self.notify(
                f"#{event.task_id} {event.title}: {event.reason or event.new}",
                title=f"task {ATTENTION[event.new]}",
                severity="warning" if event.new == TaskState.NEEDS_REVIEW else "error",
                timeout=15,
                markup=False,
            )
        elif isinstance(event, GenerationStateChanged) and event.generation:
            self.generation = event.generation
            if event.new == GenerationState.STOPPED:
                self.notify(
                    f"{event.generation} merged into {event.base_branch or 'its base'}",
                    title="generation stopped",
                    markup=False,
                )

    # -- agent output -------------------------------------------------------------------------

    def _may_follow(self) -> bool:
        """Whether following may move the pane (and the cursor) now: never while the person
        is using them, unless the pane shows a task that has finished."""
        if not self.follow:
            return False
        touched = max(self.queue.touched_at, self.output.touched_at)
        if time.monotonic() - touched >= self.follow_idle_s:
            return True
        shown = next((r for r in self.snapshot.tasks if r.id == self.output.task_id), None)
        return shown is not None and shown.state not in (*ACTIVE, *NOT_STARTED)

    def _output_subtitle(self) -> None:
        state = "following" if self._may_follow() else "paused"
        self.output.border_subtitle = " · ".join(p for p in (state, self._agent_hint) if p)

    @work(group="last-words", exit_on_error=False, description="a failed agent's stderr")
    async def _last_words(self, run_id: int, task_id: int | None) -> None:
        """A crashed agent's stderr, into the output pane under its task."""
        run = await asyncio.to_thread(self.project.store.get_run, run_id)
        for line in last_lines(run.stderr_tail, 8):
            self.buffers.add(task_id, f"{MARK}stderr: {line}")

    def flush_output(self) -> None:
        out = self.output
        if self.main_covered:
            return  # what arrives waits uncondensed (bounded) until the pane is shown again
        lines = self.buffers.take(out.task_id)
        self.buffers.drop_pending()  # other tasks' lines stay in their history
        out.feed(lines)

    def show_output(self, task_id: int | None, move_cursor: bool = False) -> None:
        out = self.output
        if move_cursor and task_id is not None and not self._move_cursor_to(task_id):
            self._cursor_wanted = task_id  # its row appears with the next snapshot
        if task_id == out.task_id and out.line_count:
            return
        title = self._output_title(task_id)
        history = self.buffers.history(task_id)
        out.replace(task_id, history, title)
        if not history and task_id is not None:
            self._load_output(task_id)

    def _move_cursor_to(self, task_id: int) -> bool:
        ids = [r.id for r in self.queue.rows_shown]
        if task_id not in ids:
            return False
        self.queue.move_cursor(row=ids.index(task_id))
        return True

    def _output_title(self, task_id: int | None) -> str:
        if task_id is None:
            return "Agent output · measure"
        row = next((r for r in self.snapshot.tasks if r.id == task_id), None)
        return f"Agent output · #{task_id} {row.title if row else ''}".rstrip()

    @work(group="output-history", exclusive=True, exit_on_error=False)
    async def _load_output(self, task_id: int) -> None:
        detail = await asyncio.to_thread(load_task_detail, self.project, task_id, 2_000)
        out = self.output
        if out.task_id == task_id and not self.buffers.has_lines(task_id):
            out.replace(task_id, list(detail.log), self._output_title(task_id))

    @on(DataTable.RowHighlighted, "#queue")
    def task_highlighted(self, event: DataTable.RowHighlighted) -> None:
        task_id = self.queue.selected_task
        if task_id is not None and task_id != self.output.task_id:
            self.show_output(task_id)
        self._show_side()
        self.refresh_bindings()  # approve and reject show only on a task waiting for review
        self._output_subtitle()  # a cursor the person moved pauses following

    def _show_side(self) -> None:
        """The diff side panel follows the cursor."""
        task_id = self.queue.selected_task
        row = next((r for r in self.snapshot.tasks if r.id == task_id), None)
        self.side.show_task(task_id, row.title if row else "", row.state if row else None)

    @on(DataTable.RowSelected, "#queue")
    def task_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_task()

    def switch_generation(self, name: str) -> None:
        """Show generation ``name``; an open one is also checked out (as `shoemaker switch`),
        so that the keys act on it."""
        self.generation = name
        self.refresh_snapshot()
        row = next((g for g in self.snapshot.generations if g.name == name), None)
        if (
            self.mode == "live"
            and not self.busy
            and row is not None
            and row.state not in (GenerationState.STOPPED, GenerationState.ABANDONED)
        ):
            self._engine_worker(self._switch(name), f"switch to {name}")

    async def _switch(self, name: str) -> None:
        try:
            await asyncio.to_thread(switch_generation, self.project, name)
        except GenerationError as exc:
            self.notify(
                f"showing {name}, but it cannot be checked out: {exc}",
                title="not switched",
                severity="warning",
                timeout=15,
            )

    # -- what may be done now -----------------------------------------------------------------

    def _open_generation(self) -> bool:
        cur = self.snapshot.current
        return cur is not None and cur.state not in (
            GenerationState.STOPPED,
            GenerationState.ABANDONED,
        )

    def disabled_reason(self, action: str) -> str:
        if action in self.main_actions and not self._on_main_screen():
            return "on the main screen only"
        if self.mode == "attach" and action in ENGINE_ACTIONS - ATTACHED_ACTIONS:
            return "attached: another process drives this run"
        if self.mode == "attach" and action == "resume":
            return "the other process still runs; resume takes over once it ended"
        if self.busy and action in ENGINE_ACTIONS - {"pause", "kill_run", "approve", "reject"}:
            return f"busy: {self.busy}"
        reasons = {
            "start": "a generation is already open",
            "run": "no open generation",
            "resume": "no open generation",
            "reset": "no open generation",
            "pause": "nothing is running",
            "stop": "no open generation",
            "measure": "no open generation",
            "kill_run": "nothing is running",
            "approve": "the task under the cursor is not waiting for review",
            "reject": "the task under the cursor is not waiting for review",
            "retry": "no failed, blocked or conflict task under the cursor",
            "open_task": "no task selected",
            "diff": "no task selected",
            "log": "no task selected",
        }
        return reasons.get(action, "")

    @property
    def main_actions(self) -> set[str]:
        """The actions of the main screen's keys (all but help and quit)."""
        return {b.action for b in self.BINDINGS if isinstance(b, Binding)} - GLOBAL_ACTIONS

    def _on_main_screen(self) -> bool:
        """Whether the main screen is the one shown (modal dialogs above it aside)."""
        for screen in reversed(self.screen_stack):
            if not screen.is_modal:
                return screen is self.screen_stack[0]
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            # Through the store, so beside a run too (which then starts the task); shown only
            # on a task it applies to, on the main screen or on that task's screen.
            return self._retry_target() is not None
        if action in self.main_actions and not self._on_main_screen():
            return False  # the task and generations screens have keys of their own
        if action in ("approve", "reject"):
            # Reviews go through the merge queue, so they may happen while a run goes on; the
            # footer shows them only on a task that waits for one.
            return self._selected_review() is not None
        if action in ENGINE_ACTIONS and self.mode == "attach":
            return self._check_attached(action)
        if action in ENGINE_ACTIONS:
            if action == "pause":
                return True if self.busy == "running" and not self._paused() else None
            if action == "kill_run":
                return True if self.busy == "running" else None
            if self.busy:
                return None
            if action == "start":
                return None if self._open_generation() else True
            return True if self._open_generation() else None
        if action in ("open_task", "diff", "log"):
            return True if self._selected() is not None else None
        return True

    def _check_attached(self, action: str) -> bool | None:
        cur = self.snapshot.current
        if action == "pause":
            running = cur is not None and cur.state in DRIVEN_GENERATION_STATES
            return True if running and self.other_run is not None else None
        if action == "kill_run":
            return True if self.other_run is not None else None
        if action == "resume":
            return True if self.other_run is None and self._open_generation() else None
        return None

    def _paused(self) -> bool:
        # Asked here, set on the engine's loop a moment later.
        return self.engine is not None and (self._pause_asked or self.engine.paused)

    # -- actions ------------------------------------------------------------------------------

    def refresh_bindings(self) -> None:
        # Cursor moves and workers may end while the app tears its screens down.
        if self.screen_stack:
            super().refresh_bindings()

    def _set_busy(self, what: str | None) -> None:
        self.busy = what
        self._dirty = True
        self.refresh_bindings()

    def _engine_worker(self, coro: Coroutine[Any, Any, object], description: str) -> None:
        self.run_worker(
            coro, group="engine", exclusive=True, exit_on_error=False, description=description
        )

    def action_start(self) -> None:
        self._engine_worker(self._start(), "start a generation")

    async def _start(self) -> None:
        self._set_busy("starting")
        try:
            gen = await asyncio.to_thread(start_generation, self.project, None)
        except GenerationError as exc:
            if not await asyncio.to_thread(self.project.git.ref_exists, "HEAD"):
                self.notify(
                    "this repository has no commit yet, and a generation starts from one: "
                    "commit your files (git add …, git commit), then press g again",
                    title="no commit yet",
                    severity="warning",
                    timeout=20,
                )
            else:
                self.notify(str(exc), title="cannot start", severity="error", timeout=10)
        else:
            self.generation = gen.name
            self.notify(f"generation {gen.name} started on {gen.branch}")
        finally:
            self._set_busy(None)

    def action_run(self) -> None:
        self._engine_worker(self._run(), "run cycles")

    async def _run(self) -> bool:
        self.engine = Engine(self.project, max_parallel=self.parallel)
        self._pause_asked = False
        self._set_busy("running")
        try:
            report = await self.run_engine(self.engine.run())
        except ENGINE_ERRORS as exc:
            self.notify(str(exc), title="run stopped", severity="error", timeout=15)
            return False
        finally:
            self._set_busy(None)
        self.notify(
            f"{report.cycles} cycle(s): {report.merged} merged, {report.failed} failed "
            f"({report.stopped_because})",
            title="run finished",
        )
        return report.failed == 0

    def action_pause(self) -> None:
        if self.mode == "attach":
            self._review_worker(self._pause_other(), "pause the other process's run")
        elif self.engine is not None and self._engine_loop is not None:
            self._pause_asked = True
            self._engine_loop.call_soon(self.engine.pause)
            self.notify("pausing: running tasks finish, no new task starts")
            self.refresh_bindings()

    async def _pause_other(self) -> None:
        # As `shoemaker pause`: the driving run reads the state before each launch.
        said = await asyncio.to_thread(pause_generation, self.project)
        self.notify(said, title="pause", markup=False)
        self._dirty = True

    def action_stop(self) -> None:
        gen = self.snapshot.current
        if gen is None:
            return
        undone = [r for r in self.snapshot.tasks if r.state not in FINISHED]
        left = (
            f"{len(undone)} task(s) are left undone: "
            + ", ".join(f"#{r.id} {r.title} ({r.state.value})" for r in undone[:8])
            + (f" and {len(undone) - 8} more" if len(undone) > 8 else "")
            + "."
            if undone
            else "Every task is finished."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._engine_worker(self._stop(), "stop the generation")

        self.push_screen(
            ConfirmScreen(
                f"Stop generation {gen.name}?",
                f"Tags it {gen.name}-finished, merges {gen.branch} into {gen.base_branch} and "
                f"deletes the generation branch. {left}",
            ),
            answered,
        )

    async def _stop(self) -> None:
        self._set_busy("stopping")
        try:
            # The generation's `stopped` event says it on screen ("generation finished").
            await asyncio.to_thread(stop_generation, self.project, None)
        except GenerationError as exc:
            self.notify(str(exc), title="cannot stop", severity="error", timeout=15)
        finally:
            self._set_busy(None)

    def action_measure(self) -> None:
        self._engine_worker(self._measure(), "measure once")

    async def _measure(self) -> None:
        self._set_busy("measuring")
        try:
            tasks = await self.run_engine(Engine(self.project).measure_once())
        except ENGINE_ERRORS as exc:
            self.notify(str(exc), title="measure failed", severity="error", timeout=15)
        else:
            self.notify(f"measure added {len(tasks)} task(s)")
        finally:
            self._set_busy(None)

    async def _demo(self) -> None:
        """The demo generation: start, run, stop, as the headless demo does."""
        self.demo_started = time.monotonic()
        self._set_busy("starting")
        try:
            gen = await asyncio.to_thread(start_generation, self.project, "demo")
        except GenerationError as exc:
            self.notify(str(exc), severity="error", timeout=15)
            self._set_busy(None)
            return
        self.generation = gen.name
        self._set_busy(None)
        ok = await self._run()
        tasks = await asyncio.to_thread(self.project.store.list_tasks, gen.name)
        if not ok or any(t.state in ATTENTION for t in tasks):
            self.demo_ended = time.monotonic()
            self.notify(
                "demo: some tasks need you (v: review, f: filter); the generation stays open",
                severity="warning",
            )
            return
        await self._stop()
        self.demo_ended = time.monotonic()
        self.notify(
            "demo finished: every task merged, generation merged into main",
            title="demo",
            timeout=30,
        )
        self.note = "demo finished"
        self._dirty = True

    def _selected(self) -> int | None:
        queue = getattr(self, "queue", None)  # bindings are checked before compose, too
        return queue.selected_task if queue is not None else None

    def action_open_task(self, tab: str = "log") -> None:
        task_id = self._selected()
        if task_id is not None:
            self.push_screen(TaskScreen(self.project, task_id, tab))

    def action_diff(self) -> None:
        self.action_open_task("diff")

    def action_log(self) -> None:
        self.action_open_task("log")

    def action_filter(self, state: str | None = "") -> None:
        queue = self.queue
        if state == "":
            queue.cycle_filter()
        else:
            queue.set_filter(TaskState(state) if state else None)
        queue.show(self.snapshot.tasks)

    def _running_tasks(self) -> list[int]:
        return [r.id for r in self.snapshot.tasks if r.state in ACTIVE]

    def action_next_agent(self) -> None:
        """Cycle the output pane through the running agents."""
        running = self._running_tasks()
        if not running:
            self.notify("no agent is running")
            return
        current = self.output.task_id
        following = (
            running[(running.index(current) + 1) % len(running)]
            if (current in running)
            else running[0]
        )
        self.show_output(following, move_cursor=True)
        self._agent_hint = f"agent {running.index(following) + 1} of {len(running)} · n: next"
        self._output_subtitle()

    def action_kill_run(self) -> None:
        running = [r for r in self.snapshot.tasks if r.state in ACTIVE]
        names = ", ".join(f"#{r.id} {r.title}" for r in running[:8]) or "none right now"
        other = self.other_run if self.mode == "attach" else None

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            if other is not None:
                self._kill_other(other)
                return
            for worker in self.workers:
                if worker.group == "engine" and worker.is_running:
                    worker.cancel()
            self.notify("stopping running agents: their work is kept on their branches")

        whose = f"the run of process {other}" if other is not None else "the run"
        self.push_screen(
            ConfirmScreen(
                f"Kill {whose} now?",
                f"Running agents are stopped at once ({names}); their work is kept on their "
                "branches and the tasks go back to ready.",
            ),
            answered,
        )

    def _kill_other(self, pid: int) -> None:
        # The other process takes SIGTERM as an interrupt: agents stopped, work kept.
        if RunLock(self.project).holder() != pid:
            self.notify("that run has ended already", title="kill")
            return
        os.kill(pid, signal.SIGTERM)
        self.notify(f"asked process {pid} to stop its agents", title="kill")

    def action_review_queue(self) -> None:
        """The review queue, or back to every task when it is shown already."""
        review = TaskState.NEEDS_REVIEW
        self.action_filter(None if self.queue.state_filter == review else review.value)

    def _selected_review(self) -> int | None:
        task_id = self._selected()
        row = next((r for r in self.snapshot.tasks if r.id == task_id), None)
        return task_id if row is not None and row.state == TaskState.NEEDS_REVIEW else None

    def action_approve(self) -> None:
        task_id = self._selected_review()
        if task_id is not None:
            self._review_worker(self._review(task_id, None), f"approve task {task_id}")

    def action_reject(self) -> None:
        task_id = self._selected_review()
        if task_id is None:
            return

        def noted(note: str | None) -> None:
            if note is not None:
                self._review_worker(self._review(task_id, note), f"reject task {task_id}")

        row = next(r for r in self.snapshot.tasks if r.id == task_id)
        self.push_screen(
            NoteScreen(
                f"Reject task #{task_id} {row.title}?",
                "Its work is set aside on an attempt branch and the task goes back to ready; "
                "the note reaches the agent's next prompt. What should change?",
            ),
            noted,
        )

    def _retry_target(self) -> TaskRow | None:
        """The task a retry would act on: the one under the cursor, or the one whose screen
        is shown, when it is failed, blocked or in conflict."""
        screen = next((s for s in reversed(self.screen_stack) if not s.is_modal), None)
        if isinstance(screen, TaskScreen):
            task_id: int | None = screen.task_id
        elif self._on_main_screen():
            task_id = self._selected()
        else:
            return None
        row = next((r for r in self.snapshot.tasks if r.id == task_id), None)
        return row if row is not None and row.state in RETRYABLE else None

    def action_retry(self) -> None:
        row = self._retry_target()
        if row is None:
            return
        task_id = row.id

        def noted(note: str | None) -> None:
            if note is not None:
                self._review_worker(self._retry(task_id, note), f"retry task {task_id}")

        self.push_screen(
            NoteScreen(
                f"Retry task #{task_id} {row.title}?",
                "It goes back to ready with a fresh allowance of retries; its last attempt's "
                "work is kept on an attempt branch. A note reaches the agent's next prompt.",
                optional=True,
            ),
            noted,
        )

    async def _retry(self, task_id: int, note: str) -> None:
        gen = self.snapshot.current
        if gen is None:
            return
        try:
            generation = await asyncio.to_thread(self.project.store.get_generation, gen.name)
            retried = await asyncio.to_thread(
                retry_tasks, self.project, [task_id], note, generation
            )
            # No run here or in another process: say what starts it.
            idle = await asyncio.to_thread(run_lock_holder, self.project.state_dir) is None
        except ENGINE_ERRORS as exc:
            self.notify(str(exc), title="retry", severity="error", timeout=15)
        else:
            then = ["r runs it"] if idle else []
            self.notify("\n".join([*(r.line() for r in retried), *then]), title="retry")
        finally:
            self._dirty = True

    def _review_worker(self, coro: Coroutine[Any, Any, object], description: str) -> None:
        # Not in the exclusive engine group: a review must not cancel a run that goes on.
        self.run_worker(coro, group="review", exit_on_error=False, description=description)

    async def _review(self, task_id: int, note: str | None) -> None:
        gen = self.snapshot.current
        if gen is None:
            return
        generation = self.project.store.get_generation(gen.name)
        try:
            outcome = (
                await review.approve(self.project, generation, task_id)
                if note is None
                else await review.reject(self.project, generation, task_id, note)
            )
        except ENGINE_ERRORS as exc:
            self.notify(str(exc), title="review", severity="error", timeout=15)
        else:
            self.notify(f"task #{task_id}: {outcome.state.value} ({outcome.reason})")
        finally:
            self._dirty = True

    def action_follow(self) -> None:
        self.follow = not self.follow
        self.notify(f"follow running agents: {'on' if self.follow else 'off'}")
        self._output_subtitle()

    def action_generations(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.switch_generation(name)

        project = self.project

        def schedules() -> list[ScheduleRow]:
            return schedule_rows(project.config, project.state_dir, self.clock())

        self.push_screen(GenerationsScreen(self.snapshot, schedules, self.clock), chosen)

    def action_plans(self) -> None:
        self.push_screen(PlansScreen(self.snapshot))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_rows()))

    def help_rows(self) -> list[tuple[str, str, str]]:
        """Every key of the screen shown now: (key, what it does, why it is disabled)."""
        rows: list[tuple[str, str, str]] = []
        screen = self.screen
        if not self._on_main_screen():
            for binding in screen.BINDINGS:
                assert isinstance(binding, Binding)
                rows.append((binding.key_display or binding.key, binding.description, ""))
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            action = binding.action
            enabled = self.check_action(action, ())
            if enabled is False and not self._on_main_screen():
                continue  # a main-screen key: not one of this screen's
            note = "" if enabled else self.disabled_reason(action)
            rows.append((binding.key_display or binding.key, binding.description, note))
        return rows

    def action_resume(self) -> None:
        if self.mode == "attach":
            self.take_over()
        # A run recovers first; what recovery did arrives as a Recovered event (a notification).
        self._engine_worker(self._run(), "resume the generation")

    def action_reset(self) -> None:
        gen = self.snapshot.current
        if gen is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._engine_worker(self._reset(), "reset the generation")

        self.push_screen(
            ConfirmScreen(
                f"Abandon generation {gen.name}?",
                f"Tags its last commit {gen.name}-abandoned, checks out {gen.base_branch}, and "
                f"removes {gen.branch}, its task branches and its worktrees. The work stays "
                "reachable only through the tag.",
            ),
            answered,
        )

    # -- attached to another process's run ----------------------------------------------------

    @work(group="run-lock", exclusive=True, exit_on_error=False, description="watch the run lock")
    async def _watch_other_run(self) -> None:
        if self.mode != "attach":
            return
        pid = await asyncio.to_thread(RunLock(self.project).holder)
        ended = self.other_run is not None and pid is None
        if pid != self.other_run:
            self.other_run = pid
            self._dirty = True
            self.refresh_bindings()
        if ended:
            self.offer_takeover()

    def offer_takeover(self) -> None:
        """The driving run ended: this dashboard may drive the next ones."""

        def answered(yes: bool | None) -> None:
            if yes and self.other_run is None:
                self.take_over()

        if not self._on_main_screen() or self.screen is not self.screen_stack[0]:
            self.notify(
                "the run of the other process ended: R resumes from here",
                title="run ended",
                timeout=20,
            )
            return
        self.push_screen(
            ConfirmScreen(
                "The run of the other process ended. Take over?",
                "This dashboard then drives the next runs itself (r, R, g, s…); "
                "until then it only follows the store.",
            ),
            answered,
        )

    def take_over(self) -> None:
        """Stop following the store and drive runs from this process."""
        if self.mode != "attach":
            return
        for worker in self.workers:
            if worker.group in ("follow", "run-lock"):
                worker.cancel()
        self.mode = "live"
        self.other_run = None
        self.bridge.attach_bus(self.project.bus)
        self.note = ""
        self._dirty = True
        self.refresh_bindings()
        self.notify("this dashboard drives the runs now", title="taken over")

    async def _reset(self) -> None:
        self._set_busy("resetting")
        try:
            report = await asyncio.to_thread(reset_generation, self.project, None)
        except GenerationError as exc:
            self.notify(str(exc), title="cannot reset", severity="error", timeout=15)
        else:
            self.notify(
                f"generation {report.generation.name} abandoned; tagged {report.tag}",
                title="reset",
            )
        finally:
            self._set_busy(None)

    async def action_quit(self) -> None:
        """Stop running agents (their work is kept on their branches), then leave."""
        running = [
            w for w in self.workers if w.group == "engine" and w.state == WorkerState.RUNNING
        ]
        if running:
            self.notify("stopping agents…")
            for worker in running:
                worker.cancel()
            for worker in running:
                with contextlib.suppress(Exception):
                    await worker.wait()
        self.exit()

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """Every binding's action, plus one filter command per state, for the palette."""
        commands: list[tuple[str, str, Callable[[], object]]] = []
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            action = binding.action
            if self.check_action(action, ()) is True and action not in ("quit", "help"):
                commands.append(
                    (binding.description, binding.tooltip, partial(self.run_action, action))
                )
        for state in FILTERS:
            label = state.value if state else "all"
            commands.append(
                (
                    f"Filter: {label}",
                    f"Show {label} tasks",
                    partial(self.action_filter, state.value if state else None),
                )
            )
        return commands

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Every key, click and palette command lands here: an action that raises is reported
        as a notification, and the app that drives the agents goes on."""
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except Exception as exc:
            name = action if isinstance(action, str) else action[1]
            self.report_error(f"{name} failed", exc)
            return True

    def report_error(self, title: str, exc: BaseException) -> None:
        """An unexpected error, shown and logged instead of ending the app."""
        report_error(self, title, exc)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        self.report_error(event.worker.description or event.worker.group, event.worker.error)
        if event.worker.group == "engine":
            self._set_busy(None)


def make_app(
    directory: Path,
    *,
    mode: Mode = "live",
    demo: bool = False,
    parallel: int | None = None,
    clock: Callable[[], float] = time.time,
) -> ShoemakerApp:
    """Build the dashboard for the repository containing ``directory`` (used by CLI and tests)."""
    project = Project.open(directory)
    holder = RunLock(project).holder() if mode == "live" and not demo else None
    app = ShoemakerApp(
        project, mode="attach" if holder else mode, demo=demo, parallel=parallel, clock=clock
    )
    return app
