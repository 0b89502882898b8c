"""The dashboard's finish: a kept theme that the diff follows, the splash before Textual, what
`g` says without a commit, and the demo's summary after quitting."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from textual.widgets import Log, Static

from shoemaker.cli.demo import demo_summary, summary_after_dashboard
from shoemaker.cli.splash import ENTER, LEAVE, splash
from shoemaker.demo import prepare_demo
from shoemaker.engine.project import Project
from shoemaker.engine.task_detail import LogCache, load_task_detail
from shoemaker.git import Git
from shoemaker.model import TaskState
from shoemaker.tui.app import ShoemakerApp, make_app
from shoemaker.tui.diff_text import render_diff
from shoemaker.tui.task_screen import LOG_LINES, TaskScreen
from shoemaker.tui.theme import DiffColours, ThemeFile, diff_colours, theme_path
from shoemaker.tui.widgets import TaskQueue
from test_tui import until
from tui_data import CLOCK, fixed_project

SIZE = (120, 36)


def fixed_app(project: Project) -> ShoemakerApp:
    return ShoemakerApp(project, clock=lambda: CLOCK, follow_idle_s=3600)


def notes(app: ShoemakerApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


# -- theme ------------------------------------------------------------------------------------


async def test_the_theme_chosen_is_kept_for_the_next_session(fast_tmp: Path) -> None:
    project = fixed_project(fast_tmp)
    path = theme_path()
    assert path == Path(os.environ["XDG_CONFIG_HOME"]) / "shoemaker" / "theme"
    app = fixed_app(project)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.snapshots_loaded > 0)
        assert app.theme == "textual-dark"
        assert not path.exists()  # nothing chosen, nothing written
        app.theme = "nord"  # what ctrl+p → Change theme does
        await pilot.pause()
        assert path.read_text() == "nord\n"
    again = fixed_app(project)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert again.theme == "nord"
        assert notes(again) == []


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"no-such-theme\n", "no theme named 'no-such-theme'; pick one with ctrl+p"),
        (b"\xff\xfe\x00", "does not hold a theme name"),
        (b"nord" * 100, "does not hold a theme name"),
    ],
)
async def test_a_theme_file_that_cannot_be_used_is_said_and_left_alone(
    fast_tmp: Path, content: bytes, said: str
) -> None:
    path = theme_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    app = fixed_app(fixed_project(fast_tmp))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "textual-dark"
        [note] = notes(app)
        assert note.startswith(f"theme: {path}") and said in note
    assert path.read_bytes() == content


async def test_a_theme_that_cannot_be_kept_is_said_and_the_app_goes_on(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = fast_tmp / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))
    app = fixed_app(fixed_project(fast_tmp / "p"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.theme = "nord"
        await pilot.pause()
        assert app.theme == "nord"
        assert any("the theme cannot be kept" in n for n in notes(app))
    assert blocker.read_text() == ""


def test_a_theme_file_is_written_whole(fast_tmp: Path) -> None:
    kept = ThemeFile(fast_tmp / "cfg" / "theme")
    assert kept.save("gruvbox") == ""
    assert kept.load({"gruvbox"}) == ("gruvbox", "")
    assert [p.name for p in (fast_tmp / "cfg").iterdir()] == ["theme"]  # no temp file left


def _style_of(body: Text, needle: str) -> str:
    start = body.plain.index(needle)
    styles = [str(s.style) for s in body.spans if s.start <= start < s.end]
    assert styles, f"{needle!r} has no style"
    return styles[-1]


def test_diff_lines_are_styled_by_what_they_are() -> None:
    colours = DiffColours(added="A", removed="R", hunk="H", header="F")
    text = (
        "diff --git a/x.py b/x.py\n"
        "--- a/x.py\n"
        "+++ b/x.py\n"
        "@@ -1,2 +1,2 @@\n"
        " kept\n"
        "--- a removed line that looks like a header\n"
        "+added\n"
    )
    body, starts = render_diff(text, colours)
    assert starts == {"x.py": 0}
    assert _style_of(body, "diff --git") == "F" and _style_of(body, "+++ b/x.py") == "F"
    assert _style_of(body, "@@ -1,2") == "H"
    assert _style_of(body, "--- a removed") == "R"
    assert _style_of(body, "+added") == "A"


async def test_the_diff_follows_the_theme(fast_tmp: Path) -> None:
    app = fixed_app(fixed_project(fast_tmp))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.snapshots_loaded > 0)
        queue = app.query_one(TaskQueue)
        queue.move_cursor(row=[r.id for r in queue.rows_shown].index(1))
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, TaskScreen)
        diff_text = screen.query_one("#diff-text", Static)

        def added_style() -> str:
            body = diff_text.content
            added = "+    path = 'configuration.yaml'"
            return _style_of(body, added) if isinstance(body, Text) and added in body else ""

        dark = diff_colours(app.current_theme).added
        await until(pilot, lambda: added_style() == dark)
        app.theme = "solarized-light"
        light = diff_colours(app.get_theme("solarized-light")).added  # type: ignore[arg-type]
        assert light != dark
        await until(pilot, lambda: added_style() == light)
        assert screen.colours == diff_colours(app.current_theme)


async def test_a_task_screen_opened_before_the_agent_starts_follows_it(fast_tmp: Path) -> None:
    project = fixed_project(fast_tmp)
    ready = next(t for t in project.store.list_tasks("g1") if t.title == "Write the docs")
    app = fixed_app(project)
    async with app.run_test(size=SIZE) as pilot:
        screen = TaskScreen(project, ready.id, refresh_s=0.02)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.loads > 0)
        assert screen.detail is not None and screen.detail.task.state == TaskState.READY
        project.store.transition_task(ready.id, TaskState.RUNNING, "started")
        await until(
            pilot,
            lambda: screen.detail is not None and screen.detail.task.state == TaskState.RUNNING,
        )


# -- the log of a running task, read as it grows ------------------------------------------------


def _text_line(n: int) -> bytes:
    message = {"id": f"m{n}", "content": [{"type": "text", "text": f"line {n}"}]}
    return json.dumps({"type": "assistant", "message": message}).encode() + b"\n"


def _stitch_run(project: Project, task_id: int) -> int:
    """A stitch run of ``task_id`` recorded as started (its transcript is the test's to write)."""
    return project.store.start_run(
        generation="g1",
        task_id=task_id,
        phase="stitch",
        attempt=1,
        prompt="p",
        argv=["agent"],
        env_names=[],
        cwd="/w",
    )


def test_a_running_tasks_log_is_read_as_it_grows(fast_tmp: Path) -> None:
    """With a cache, each load parses only what the run wrote since; the window of the last
    lines slides, says how many dropped off, and ends as a fresh read of the stored
    transcript would."""
    project = fixed_project(fast_tmp)
    ready = next(t for t in project.store.list_tasks("g1") if t.title == "Write the docs")
    run_id = _stitch_run(project, ready.id)
    path = project.runs_dir / f"{run_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    cache = LogCache()
    path.write_bytes(b"".join(_text_line(n) for n in range(3)) + b'{"type": "assis')
    first = load_task_detail(project, ready.id, 4, cache)
    header = f"── attempt 1 · run {run_id} ──"
    assert first.log == (header, "line 0", "line 1", "line 2") and first.log_skipped == 0
    parsed = cache.runs[run_id].offset
    assert parsed == len(path.read_bytes()) - len(b'{"type": "assis')  # a half line waits
    with path.open("ab") as handle:
        handle.write(_text_line(3)[len(b'{"type": "assis') :] + _text_line(4))
    second = load_task_detail(project, ready.id, 4, cache)
    assert second.log == ("line 1", "line 2", "line 3", "line 4")
    assert second.log_skipped == 2 and cache.runs[run_id].log_count == 5
    project.store.finish_run(run_id, transcript=path, exit_code=0, ok=True)
    path.unlink()  # as the run's end does: the store holds the transcript now
    finished = project.store.get_run(run_id)
    last = load_task_detail(project, ready.id, 4, cache)
    fresh = load_task_detail(project, ready.id, 4)
    assert last.log == fresh.log and last.log_skipped == fresh.log_skipped
    assert last.raw == fresh.raw and finished.ended_at is not None
    assert last.log[-1].startswith("» ended: ok")
    assert cache.runs[run_id].complete


async def test_the_task_screen_log_shows_the_last_lines_as_they_slide(fast_tmp: Path) -> None:
    project = fixed_project(fast_tmp)
    ready = next(t for t in project.store.list_tasks("g1") if t.title == "Write the docs")
    run_id = _stitch_run(project, ready.id)
    project.store.transition_task(ready.id, TaskState.RUNNING, "started")
    path = project.runs_dir / f"{run_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    app = fixed_app(project)
    async with app.run_test(size=SIZE) as pilot:
        screen = TaskScreen(project, ready.id, refresh_s=0.02)
        await app.push_screen(screen)
        log = screen.query_one("#task-log", Log)
        await until(pilot, lambda: screen.loads > 0)
        clears = []
        clear = log.clear

        def counted() -> Log:
            clears.append(1)
            return clear()

        log.clear = counted  # type: ignore[method-assign]
        written = 0
        for batch in (3, LOG_LINES, 7):
            with path.open("ab") as handle:
                handle.write(b"".join(_text_line(n) for n in range(written, written + batch)))
            written += batch
            last = f"line {written - 1}"
            await until(pilot, lambda last=last: last in log.lines[-1:])  # type: ignore[misc]
            assert screen.detail is not None and log.lines == list(screen.detail.log)
        assert log.line_count == LOG_LINES
        assert screen.detail is not None and screen.detail.log_skipped == written + 1 - LOG_LINES
        # Only new lines were written: the widget dropped the old ones itself.
        assert clears == []


# -- g without a commit -----------------------------------------------------------------------


async def test_g_in_a_repository_without_a_commit_says_what_to_do(fast_tmp: Path) -> None:
    git = Git.init_repo(fast_tmp / "fresh", "main")
    (git.root / "README.md").write_text("not committed yet\n")
    app = make_app(git.root)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.snapshots_loaded > 0)
        await pilot.press("g")
        await until(pilot, lambda: any("no commit yet" in n for n in notes(app)))
        [note] = notes(app)
        assert "commit your files" in note and "then press g again" in note
        assert app.snapshot.current is None and not app.busy
    assert not git.ref_exists("HEAD")  # nothing was written
    assert git.dirty_paths() == ["README.md"]


# -- splash -----------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_splash_draws_on_a_terminal_only_and_goes_on_an_error() -> None:
    term = Terminal()
    with splash(term, "opening /r\x1b[31mepo…"):
        pass
    shown = term.getvalue()
    assert shown.startswith(ENTER) and "shoemaker" in shown
    assert "opening /r?[31mepo…" in shown  # a directory name is data: no escape of its own
    assert LEAVE not in shown  # the dashboard takes the screen over
    failing = Terminal()
    with pytest.raises(RuntimeError), splash(failing, "opening"):
        raise RuntimeError("no project")
    assert failing.getvalue().endswith(LEAVE)
    piped = io.StringIO()
    with splash(piped, "opening"):
        pass
    assert piped.getvalue() == ""


def test_the_splash_is_on_screen_before_textual_is_imported(fast_tmp: Path) -> None:
    """In a real terminal: the splash comes first, then Textual's import, then (the directory
    is not a repository) the splash goes and the error is printed on the normal screen."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoemaker", "-C", str(fast_tmp), "tui"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        assert ready, seen[-2000:]
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process ended: the terminal is closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(timeout=60) == 2
    out = seen.decode(errors="replace")
    splash_at = out.index("shoemaker\x1b[0m")
    found = re.search(r"\|\s+textual\.app\r\n", out)
    assert found is not None, out[-2000:]
    textual_at = found.start()
    assert splash_at < textual_at < out.index(LEAVE) < out.index("shoemaker: ")
    assert out.index(ENTER) < splash_at


# -- the demo's summary after quitting --------------------------------------------------------


@pytest.mark.slow
async def test_the_dashboard_demo_ends_with_the_headless_summary(fast_tmp: Path) -> None:
    path = prepare_demo(fast_tmp / "demo")
    app = make_app(path, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.demo_ended is not None, limit=240)
        await pilot.press("q")
    summary = summary_after_dashboard(app, path)
    assert summary is not None
    table, failed = summary
    assert failed == 0
    console = Console(record=True, width=100)
    console.print(table)
    text = console.export_text()
    merged = app.project.git.rev_parse("demo-merged")[:12]
    assert "6/6" in text and f"main at {merged}" in text
    # The very rows the headless demo prints, in the same order.
    headless, _ = demo_summary(app.project, 1, 1.0, path)
    assert list(table.columns[0].cells) == list(headless.columns[0].cells)
