"""The dashboard's layout at 80×24 and from 160 columns on, and metrics that do not mislead."""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from textual import messages
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from projects import make_project, task
from shoemaker.engine.generation import start_generation
from shoemaker.engine.task_detail import load_diff
from shoemaker.engine.views import TaskRow, active_time, load_snapshot, will_start
from shoemaker.model import TaskState, Usage
from shoemaker.tui.app import ShoemakerApp
from shoemaker.tui.footer import FooterKeys, PinnedFooter
from shoemaker.tui.metrics import MetricsPanel, sparkline
from shoemaker.tui.screens import HelpScreen
from shoemaker.tui.task_screen import TaskScreen
from test_tui import cursor_to, fixed_app, loaded, stop_engine, until
from tui_data import CLOCK, CREATED, agent_at_work, assistant_line, count_layouts, fixed_project

NARROW = (80, 24)
WIDE = (160, 48)
PINNED = ("Help", "Quit")  # the footer's keys at its right end


def painted(app: App[Any]) -> list[str]:
    """The lines on the terminal, as painted."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def layouts_asked(monkeypatch: pytest.MonkeyPatch) -> list[Widget]:
    """Every widget that asks its screen for a layout from now on."""
    asked: list[Widget] = []
    on_layout = Screen._on_layout

    async def counted(screen: Screen[Any], message: messages.Layout) -> None:
        asked.append(message.widget)
        await on_layout(screen, message)

    monkeypatch.setattr(Screen, "_on_layout", counted)
    return asked


def drawn(app: App[Any]) -> list[tuple[str, str, bool]]:
    """The footer's keys left of help and quit as drawn: key, description, enabled."""
    lines = app.screen.query_one(PinnedFooter).query(FooterKeys)  # none before it is composed
    return [(key.display, key.description, key.enabled) for line in lines for key in line.drawn]


def keys(app: App[Any]) -> list[tuple[str, str, bool]]:
    """Every key the footer holds left of help and quit, drawn or not (cut at the width)."""
    lines = app.screen.query_one(PinnedFooter).query(FooterKeys)
    return [(key.display, key.description, key.enabled) for line in lines for key in line.keys]


def sql(app: ShoemakerApp, statement: str, *params: Any) -> None:
    db = sqlite3.connect(app.project.store.path)
    with db:
        db.execute(statement, params)
    db.close()


async def reloaded(pilot: Pilot[None]) -> None:
    """Wait for a snapshot loaded after now."""
    app = pilot.app
    assert isinstance(app, ShoemakerApp)
    seen = app.snapshots_loaded
    app.refresh_snapshot()
    await until(pilot, lambda: app.snapshots_loaded > seen)
    await pilot.pause()


def rows(app: ShoemakerApp) -> dict[str, str]:
    metrics = app.query_one(MetricsPanel)
    return {name: str(row.render()) for name, row in metrics.rows.items()}


# -- 80×24 ------------------------------------------------------------------------------------


async def test_at_80x24_the_footer_shows_help_and_quit_on_every_screen(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        # The pinned keys may be drawn a frame before the others fill the room left of them,
        # and a rebuilt footer a frame before the keys that do not fit are hidden.
        await until(
            pilot,
            lambda: (
                "q Quit" in painted(app)[-1]
                and "Start" in painted(app)[-1]
                and " d D" not in painted(app)[-1]
            ),
        )
        footer = painted(app)[-1]
        assert "? Help" in footer and "q Quit" in footer
        assert footer.index("? Help") < footer.index("q Quit")
        # The other keys fill the room left of them, as many as fit whole.
        assert footer.startswith(" g Start  r Run ") and " d D" not in footer
        await pilot.press("enter")  # the task screen's keys, too
        assert isinstance(app.screen, TaskScreen)
        await until(pilot, lambda: "esc Back" in painted(app)[-1])
        footer = painted(app)[-1]
        assert "? Help" in footer and "q Quit" in footer


async def test_approve_and_reject_come_and_go_with_the_task_without_a_layout(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        footer = app.screen.query_one(PinnedFooter)
        cursor_to(app, 1)
        await until(pilot, lambda: ("d", "Diff", True) in keys(app))
        await pilot.pause()
        assert not any(description in ("Approve", "Reject") for _, description, _ in keys(app))
        before = app.project.store.get_task(1).state
        asked = layouts_asked(monkeypatch)
        # The task under the cursor comes to wait for review, and then no longer does.
        sql(app, "UPDATE tasks SET state = ? WHERE id = 1", TaskState.NEEDS_REVIEW.value)
        await reloaded(pilot)
        await until(pilot, lambda: ("a", "Approve", True) in keys(app))
        await pilot.pause()
        assert ("x", "Reject", True) in keys(app)
        # What the footer holds is what the screen's bindings say, in their order; as many
        # as fit whole are drawn.
        active = app.screen.active_bindings.values()
        shown = [b.description for _, b, _, _ in active if b.show]
        assert [d for _, d, _ in keys(app)] == [d for d in shown if d not in PINNED]
        assert drawn(app) == keys(app)[: len(drawn(app))]
        assert painted(app)[-1].startswith(
            "".join(f" {key} {description} " for key, description, _ in drawn(app))
        )
        sql(app, "UPDATE tasks SET state = ? WHERE id = 1", before.value)
        await reloaded(pilot)
        await until(pilot, lambda: ("a", "Approve", True) not in keys(app))
        await pilot.pause()
        assert not any(description in ("Approve", "Reject") for _, description, _ in keys(app))
        # Two keys appeared and went: the footer's line was repainted and asked for no layout
        # (the header's count of tasks waiting for review did, twice).
        assert [w for w in asked if footer in w.ancestors_with_self] == []
        assert [type(w).__name__ for w in asked] == ["HeaderTitle", "HeaderTitle"]
        assert footer is app.screen.query_one(PinnedFooter)


async def test_a_screen_shown_has_its_keys_from_the_start_and_never_rebuilds_them(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rebuilt: list[PinnedFooter] = []
    recompose = PinnedFooter.recompose

    async def counted(footer: PinnedFooter) -> None:
        rebuilt.append(footer)
        await recompose(footer)

    monkeypatch.setattr(PinnedFooter, "recompose", counted)
    app = fixed_app(fast_tmp)
    async with app.run_test(size=WIDE) as pilot:
        await loaded(pilot)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, TaskScreen)
        # Built with the screen: an empty footer rebuilt a moment later lays it out again.
        line = screen.query_one(PinnedFooter).query_one(FooterKeys)
        assert [key.description for key in line.keys][:3] == ["Back", "Log", "Diff"]
        await until(pilot, lambda: screen.loads >= 1)
        await pilot.pause()
        assert screen.query_one(PinnedFooter).query_one(FooterKeys) is line
        assert "esc Back" in painted(app)[-1] and "q Quit" in painted(app)[-1]
        # Neither the main screen's footer nor the task screen's was ever rebuilt.
        assert rebuilt == []


class Editor(Static, can_focus=True):
    """A widget with a key of its own while it has the focus."""

    BINDINGS = [Binding("ctrl+s", "save", "Save")]


class Keys(App[None]):
    """A screen whose keys change with the focus and with a state, under a pinned footer."""

    BINDINGS = [
        Binding("e", "edit", "Edit", tooltip="Edit the text"),
        Binding("u", "undo", "Undo"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]
    can_undo: bool | None = None
    edits = undos = 0

    def action_edit(self) -> None:
        self.edits += 1

    def action_undo(self) -> None:
        self.undos += 1

    def compose(self) -> ComposeResult:
        yield Static("text", id="text")
        yield Editor("editor")
        yield PinnedFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.can_undo if action == "undo" else True


async def test_the_footer_shows_the_focused_widgets_keys_and_a_states_without_a_layout() -> None:
    app = Keys()
    async with app.run_test(size=(80, 5)) as pilot:
        app.set_focus(None)
        await until(pilot, lambda: bool(drawn(app)))
        await pilot.pause()
        assert drawn(app) == [("e", "Edit", True), ("u", "Undo", False)]  # None: dimmed
        layouts = count_layouts(app.screen)
        app.query_one(Editor).focus()
        await until(pilot, lambda: ("^s", "Save", True) in drawn(app))
        await pilot.pause()
        assert "^s Save" in painted(app)[-1]
        app.can_undo = False  # hidden
        app.refresh_bindings()
        await until(pilot, lambda: ("u", "Undo", False) not in drawn(app))
        await pilot.pause()
        assert " Undo" not in painted(app)[-1]
        app.can_undo = True
        app.refresh_bindings()
        await until(pilot, lambda: ("u", "Undo", True) in drawn(app))
        app.set_focus(None)
        await until(pilot, lambda: ("^s", "Save", True) not in drawn(app))
        await pilot.pause()
        assert painted(app)[-1].startswith(" e Edit  u Undo ")
        assert "? Help" in painted(app)[-1] and "q Quit" in painted(app)[-1]
        # Focus moved and keys came and went: none of it laid the screen out.
        assert layouts == []
        # The mouse over a key shows its tooltip; a click presses it; a dimmed key does nothing.
        await pilot.hover(FooterKeys, offset=(2, 0))
        assert app.screen.query_one(FooterKeys).tooltip == "Edit the text"
        await pilot.click(FooterKeys, offset=(2, 0))
        app.can_undo = None
        app.refresh_bindings()
        await until(pilot, lambda: ("u", "Undo", False) in drawn(app))
        await pilot.click(FooterKeys, offset=(len(" e Edit  u"), 0))
        await pilot.pause()
        assert (app.edits, app.undos) == (1, 0)


async def test_at_80x24_the_queue_shows_8_rows_with_their_state(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        shown = app.queue.rows_shown

        def visible() -> list[TaskRow]:
            lines = painted(app)
            return [
                r
                for r in shown
                if any(f"#{r.id} " in ln and r.state.value.replace("_", " ") in ln for ln in lines)
            ]

        # Read the screen once the rows are drawn (a frame may come after the data).
        await until(pilot, lambda: len(visible()) >= 8)
        visible_rows = visible()
        assert len(visible_rows) >= 8
        assert [r.id for r in visible_rows] == [r.id for r in shown[: len(visible_rows)]]


async def test_at_80x24_the_generations_panel_is_readable(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        panel = app.generations_panel

        def read_cells() -> list[str]:
            region = panel.content_region
            lines = painted(app)[region.y : region.bottom]
            return [line[region.x : region.right] for line in lines]

        expected = ["g1", "running", "2/12", "$0.28", "0"]
        # The columns settle a frame after the rows (their widths follow the values).
        await until(pilot, lambda: len(read_cells()) > 1 and read_cells()[1].split() == expected)
        cells = read_cells()
        assert cells[0].split() == ["name", "state", "tasks", "cost", "cyc"]
        assert cells[1].split() == expected


async def test_at_80x24_the_help_overlay_shows_every_key(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        screen = app.screen
        assert isinstance(screen, HelpScreen)

        def listed(key: str, action: str) -> bool:
            return any(f" {key} " in line and f" {action} " in line for line in painted(app))

        await until(pilot, lambda: all(listed(key, action) for key, action, _ in screen.rows))
        lines = painted(app)
        assert len(screen.rows) >= 20
        for key, action, _why in screen.rows:
            assert any(f" {key} " in line and f" {action} " in line for line in lines), key


async def test_the_generations_panel_scrolls_to_the_current_generation(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    store = app.project.store
    base = app.project.git.rev_parse("main")
    for n in range(1, 13):
        store.create_generation(f"old-{n:02}", f"generation-old-{n:02}", "main", base)
    sql(app, "UPDATE generations SET state = 'stopped' WHERE name LIKE 'old-%'")
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        panel = app.generations_panel
        for name in ("old-12", "g1", "old-06"):
            app.switch_generation(name)
            await until(pilot, lambda name=name: app.generation == name)  # type: ignore[misc]
            await reloaded(pilot)
            region = panel.content_region
            shown = [
                line[region.x : region.right] for line in painted(app)[region.y : region.bottom]
            ]
            assert any(line.split()[:1] == [name] for line in shown), (name, shown)
        assert panel.max_scroll_y > 0  # 13 generations do not fit: the panel scrolls


# -- from 160 columns on: the diff side panel -------------------------------------------------


async def test_the_diff_side_panel_shows_from_160_columns_and_follows_the_cursor(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[bool] = []

    def loading(*args: Any) -> Any:
        threads.append(threading.current_thread() is threading.main_thread())
        return load_diff(*args)

    monkeypatch.setattr("shoemaker.tui.side_panel.load_diff", loading)
    app = fixed_app(fast_tmp)
    async with app.run_test(size=(159, 48)) as pilot:
        await loaded(pilot)
        side = app.side
        assert not side.display and not threads  # hidden, and idle
        await pilot.resize_terminal(*WIDE)
        await until(pilot, lambda: side.display and side.diff is not None)
        assert side.region.width >= 60 and side.region.right == WIDE[0]
        assert side.task_id == app.queue.selected_task
        ids = [r.id for r in app.queue.rows_shown]
        app.queue.move_cursor(row=ids.index(1))
        await until(pilot, lambda: side.task_id == 1 and side.diff is not None)
        assert side.diff is not None and side.diff.source == "merged"
        assert "path = 'configuration.yaml'" in side.diff.text
        assert side.border_subtitle == "as merged"
        assert any("config.py" in line for line in painted(app))
        await pilot.press("down")
        assert side.task_id == ids[ids.index(1) + 1]
        assert threads and not any(threads)  # git ran in threads, never on the event loop


async def test_the_diff_side_panel_lists_7_files_and_counts_the_rest(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    git = app.project.git
    for n in range(9):
        (git.root / f"part_{n}.py").write_text(f"n = {n}\n")
    merged = git.commit_all(git.root, "Add the task store (task #2)")
    sql(app, "UPDATE tasks SET merged_commit = ? WHERE id = 2", merged)
    async with app.run_test(size=WIDE) as pilot:
        await loaded(pilot)
        side = app.side
        app.queue.move_cursor(row=[r.id for r in app.queue.rows_shown].index(2))
        await until(pilot, lambda: side.task_id == 2 and side.diff is not None)
        await pilot.pause()
        listed = str(side.query_one("#side-files", Static).render()).splitlines()
        assert listed == [f"+1 −0 part_{n}.py" for n in range(7)] + ["… and 2 more files"]
        assert side.diff is not None and "part_8.py" in side.diff.text  # the diff has them all


async def test_the_diff_side_panel_lays_nothing_out_while_hidden_or_unchanged(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        side = app.side
        ids = [r.id for r in app.queue.rows_shown]
        asked = layouts_asked(monkeypatch)
        for task_id in (1, 2, 1):
            app.queue.move_cursor(row=ids.index(task_id))
            await until(pilot, lambda: side.task_id == task_id)  # noqa: B023
            await pilot.pause()
        assert not [w for w in asked if side in w.ancestors_with_self]  # hidden: nothing
        await pilot.resize_terminal(*WIDE)
        await until(pilot, lambda: side.display and side.diff is not None)
        await pilot.pause()
        assert side.task_id == 1 and any("config.py" in line for line in painted(app))
        # The same diff loaded again (a running task's reloads every second): no layout.
        layouts = count_layouts(app.screen)
        loads = side.loads
        side.load()
        await until(pilot, lambda: side.loads > loads)
        await pilot.pause()
        assert layouts == []
        # Another task's diff is drawn (the check can fail).
        app.queue.move_cursor(row=ids.index(2))
        await until(pilot, lambda: side.task_id == 2 and side.diff is not None)
        await pilot.pause()
        assert layouts


async def test_the_diff_side_panel_is_live_while_the_agent_works(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [
            task(
                "Busy",
                files={"busy.py": "b = 1\n"},
                run=[f"{sys.executable} -c 'import time; time.sleep(120)'"],
            )
        ],
        max_parallel=1,
    )
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=WIDE) as pilot:
        await loaded(pilot)
        await pilot.press("r")
        side = app.side
        await until(pilot, lambda: side.diff is not None and "busy.py" in side.diff.text)
        assert side.diff is not None and side.diff.source == "worktree"
        assert side.border_subtitle == "live from the worktree"
        worktree = Path(project.store.get_task(1).worktree)
        (worktree / "later.py").write_text("later = 2\n")  # the agent goes on working
        await until(pilot, lambda: side.diff is not None and "later = 2" in side.diff.text)
        # What its agent spent so far, from the stream's per-message usage, in its row.
        await until(pilot, lambda: app.snapshot.tasks[0].so_far is not None)
        row = app.snapshot.tasks[0]
        assert row.state == TaskState.RUNNING and row.so_far is not None
        assert row.so_far.usage.input_tokens > 0
        tokens_cell, cost_cell = (app.queue.get_row_at(0)[i] for i in (5, 6))
        assert str(tokens_cell).endswith("…") and str(cost_cell).startswith("~$")
        await stop_engine(pilot)


# -- metrics ------------------------------------------------------------------------------------


async def test_the_eta_uses_measured_task_time_and_is_gone_when_nothing_will_run(
    fast_tmp: Path,
) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        # Task #1's agent took 48s, but with its gates and the merge queue it took 300s.
        sql(app, "UPDATE metrics SET duration_s = 300 WHERE task_id = 1")
        await reloaded(pilot)
        # Running tasks ran longer than the mean already; #10 (ready) and #12 (proposed) are
        # left, two at a time: (300 + 95) / 2.
        assert "ETA 3m17s" in rows(app)["time"]
        sql(
            app,
            "UPDATE tasks SET state = 'cancelled' "
            "WHERE state IN ('ready', 'proposed', 'running', 'verifying', 'merging')",
        )
        await reloaded(pilot)
        assert "ETA" not in rows(app)["time"]
        assert "time 12m34s" in rows(app)["time"]


def test_tasks_that_will_start_leave_out_those_after_a_dead_end(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    store = app.project.store
    assert [r.id for r in will_start(load_snapshot(store).tasks)] == [10, 12]
    sql(app, "UPDATE tasks SET state = 'failed' WHERE id = 3")  # #12 needs #3
    assert [r.id for r in will_start(load_snapshot(store).tasks)] == [10]


def test_sparklines_scale_from_zero_and_are_blank_at_zero() -> None:
    assert sparkline([], 4) == "    "
    assert sparkline([0.0, 0.0], 4) == "    "
    assert sparkline([0.0, 1.0, 0.5], 3) == " █▄"
    assert sparkline([4.0, 5.0], 2) == "▇█"  # not ▁█: 4 is most of 5
    assert sparkline([1.0, 2.0, 3.0], 2) == "▆█"  # the newest that fit


async def test_sparklines_are_empty_before_any_task_is_done(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A")])
    start_generation(project, "g")
    app = ShoemakerApp(project)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await pilot.pause()
        sparks = rows(app)["sparks"]
        assert "$/task" in sparks and not set(sparks) & set("▁▂▃▄▅▆▇█")
        assert "ETA" not in rows(app)["time"]  # no task yet: nothing will run


async def test_cache_tokens_are_labelled_read_and_created(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    sql(
        app,
        "UPDATE runs SET cache_read_input_tokens = 1200000, cache_creation_input_tokens = 40000 "
        "WHERE task_id = 1",
    )
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await pilot.pause()
        assert rows(app)["tokens"] == "in 36k · out 4.4k · cache read 1.2M · created 40k"


async def test_failed_blocked_and_in_conflict_are_counted_apart(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await pilot.pause()
        assert rows(app)["tasks"] == "2/12 done, 1 failed, 1 blocked, 1 conflict"


def test_active_time_is_the_union_of_the_runs() -> None:
    assert active_time([(0, 10), (5, 20), (30, None)], now=40) == 30
    assert active_time([(0, 100), (10, 20)], now=200) == 100
    assert active_time([], now=5) == 0


async def test_the_burn_rate_is_over_the_time_agents_worked(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await pilot.pause()
        # $0.2817 over the two minutes the runs took (they overlap), not over 12m34s.
        assert rows(app)["cost"].startswith("cost $0.28 · $8.45/h")
        assert "active 2m00s" in rows(app)["time"]
        sql(app, "UPDATE runs SET started_at = ?, ended_at = ? WHERE task_id = 6", CREATED, CLOCK)
        await reloaded(pilot)
        assert "$1.34/h" in rows(app)["cost"] and "active 12m34s" in rows(app)["time"]


async def test_running_tasks_show_tokens_and_cost_so_far(fast_tmp: Path) -> None:
    app = fixed_app(fast_tmp)
    # One message reported twice (its usage grows; the latest counts), then a second one.
    transcript = agent_at_work(
        app.project,
        3,
        [
            assistant_line("m1", "Looking.", 100, 10),
            assistant_line("m1", "Looking.", 100, 50),
            assistant_line("m2", "Editing.", 300, 40),
        ],
    )
    _, price = app.project.config.price("claude-sonnet-4-5")
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await pilot.pause()
        row = [r.id for r in app.queue.rows_shown].index(3)
        # 2100 + 120 tokens of the first attempt, 400 + 90 so far.
        cost = 0.0101 + price.cost(Usage(400, 90))
        cells = [str(c) for c in app.queue.get_row_at(row)]
        assert cells[5:7] == ["2.7k…", f"~${cost:.3f}…"]
        assert app.queue.border_subtitle == "…: so far · 12"
        assert rows(app)["extra"] == f"running 490 tok ~${price.cost(Usage(400, 90)):.3f} so far"
        with transcript.open("ab") as handle:
            handle.write(assistant_line("m2", "Editing.", 300, 200))
            handle.write(b'{"type": "assistant", "message": {"id": "m3", "usa')  # half a line
        await until(pilot, lambda: str(app.queue.get_row_at(row)[5]) == "2.9k…")
        assert rows(app)["extra"].startswith("running 650 tok")


async def test_budget_lines_never_push_other_rows_out(fast_tmp: Path) -> None:
    budgets = {
        "generation": {"usd": 0.1, "tokens": 100_000},
        "day": {"usd": 5.0, "tokens": 1_000_000},
    }
    app = ShoemakerApp(fixed_project(fast_tmp, budgets=budgets), clock=lambda: CLOCK)
    agent_at_work(app.project, 3, [assistant_line("m1", "Looking.", 100, 10)])
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await until(pilot, lambda: "running" in rows(app)["extra"])
        metrics = app.query_one(MetricsPanel)
        inside = metrics.content_region
        for name, row in metrics.rows.items():
            assert row.region.height == 1 and inside.contains_region(row.region), name
        assert metrics.rows["sparks"].region.y == inside.bottom - 1
        assert "▇█" in rows(app)["sparks"]
        # The crossed budget comes first, where the narrow panel does not cut it.
        extra = rows(app)["extra"]
        assert extra.startswith("budget gen $0.28/$0.10 · gen 40k/100k tok · day")
        assert extra.endswith("running 110 tok ~$0.001 so far")
        on_screen = painted(app)[metrics.rows["extra"].region.y]
        assert "budget gen $0.28/$0.10" in on_screen and on_screen.rstrip(" │").endswith("…")
        assert app.queue.content_region.height >= 9  # the queue kept its 8 rows
