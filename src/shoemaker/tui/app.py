"""The dashboard app: the engine's story on screen, and the keys that drive it.

The engine runs on the app's own event loop (its agents are asyncio subprocesses); blocking
store and git calls go through threads. Everything on screen comes from the engine's events,
through :mod:`shoemaker.tui.bridge`, and from read-only views (:mod:`shoemaker.engine.views`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any, Literal

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.widgets import DataTable, Footer, Header
from textual.worker import Worker, WorkerState

from shoemaker.engine import review
from shoemaker.engine.ending import reset_generation, stop_generation
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import GenerationError, start_generation, switch_generation
from shoemaker.engine.project import Project
from shoemaker.engine.views import Snapshot, load_snapshot, load_task_detail
from shoemaker.errors import ShoemakerError
from shoemaker.events import (
    AgentStarted,
    BudgetCrossed,
    GenerationStateChanged,
    Log,
    Recovered,
)
from shoemaker.model import GenerationState, TaskState
from shoemaker.resources import data_dir
from shoemaker.tui.bridge import EngineEvent, EventBridge, OutputBuffers
from shoemaker.tui.screens import (
    ConfirmScreen,
    GenerationsScreen,
    HelpScreen,
    NoteScreen,
    TaskScreen,
)
from shoemaker.tui.widgets import FILTERS, AgentOutput, GenerationsPanel, MetricsPanel, TaskQueue

Mode = Literal["live", "attach"]
#: Every error shoemaker explains: shown as a notification, the dashboard goes on.
ENGINE_ERRORS = (ShoemakerError,)
#: Actions that change something; read-only (attached) dashboards disable them.
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


class ShoemakerApp(App[None]):
    """Generations, the task queue, live agent output and metrics, driven from the keyboard."""

    TITLE = "shoemaker"
    COMMANDS = App.COMMANDS | {ShoemakerCommands}
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
            show=False,
            tooltip="Merge the task under the cursor, which waits for review",
        ),
        Binding(
            "x",
            "reject",
            "Reject",
            id="reject",
            show=False,
            tooltip="Send the task under the cursor back to its agent with a note",
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
        self.busy: str | None = None
        self.follow = True
        self.snapshots_loaded = 0
        self._cursor_wanted: int | None = None
        self.note = ""
        self.buffers = OutputBuffers()
        self.bridge = EventBridge(self, self.buffers)
        self._dirty = True
        self._loading = False

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

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept as attributes: handlers may run while another screen is on top.
        self.generations_panel = GenerationsPanel(id="generations")
        self.metrics = MetricsPanel(clock=self.clock, id="metrics")
        self.queue = TaskQueue(id="queue")
        self.output = AgentOutput(id="output")
        yield Header(show_clock=False)
        with Horizontal(id="top"):
            yield self.generations_panel
            yield self.metrics
        yield self.queue
        yield self.output
        yield Footer()

    def on_mount(self) -> None:
        self.metrics.parallel = self.parallel or self.project.config.max_parallel
        self.output.border_title = "Agent output"
        self.queue.focus()
        if self.mode == "attach":
            self.run_worker(
                self.bridge.follow_store(self.project.store),
                group="follow",
                exit_on_error=False,
                description="follow the store",
            )
        else:
            self.bridge.attach_bus(self.project.bus)
        self.set_interval(1 / 30, self.flush_output, name="flush output")
        self.set_interval(0.2, self._refresh_if_dirty, name="refresh snapshot")
        self.set_interval(1.0, self._tick, name="tick")
        self.refresh_snapshot()
        if self.demo:
            self.run_worker(
                self._demo(),
                group="engine",
                exclusive=True,
                exit_on_error=False,
                description="demo generation",
            )

    # -- data ---------------------------------------------------------------------------------

    @work(group="snapshot", exit_on_error=False, description="load snapshot")
    async def refresh_snapshot(self) -> None:
        self._loading, self._dirty = True, False
        try:
            snap = await asyncio.to_thread(
                load_snapshot, self.project.store, self.generation, self.project.config
            )
        finally:
            self._loading = False
        self.apply_snapshot(snap)

    def apply_snapshot(self, snap: Snapshot) -> None:
        if not self.queue.is_attached:
            return  # the app is tearing its screens down
        self.snapshot = snap
        self.snapshots_loaded += 1
        if snap.current is not None:
            self.generation = snap.current.name
        self.generations_panel.show(snap.generations, self.generation)
        self.queue.show(snap.tasks)
        if self._cursor_wanted is not None and self._move_cursor_to(self._cursor_wanted):
            self._cursor_wanted = None
        self.metrics.show(snap)
        state = snap.current.state if snap.current else "no generation"
        status = f" · {self.busy}…" if self.busy else ""
        attach = " · attached, read-only" if self.mode == "attach" else ""
        note = f" · {self.note}" if self.note else ""
        self.sub_title = (
            f"{self.project.root.name} · {self.generation or '—'} {state}{status}{attach}{note}"
        )
        self.refresh_bindings()
        if isinstance(self.screen, GenerationsScreen):
            self.screen.show()

    def _refresh_if_dirty(self) -> None:
        if self._dirty and not self._loading:
            self.refresh_snapshot()

    def _tick(self) -> None:
        # Elapsed time and burn rate move even when no event arrives.
        self.metrics.show(self.snapshot)

    @on(EngineEvent)
    def engine_event(self, message: EngineEvent) -> None:
        self._dirty = True
        event = message.event
        if isinstance(event, AgentStarted) and self.follow:
            self.show_output(event.task_id, move_cursor=True)
        elif isinstance(event, Log) and event.level in ("warning", "error"):
            self.notify(event.message, severity="error" if event.level == "error" else "warning")
        elif isinstance(event, BudgetCrossed):
            self.notify(event.message, title="budget reached", severity="error", timeout=20)
        elif isinstance(event, Recovered):
            self.notify(event.summary, title="recovered after a crash", severity="warning")
        elif isinstance(event, GenerationStateChanged) and event.generation:
            self.generation = event.generation

    # -- agent output -------------------------------------------------------------------------

    def flush_output(self) -> None:
        out = self.output
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
        if out.task_id == task_id and not self.buffers.lines.get(task_id):
            out.replace(task_id, list(detail.log), self._output_title(task_id))

    @on(DataTable.RowHighlighted, "#queue")
    def task_highlighted(self, event: DataTable.RowHighlighted) -> None:
        task_id = self.queue.selected_task
        if task_id is not None and task_id != self.output.task_id:
            self.show_output(task_id)

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
        if self.mode == "attach" and action in ENGINE_ACTIONS:
            return "read-only: another process drives this run"
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
            "open_task": "no task selected",
            "diff": "no task selected",
            "log": "no task selected",
        }
        return reasons.get(action, "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ENGINE_ACTIONS:
            if self.mode == "attach":
                return None
            if action == "pause":
                return True if self.busy == "running" and not self._paused() else None
            if action == "kill_run":
                return True if self.busy == "running" else None
            if action in ("approve", "reject"):
                # Reviews go through the merge queue, so they may happen while a run goes on.
                return None if self._selected_review() is None else True
            if self.busy:
                return None
            if action == "start":
                return None if self._open_generation() else True
            return True if self._open_generation() else None
        if action in ("open_task", "diff", "log"):
            return True if self._selected() is not None else None
        return True

    def _paused(self) -> bool:
        return self.engine is not None and self.engine.paused

    # -- actions ------------------------------------------------------------------------------

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
        self._set_busy("running")
        try:
            report = await self.engine.run()
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
        if self.engine is not None:
            self.engine.pause()
            self.notify("pausing: running tasks finish, no new task starts")
            self.refresh_bindings()

    def action_stop(self) -> None:
        gen = self.generation

        def answered(yes: bool | None) -> None:
            if yes:
                self._engine_worker(self._stop(), "stop the generation")

        self.push_screen(
            ConfirmScreen(f"Stop generation {gen}: merge it into its base branch and tag it?"),
            answered,
        )

    async def _stop(self) -> None:
        self._set_busy("stopping")
        try:
            report = await asyncio.to_thread(stop_generation, self.project, None)
        except GenerationError as exc:
            self.notify(str(exc), title="cannot stop", severity="error", timeout=15)
        else:
            gen = report.generation
            self.notify(f"generation {gen.name} merged into {gen.base_branch}", title="stopped")
        finally:
            self._set_busy(None)

    def action_measure(self) -> None:
        self._engine_worker(self._measure(), "measure once")

    async def _measure(self) -> None:
        self._set_busy("measuring")
        try:
            tasks = await Engine(self.project).measure_once()
        except ENGINE_ERRORS as exc:
            self.notify(str(exc), title="measure failed", severity="error", timeout=15)
        else:
            self.notify(f"measure added {len(tasks)} task(s)")
        finally:
            self._set_busy(None)

    async def _demo(self) -> None:
        """The demo generation: start, run, stop, as the headless demo does."""
        self._set_busy("starting")
        try:
            gen = await asyncio.to_thread(start_generation, self.project, "demo")
        except GenerationError as exc:
            self.notify(str(exc), severity="error", timeout=15)
            self._set_busy(None)
            return
        self.generation = gen.name
        self._set_busy(None)
        if not await self._run():
            self.notify("demo: some tasks failed; the generation stays open", severity="warning")
            return
        await self._stop()
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
            self.push_screen(TaskScreen(task_id, tab))

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
        active = (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING)
        return [r.id for r in self.snapshot.tasks if r.state in active]

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
        self.output.border_subtitle = (
            f"agent {running.index(following) + 1} of {len(running)} · n: next"
        )

    def action_kill_run(self) -> None:
        for worker in self.workers:
            if worker.group == "engine" and worker.is_running:
                worker.cancel()
        self.notify("stopping running agents: their work is kept on their branches")

    def action_review_queue(self) -> None:
        self.action_filter(TaskState.NEEDS_REVIEW.value)

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

        self.push_screen(NoteScreen(f"Reject task #{task_id}: what should change?"), noted)

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

    def action_generations(self) -> None:
        self.push_screen(GenerationsScreen())

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_resume(self) -> None:
        # A run recovers first; what recovery did arrives as a Recovered event (a notification).
        self._engine_worker(self._run(), "resume the generation")

    def action_reset(self) -> None:
        gen = self.generation

        def answered(yes: bool | None) -> None:
            if yes:
                self._engine_worker(self._reset(), "reset the generation")

        self.push_screen(
            ConfirmScreen(
                f"Abandon generation {gen}: tag it {gen}-abandoned, check out its base and "
                "remove its branches and worktrees?"
            ),
            answered,
        )

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

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "engine" and event.state == WorkerState.ERROR:
            self.notify(str(event.worker.error), title="error", severity="error", timeout=20)
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
    return ShoemakerApp(project, mode=mode, demo=demo, parallel=parallel, clock=clock)
