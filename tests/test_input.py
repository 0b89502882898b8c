"""Bad input from agents and people: cleaned or refused before it is stored, shown as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.content import Content
from textual.coordinate import Coordinate

from agents import directive
from projects import cli, make_project, task
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.engine.proposals import MAX_TITLE_CHARS
from shoemaker.model import TaskState
from shoemaker.store import NewTask
from shoemaker.tui.app import ShoemakerApp
from shoemaker.tui.task_screen import TaskScreen
from shoemaker.tui.widgets import OutputPane, TaskQueue

MARKUP = "Fix [/] and [bold]"


def logs(stdout: str) -> list[str]:
    """The messages of the Log events in an NDJSON event stream."""
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [e["message"] for e in events if e["kind"] == "log"]


def rewrite_spec(project: Project, proposals: list[dict[str, Any]]) -> None:
    (project.root / "docs" / "SPEC.md").write_text("# Spec\n\n" + directive(propose=proposals))
    project.git.commit_all(project.root, "spec: next proposals")


def test_measure_cleans_cuts_and_drops_duplicates_through_the_cli(fast_tmp: Path) -> None:
    long_title = "L" * 100_000
    project = make_project(
        fast_tmp,
        [
            task("Fix\x00 the\x1b[31m parser", files={"p.py": "P = 1\n"}),
            {"title": long_title, "description": "long", "depends_on": []},
            task("Add a"),
            task("add  A", [1]),
            task("Use a", [3]),
        ],
    )
    start_generation(project, "g")
    proc = cli(project, "measure", "--events", "ndjson")
    assert proc.returncode == 0, proc.stderr
    notices = logs(proc.stdout)
    assert any("task 3 ('add A') dropped: the same title as task 2" in n for n in notices)
    assert any(f"title of 100,000 characters cut to {MAX_TITLE_CHARS}" in n for n in notices)
    fix, cut, add_a, use_a = project.store.list_tasks("g")
    assert fix.title == "Fix the[31m parser"
    assert cut.title == "L" * (MAX_TITLE_CHARS - 1) + "…"
    assert cut.description.startswith(long_title)
    assert add_a.title == "Add a"
    assert (use_a.title, use_a.depends_on) == ("Use a", [add_a.id])

    # The cleaned task commits and lands like any other.
    proc = cli(project, "run", "--only", str(fix.id))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert project.store.get_task(fix.id).state == TaskState.DONE
    assert project.git.log("generation-g")[0].subject == f"Fix the[31m parser (task #{fix.id})"

    # A later measure that repeats existing tasks adds none of them; what depended on one
    # depends on the task the generation has.
    rewrite_spec(project, [task("ADD A"), task("Test a", [0]), {"title": long_title}])
    proc = cli(project, "measure", "--events", "ndjson")
    assert proc.returncode == 0, proc.stderr
    notices = logs(proc.stdout)
    assert any(
        f"('ADD A') dropped: the generation already has it as task #{add_a.id}" in n
        for n in notices
    )
    assert any(f"dropped: the generation already has it as task #{cut.id}" in n for n in notices)
    *_, test_a = project.store.list_tasks("g")
    assert (test_a.title, test_a.depends_on) == ("Test a", [add_a.id])
    assert len(project.store.list_tasks("g")) == 5


def test_a_title_of_control_characters_only_is_refused_by_name(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("Good"), task("\x00\x07")])
    start_generation(project, "g")
    proc = cli(project, "measure")
    assert proc.returncode == 1
    assert "task 1 ('\\x00\\x07'): missing title" in proc.stdout
    assert project.store.list_tasks("g") == []


def markup_project(root: Path) -> Project:
    project = make_project(root, [])
    start_generation(project, "g")
    (task_,), _ = project.store.add_tasks("g", [NewTask(MARKUP, "[red]desc[/]")], 1, "test")
    project.store.transition_task(task_.id, TaskState.BLOCKED, "gate [x] failed: [/]")
    return project


def test_titles_are_printed_as_data_by_tasks_and_list(fast_tmp: Path) -> None:
    project = markup_project(fast_tmp)
    proc = cli(project, "tasks", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert MARKUP in proc.stdout and "gate [x] failed: [/]" in proc.stdout
    assert cli(project, "list").returncode == 0


def test_the_story_prints_titles_as_data(fast_tmp: Path) -> None:
    from io import StringIO

    from rich.console import Console

    from shoemaker.headless import StoryPrinter

    project = markup_project(fast_tmp)
    out = StringIO()
    printer = StoryPrinter(Console(file=out, width=200, highlight=False))
    for _, event in project.store.events_after(0, limit=100):
        printer(event)
    assert f"ready {MARKUP}" in out.getvalue()
    assert "(gate [x] failed: [/])" in out.getvalue()


async def test_the_dashboard_shows_titles_as_data(fast_tmp: Path) -> None:
    project = markup_project(fast_tmp)
    (task_,) = project.store.list_tasks("g")
    app = ShoemakerApp(project)
    async with app.run_test(size=(160, 40)) as pilot:
        while app.snapshots_loaded == 0:
            await pilot.pause(0.02)
        queue = app.query_one(TaskQueue)
        cell = queue.get_cell_at(Coordinate(0, 1))
        assert isinstance(cell, str) and Text.from_markup(cell).plain == MARKUP
        app.show_output(task_.id)
        title = app.query_one(OutputPane).border_title  # its markup, escaped
        assert Content.from_markup(title or "").plain == f"Agent output · #{task_.id} {MARKUP}"
        app.notify(f"task {MARKUP}")  # data, never markup: this would raise otherwise
        await pilot.press("enter")
        while not isinstance(app.screen, TaskScreen) or app.screen.detail is None:
            await pilot.pause(0.02)
        await pilot.press("a")  # attempts and gates
        await pilot.pause()
        summary = app.screen.query_one("#task-summary")
        assert MARKUP in str(summary.render()) and "gate [x] failed: [/]" in str(summary.render())


def test_start_refuses_a_name_git_refuses_and_writes_nothing(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    refs_before = project.git._run(["for-each-ref"])
    for name in ("a..b", "x.lock", "ends."):
        proc = cli(project, "start", name)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "git refuses the name" in lines[0], proc.stderr
        assert name in lines[0]
    assert project.store.list_generations() == []
    assert project.git._run(["for-each-ref"]) == refs_before
    assert project.git.current_branch() == "main"
    # Nothing blocks the next command.
    assert cli(project, "start", "ok").returncode == 0


def test_a_commit_message_never_carries_a_nul_or_a_second_subject_line(fast_tmp: Path) -> None:
    git = make_project(fast_tmp, []).git
    assert git.format_message("Fix\x00 it\nnow", "body\x00\n\tindented") == (
        "Fix it now\n\nbody\n\tindented\n"
    )
    (git.root / "x.txt").write_text("x\n")
    assert git.commit_all(git.root, "Add\x00 x", "a\x00b") is not None
    assert git.log("HEAD", max_count=1)[0].subject == "Add x"


def test_story_and_cli_table_colour_states_from_one_palette() -> None:
    from io import StringIO

    from rich.console import Console

    from shoemaker.cli.output import _task_state_markup
    from shoemaker.events import TaskStateChanged
    from shoemaker.headless import StoryPrinter
    from shoemaker.model import TaskState
    from shoemaker.palette import STATE_STYLE

    assert set(STATE_STYLE) == set(TaskState)
    for state in TaskState:
        markup = Text.from_markup(_task_state_markup(state))
        assert markup.plain == state.value and str(markup.spans[0].style) == STATE_STYLE[state]
        story, alone = StringIO(), StringIO()
        StoryPrinter(Console(file=story, force_terminal=True, color_system="standard"))(
            TaskStateChanged(task_id=1, title="t", old=None, new=state)
        )
        Console(file=alone, force_terminal=True, color_system="standard").print(
            Text(state.value, style=STATE_STYLE[state]), end=""
        )
        assert alone.getvalue().removesuffix("\x1b[0m") in story.getvalue()
