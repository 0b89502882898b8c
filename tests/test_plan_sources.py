"""Plan files read as they are: epics and beads parsed, checked, imported, written back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from projects import cli, make_project
from shoemaker.engine.generation import start_generation
from shoemaker.engine.task_detail import load_task_detail
from shoemaker.engine.views import load_snapshot
from shoemaker.model import PlanGate, TaskState
from shoemaker.sources import beads, epic_names, epics, phases
from shoemaker.sources.check import check
from shoemaker.sources.importer import ImportReport, detect_format, import_plan, parse_paths
from shoemaker.sources.model import PlanError, PlannedTask, says_done
from shoemaker.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "plans"


def by_id(root: Path, path: Path, fmt: str = "auto") -> dict[str, PlannedTask]:
    parsed = parse_paths(root, [path], fmt)
    assert parsed.problems == []
    return {t.external_id: t for t in parsed.tasks}


def test_epics_every_naming_variant_and_their_dependencies() -> None:
    tasks = by_id(FIXTURES, FIXTURES / "epics")
    assert sorted(tasks) == [
        "cli/CLI01",
        "cli/CLI02",
        "core/E01",
        "core/E02",
        "core/E03",
        "phased/E2.1",
    ]
    deps = {i: t.depends_on for i, t in tasks.items()}
    assert deps == {
        "core/E01": (),
        "core/E02": ("core/E01",),  # implicit: the highest lower-numbered one of core
        "core/E03": ("core/E01", "core/E02"),  # bare numbers: the same module
        "cli/CLI01": ("core/E02",),  # across modules
        "cli/CLI02": ("cli/CLI01",),  # implicit, within the CLI prefix
        "phased/E2.1": ("core/E03", "cli/CLI02"),
    }


def test_epic_front_matter_and_readme_status() -> None:
    tasks = by_id(FIXTURES, FIXTURES / "epics")
    e1, e2, e3 = (tasks[f"core/E0{n}"] for n in (1, 2, 3))
    cli1 = tasks["cli/CLI01"]
    assert e1.done  # 🟢 in the module README
    assert not e2.done and not e3.done  # 🔴, and in_progress
    assert e3.title == "Writer" and e3.extras["github_issue"] == 42
    assert e2.title == "Parser" and e2.priority == 1 and cli1.priority == -1
    # The whole file is the task's text, front matter included.
    assert e3.description == (FIXTURES / "epics/core/03-epic-writer.md").read_text()
    assert e3.path == "epics/core/03-epic-writer.md"


def test_a_circular_plan_names_its_cycle_with_the_file_and_line() -> None:
    parsed = parse_paths(FIXTURES, [FIXTURES / "circular"])
    problems = [str(p) for p in check(parsed)]
    assert len(problems) == 1
    assert problems[0].startswith("circular/loop/epic-0")
    assert "dependency cycle: loop/E0" in problems[0]
    for epic in ("loop/E01", "loop/E02", "loop/E03"):
        assert epic in problems[0]


def test_broken_plans_report_every_problem_on_its_line() -> None:
    parsed = parse_paths(FIXTURES, [FIXTURES / "broken"])
    problems = sorted(str(p) for p in check(parsed))
    assert problems == [
        "broken/m/epic-01-a.md:1: duplicate id m/E01 (also at broken/m/01-epic-again.md:1)",
        "broken/m/epic-01-a.md:3: m/E01 depends on m/E07, which no plan file or task has",
        "broken/m/epic-01-a.md:4: priority 'urgent': use high, medium or low",
    ]


def test_beads_blocks_parent_child_comments_and_closed() -> None:
    tasks = by_id(FIXTURES, FIXTURES / "beads")
    b1, b2, b3, b4 = (tasks[f"bd-{n}"] for n in range(1, 5))
    assert b1.done and not b2.done
    assert b2.depends_on == ("bd-1",)
    assert b3.depends_on == ("bd-2",)
    # The parent (an epic) waits for its children.
    assert b4.depends_on == ("bd-2", "bd-3")
    assert b4.extras == {"issue_type": "epic", "children": ["bd-2", "bd-3"]}
    assert "ann (2026-11-01T11:00:00Z): Keep reads lazy." in b2.description
    assert "## Design\n\nAppend only." in b3.description
    assert (b2.priority, b3.priority) == (2, 0)  # P0, P2


def test_formats_are_detected_from_the_path() -> None:
    assert detect_format(FIXTURES / "beads") == "beads"
    assert detect_format(FIXTURES / "beads/.beads/issues.jsonl") == "beads"
    assert detect_format(FIXTURES / "epics") == "epics"
    assert detect_format(Path("shoemaker-proposals.json")) == "measure"


def test_a_bad_beads_line_is_named(tmp_path: Path) -> None:
    file = tmp_path / "issues.jsonl"
    file.write_text(
        '{"id":"a","title":"A"}\nnot json\n{"id":"b","title":"B","dependencies":'
        '[{"issue_id":"b","depends_on_id":"zz","type":"blocks"}]}\n'
    )
    problems = [str(p) for p in check(parse_paths(tmp_path, [file]))]
    assert problems[0].startswith("issues.jsonl:2: not a JSON object")
    assert problems[1] == "issues.jsonl:3: b depends on zz, which no plan file or task has"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "shoemaker.db")
    s.create_generation("g", "generation-g", "main", "0" * 40)
    return s


@pytest.fixture
def epics_root(tmp_path: Path) -> Path:
    """A repository holding the epics fixture under docs/plans."""
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "epics", root / "docs/plans")
    return root


def imported(store: Store, root: Path, dry_run: bool = False) -> ImportReport:
    """The plans of ``root`` imported (again) into generation g."""
    gen = store.get_generation("g")
    return import_plan(store, root, gen, [root / "docs/plans"], dry_run=dry_run)


def test_importing_twice_adds_nothing_and_an_edit_updates_a_task_not_started(
    store: Store, epics_root: Path
) -> None:
    root = epics_root
    report = imported(store, root)
    assert len(report.added) == 6
    tasks = {t.external_id: t for t in store.list_tasks("g")}
    assert tasks["core/E01"].state == TaskState.DONE
    assert tasks["core/E02"].state == TaskState.READY  # its one dependency is done
    assert tasks["core/E03"].state == TaskState.PROPOSED
    assert tasks["core/E03"].depends_on == [tasks["core/E01"].id, tasks["core/E02"].id]
    origin = tasks["cli/CLI01"].origin
    assert origin is not None and origin.path == "docs/plans/cli/epic-cli-01-args.md"

    again = imported(store, root)
    assert (again.added, again.updated, again.unchanged) == ([], [], 6)

    epic = root / "docs/plans/cli/epic-cli-02-help.md"
    epic.write_text(epic.read_text() + "\nAlso list the commands.\n")
    dry = imported(store, root, dry_run=True)
    assert [t.external_id for t in dry.updated] == ["cli/CLI02"]
    assert "Also list" not in store.get_task(tasks["cli/CLI02"].id).description
    imported(store, root)
    assert "Also list the commands." in store.get_task(tasks["cli/CLI02"].id).description
    assert len(store.list_tasks("g")) == 6


def test_an_item_finished_by_hand_is_recorded_done_and_never_runs(
    store: Store, epics_root: Path
) -> None:
    # A person did an epic by hand after it was imported and marked it complete: the next
    # import records the task done, without running it, and promotes what waited for it. A
    # task that has started is left to its attempt.
    root = epics_root
    imported(store, root)
    tasks = {t.external_id: t for t in store.list_tasks("g")}
    parser, args = tasks["core/E02"], tasks["cli/CLI01"]
    assert (parser.state, args.state) == (TaskState.READY, TaskState.PROPOSED)
    epic = root / "docs/plans/core/epic-02-parser.md"
    epic.write_text(epic.read_text().replace("priority: high\n", "priority: high\nstatus: done\n"))

    dry = imported(store, root, dry_run=True)
    assert [t.external_id for t in dry.done] == ["core/E02"]
    assert store.get_task(parser.id).state == TaskState.READY
    report = imported(store, root)
    assert [(t.external_id, t.state) for t in report.done] == [("core/E02", TaskState.DONE)]
    assert store.get_task(parser.id).reason == "done in its plan file"
    assert store.get_task(args.id).state == TaskState.READY  # it waited for the parser
    assert store.get_task(tasks["core/E03"].id).state == TaskState.READY

    store.transition_task(args.id, TaskState.RUNNING, "attempt 1", count_attempt=True)
    epic = root / "docs/plans/cli/epic-cli-01-args.md"
    epic.write_text(epic.read_text().replace("priority: low\n", "priority: low\nstatus: done\n"))
    again = imported(store, root)
    assert again.done == [] and store.get_task(args.id).state == TaskState.RUNNING


def test_a_plan_with_a_problem_imports_nothing(store: Store) -> None:
    with pytest.raises(PlanError, match=r"dependency cycle.*nothing was imported"):
        import_plan(store, FIXTURES, store.get_generation("g"), [FIXTURES / "circular"])
    assert store.list_tasks("g") == []


def test_measure_proposal_files_are_one_more_format(store: Store, tmp_path: Path) -> None:
    file = tmp_path / "shoemaker-proposals.json"
    file.write_text(
        json.dumps(
            [
                {"index": 0, "title": "A", "description": "a", "dependency": -1},
                {"index": 1, "title": "B", "description": "b", "dependency": 0},
            ]
        )
    )
    report = import_plan(store, tmp_path, store.get_generation("g"), [file])
    a, b = report.added
    assert (a.external_id, b.external_id) == ("shoemaker-proposals#0", "shoemaker-proposals#1")
    assert b.depends_on == [a.id]


def test_epic_write_back_marks_front_matter_and_the_readme_row() -> None:
    text = (FIXTURES / "epics/core/epic-02-parser.md").read_text()
    marked = epics.mark_complete(text)
    assert marked.startswith("---\npriority: high\nstatus: complete\n---\n")
    assert (
        epics.mark_complete("---\nstatus: open\n---\n# x\n") == "---\nstatus: complete\n---\n# x\n"
    )
    assert epics.mark_complete("# x\n") == "---\nstatus: complete\n---\n# x\n"
    readme = (FIXTURES / "epics/core/README.md").read_text()
    name = epic_names.epic_name("epic-02-parser.md")
    assert name is not None
    rows = epics.mark_readme_row(readme, "epic-02-parser.md", name).split("\n")
    assert [r for r in rows if "🟢" in r] == [
        "| [01](epic-01-setup.md) | Setup | 🟢 |",
        "| [02](epic-02-parser.md) | Parser | 🟢 |",
    ]
    assert "| [03](03-epic-writer.md) | Writer | 🟡 |" in rows


def test_beads_export_changes_nothing_shoemaker_did_not_do(store: Store) -> None:
    file = FIXTURES / "beads/.beads/issues.jsonl"
    original = file.read_text()
    import_plan(store, FIXTURES, store.get_generation("g"), [file])
    tasks = store.list_tasks("g")
    assert beads.export(original, tasks) == original
    b2 = next(t for t in tasks if t.external_id == "bd-2")
    store.transition_task(b2.id, TaskState.RUNNING, count_attempt=True)
    lines = beads.export(original, store.list_tasks("g")).split("\n")
    assert json.loads(lines[1])["status"] == "in_progress"
    assert lines[0] == original.split("\n")[0] and lines[2:] == original.split("\n")[2:]


def test_the_dashboard_rows_and_task_screen_show_where_a_task_comes_from(tmp_path: Path) -> None:
    project = make_project(tmp_path, [])
    start_generation(project, "g")
    import_plan(
        project.store,
        FIXTURES,
        project.store.get_generation("g"),
        [FIXTURES / "beads/.beads/issues.jsonl"],
    )
    rows = {r.external_id for r in load_snapshot(project.store, "g").tasks}
    assert rows == {"bd-1", "bd-2", "bd-3", "bd-4"}
    task = next(t for t in project.store.list_tasks("g") if t.external_id == "bd-2")
    detail = load_task_detail(project, task.id)
    assert detail.source == "beads bd-2 · beads/.beads/issues.jsonl"
    # An epic's github_issue is kept and shown beside where it comes from.
    import_plan(project.store, FIXTURES, project.store.get_generation("g"), [FIXTURES / "epics"])
    writer = next(t for t in project.store.list_tasks("g") if t.external_id == "core/E03")
    assert load_task_detail(project, writer.id).source == (
        "epics core/E03 · epics/core/03-epic-writer.md · GitHub issue 42"
    )


def test_a_master_plan_with_decimal_phases_gates_and_wrapper() -> None:
    master = FIXTURES / "phases/master-plan.md"
    assert detect_format(master) == "phases"
    tasks = by_id(FIXTURES, master)
    assert list(tasks) == ["master-plan/P1", "master-plan/P2", "master-plan/P3.1"]
    p1, p2, p3 = tasks.values()
    assert (p1.depends_on, p2.depends_on, p3.depends_on) == (
        (),
        ("master-plan/P1",),
        ("master-plan/P2",),
    )
    assert p1.gates == (PlanGate("compiles", "python -m compileall -q ."),)
    assert p2.gates == (PlanGate("core-imports", 'python -c "import toolkit.core"'),)
    assert p1.extras["notes_file"] == "notes/NOTES_toolkit_phase_1.md"
    assert p2.extras["required_agents"] == ["doc-sync-manager"]
    assert "notes_file" not in p2.extras  # reading notes is no requirement
    assert (p1.title, p3.title) == ("Setup", "Report")
    assert check(parse_paths(FIXTURES, [master])) == []


def test_a_missing_phase_file_and_a_gate_without_a_command_are_problems() -> None:
    parsed = parse_paths(FIXTURES, [FIXTURES / "phases-broken/master-plan.md"])
    assert sorted(str(p) for p in check(parsed)) == [
        "phases-broken/master-plan.md:8: phase 2: phase file phase2-gone.md is missing",
        "phases-broken/phase1-setup.md:7: gate 'echo' of master-plan/P1 has no command: "
        "name what shoemaker runs, e.g. `command: pytest -q`",
    ]


def test_phase_write_back_ticks_the_checklist_and_the_master_row() -> None:
    text = (FIXTURES / "phases/phase3.1-report.md").read_text()
    marked = phases.mark_complete(text)
    assert "**Status:** Complete" in marked
    assert "- [x] 3.1.1: Write `toolkit/report.py`" in marked
    assert marked.count("[ ]") == 0 and marked.count("[x]") == 2
    master = (FIXTURES / "phases/master-plan.md").read_text()
    rows = phases.mark_master_row(master, "phase3.1-report.md").split("\n")
    assert "| 3.1 | [Report](phase3.1-report.md) | A report | Low | Complete |" in rows
    assert "| 2 | [Core](phase2-core.md) | Core logic | Medium | Pending |" in rows


def test_the_subagents_a_stream_shows_and_the_notes_a_phase_requires(tmp_path: Path) -> None:
    from shoemaker.model import Task, TaskOrigin
    from shoemaker.sources.compliance import shortfall, subagents_in

    line = {
        "type": "assistant",
        "message": {
            "content": [{"type": "tool_use", "name": "Task", "input": {"subagent_type": "x"}}]
        },
    }
    transcript = (json.dumps(line) + "\nnot json\n").encode()
    assert subagents_in(transcript) == {"x"}
    task = Task(
        1,
        "g",
        "t",
        "",
        TaskState.RUNNING,
        origin=TaskOrigin("phases", "p.md", "m/P1"),
        extras={"required_agents": ["x", "y"], "notes_file": "notes/n.md"},
    )
    why = shortfall(task, transcript, tmp_path)
    assert "subagent(s) y" in why and "notes file notes/n.md, which was not written" in why
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes/n.md").write_text("## Summary\n\n## Files Modified\n")
    assert "lacks ## Key Decisions" in shortfall(task, transcript, tmp_path)


def test_write_back_leaves_a_persons_uncommitted_file_and_links_alone(tmp_path: Path) -> None:
    from shoemaker.model import Task, TaskOrigin
    from shoemaker.sources.writeback import write_back

    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "epics", root / "docs/plans")
    task = Task(
        1,
        "g",
        "Parser",
        "",
        TaskState.MERGING,
        origin=TaskOrigin("epics", "docs/plans/core/epic-02-parser.md", "core/E02"),
    )
    readme = "docs/plans/core/README.md"
    assert write_back(task, root, keep={readme}) == ["docs/plans/core/epic-02-parser.md"]
    assert "🔴" in (root / readme).read_text()
    assert write_back(task, root) == [readme]  # the epic says complete already
    outside = tmp_path / "elsewhere.md"
    outside.write_text("# Epic 02\n")
    epic = root / "docs/plans/core/epic-02-parser.md"
    epic.unlink()
    epic.symlink_to(outside)
    assert write_back(task, root) == []
    assert outside.read_text() == "# Epic 02\n"


def test_write_back_keeps_a_files_crlf_line_ends(tmp_path: Path) -> None:
    from shoemaker.model import Task, TaskOrigin
    from shoemaker.sources.writeback import write_back

    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "epics", root / "docs/plans")
    core = root / "docs/plans/core"
    for name in ("epic-02-parser.md", "README.md"):
        (core / name).write_bytes((core / name).read_bytes().replace(b"\n", b"\r\n"))
    origin = TaskOrigin("epics", "docs/plans/core/epic-02-parser.md", "core/E02")
    task = Task(1, "g", "Parser", "", TaskState.MERGING, origin=origin)
    assert len(write_back(task, root)) == 2
    for name in ("epic-02-parser.md", "README.md"):
        data = (core / name).read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n"), name  # no line lost its CR
    epic = (core / "epic-02-parser.md").read_bytes()
    assert epic.startswith(b"---\r\npriority: high\r\nstatus: complete\r\n---\r\n")
    assert (
        b"| [02](epic-02-parser.md) | Parser | \xf0\x9f\x9f\xa2 |\r\n"
        in (core / "README.md").read_bytes()
    )


def test_a_directory_without_epics_is_a_problem_not_an_empty_plan(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/README.md").write_text("# nothing planned\n")
    problems = [str(p) for p in check(parse_paths(tmp_path, [tmp_path / "docs"], "epics"))]
    assert problems == [
        "docs:1: no epic files under it (epic-NN-slug.md, NN-epic-slug.md, "
        "epic-PREFIX-NN-slug.md, epic-P.E-slug.md)"
    ]
    with pytest.raises(PlanError, match="no such file or directory"):
        parse_paths(tmp_path, [tmp_path / "missing"])


async def test_the_plans_view_groups_tasks_with_their_progress(fast_tmp: Path) -> None:
    from textual.widgets import DataTable

    from shoemaker.tui.app import ShoemakerApp
    from shoemaker.tui.screens import PlansScreen
    from tui_data import CLOCK, fixed_project

    project = fixed_project(fast_tmp)
    gen = project.store.get_generation("g1")
    root = project.root
    shutil.copytree(FIXTURES / "epics", root / "docs/plans")
    import_plan(project.store, root, gen, [root / "docs/plans"])
    app = ShoemakerApp(project, clock=lambda: CLOCK, follow_idle_s=3600)
    async with app.run_test(size=(120, 36)) as pilot:
        while app.snapshots_loaded == 0:
            await pilot.pause(0.02)
        # Each queue row leads with the id the plan file gives the task.
        titles = [str(app.queue.get_row_at(i)[1]) for i in range(app.queue.row_count)]
        assert "core/E03 · Writer" in titles and "cli/CLI02 · Help" in titles
        await pilot.press("P")
        assert isinstance(app.screen, PlansScreen)
        table = app.screen.query_one("#plans-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [r[:4] for r in rows] == [
            ["epics docs/plans/core", "1/3", "0", "0"],
            ["epics docs/plans/cli", "0/2", "0", "0"],
            ["epics docs/plans/phased", "0/1", "0", "0"],
        ]
        assert rows[0][4] == "███████░░░░░░░░░░░░░"
        await pilot.press("escape")
        assert not isinstance(app.screen, PlansScreen)


def test_an_epic_imported_alone_follows_the_epics_beside_it(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "epics", root / "docs/plans")
    gen = store.get_generation("g")
    import_plan(store, root, gen, [root / "docs/plans/core/epic-01-setup.md"])
    (root / "docs/plans/core/epic-04-extra.md").write_text("# Epic 04: Extra\n")
    with pytest.raises(PlanError, match="core/E04 depends on core/E03, which no plan file"):
        import_plan(store, root, gen, [root / "docs/plans/core/epic-04-extra.md"])
    import_plan(store, root, gen, [root / "docs/plans/core/epic-02-parser.md"])
    import_plan(store, root, gen, [root / "docs/plans/core/03-epic-writer.md"])
    (e4,) = import_plan(store, root, gen, [root / "docs/plans/core/epic-04-extra.md"]).added
    e3 = next(t for t in store.list_tasks("g") if t.external_id == "core/E03")
    assert e4.depends_on == [e3.id]


def test_a_status_written_with_a_mark_or_an_emoji_is_read_as_people_mean_it() -> None:
    tasks = by_id(FIXTURES, FIXTURES / "marked")
    done = {i for i, t in tasks.items() if t.done}
    # ✅ in front matter, and a README row reading "🟢 Complete"; 🟡 is still open.
    assert done == {"technical/E04", "billing/E00"}
    assert tasks["technical/E05"].depends_on == ("technical/E04", "billing/E00")
    assert tasks["technical/E05"].title == "Input Validators"
    assert tasks["technical/E05"].priority == 1
    master = by_id(FIXTURES, FIXTURES / "marked-phases/master-plan.md")
    # Phase 1 has no **Status:**: the table's "✅ Complete" says it; phase 2 is "🟡 In Progress".
    assert [t.done for t in master.values()] == [True, False]
    assert master["master-plan/P2"].gates == (PlanGate("ruff", "ruff check ."),)
    assert master["master-plan/P2"].extras["notes_file"] == "notes/NOTES_phase_2.md"


@pytest.mark.parametrize(
    ("status", "done"),
    [
        ("complete", True),
        ("Completed.", True),
        ("✅ Complete", True),
        ("🟢", True),
        ("done (2026-11-02)", True),
        ("closed", True),
        ("in_progress", False),
        ("🔴 Not started", False),
        ("not complete", False),
        ("Pending", False),
        ("", False),
    ],
)
def test_status_words_and_marks(status: str, done: bool) -> None:
    assert says_done(status) is done


def test_broken_front_matter_is_one_line_naming_its_line(tmp_path: Path) -> None:
    epic = tmp_path / "m" / "epic-01-a.md"
    epic.parent.mkdir()
    epic.write_text("---\ntitle: A\nstatus: [unclosed\n---\n# Epic 01: A\n")
    (problem,) = [str(p) for p in check(parse_paths(tmp_path, [tmp_path]))]
    assert "\n" not in problem
    assert problem.startswith("m/epic-01-a.md:3: front matter is not valid YAML: ")


def test_beads_export_of_other_formats_closes_what_is_done_and_links_its_own_ids(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, [])
    shutil.copytree(FIXTURES / "marked", project.root / "docs/plans")
    project.git.commit_all(project.root, "plan")
    gen = start_generation(project, "g")
    import_plan(project.store, project.root, gen, [project.root / "docs/plans"])
    issues = {
        i["external_ref"]: i
        for i in map(json.loads, beads.export("", project.store.list_tasks("g")).splitlines())
    }
    ids = {i["id"] for i in issues.values()}
    forms, ledger = issues["epics:technical/E04"], issues["epics:billing/E00"]
    # Done in their own files: closed, and not said to be merged by shoemaker.
    assert (forms["status"], ledger["status"]) == ("closed", "closed")
    assert ledger["close_reason"] == "done in its plan file docs/plans/billing/00-epic-ledger.md"
    validators = issues["epics:technical/E05"]
    assert validators["status"] == "open"
    # Its dependencies name issues of the same file, not epic ids bd has never seen.
    targets = {d["depends_on_id"] for d in validators["dependencies"]}
    assert targets == {forms["id"], ledger["id"]} and targets <= ids


def test_export_to_a_file_it_cannot_write_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path, [])
    start_generation(project, "g")
    out = cli(project, "tasks", "export", "--format", "beads", "no/such/dir/issues.jsonl")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "no/such/dir/issues.jsonl: cannot write it: " in out.stderr
    assert not (project.root / "no").exists()


def test_a_directory_holding_a_master_plan_reads_as_phases(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(FIXTURES / "phases", docs)
    (docs / "notes.md").write_text("# Notes\n\nNot a plan.\n")
    assert detect_format(docs) == "phases"
    assert list(by_id(tmp_path, docs)) == ["master-plan/P1", "master-plan/P2", "master-plan/P3.1"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("# Notes\n")
    (problem,) = parse_paths(tmp_path, [empty], "phases").problems
    assert str(problem).startswith("empty:1: no master plan under it")


def test_phase_ids_with_leading_zeros_are_the_phases_other_files_name(tmp_path: Path) -> None:
    (tmp_path / "master-plan.md").write_text(
        "# Tool - Master Plan\n\n| Phase | Title | Focus | Risk | Status |\n|---|---|---|---|---|\n"
        "| 01.0 | [Core](core.md) | a | Low | Pending |\n"
        "| 01.1 | [More](more.md) | b | Low | Pending |\n"
        "| 02 | [Last](last.md) | c | Low | Pending |\n"
    )
    (tmp_path / "core.md").write_text("# Phase 1.0: Core\n\n**Depends On:** N/A\n")
    (tmp_path / "more.md").write_text("# Phase 1.1: More\n\n**Depends On:** Phase 1.0\n")
    (tmp_path / "last.md").write_text("# Phase 2: Last\n\n**Depends On:** Phase 01.1, Phase 1\n")
    parsed = parse_paths(tmp_path, [tmp_path / "master-plan.md"])
    deps = {t.external_id: t.depends_on for t in parsed.tasks}
    assert deps == {
        "master-plan/P1.0": (),
        "master-plan/P1.1": ("master-plan/P1.0",),
        "master-plan/P2": ("master-plan/P1.1", "master-plan/P1"),
    }
    # Phase 1 is nobody: named as such, on the line that says it.
    assert [str(p) for p in check(parsed)] == [
        "last.md:3: master-plan/P2 depends on master-plan/P1, which no plan file or task has"
    ]


def test_a_gate_that_needs_a_shell_is_a_problem_not_a_puzzling_failure(tmp_path: Path) -> None:
    (tmp_path / "master-plan.md").write_text(
        "# Tool - Master Plan\n\n| Phase | Title | Focus | Risk | Status |\n|---|---|---|---|---|\n"
        "| 1 | [Core](core.md) | a | Low | Pending |\n"
    )
    (tmp_path / "core.md").write_text(
        "# Phase 1: Core\n\n## Gates\n"
        "- tests: `command: cd backend && pytest -q` - must pass\n"
        "- lint: `command: ruff check .` - clean\n"
        "- quote: `command: echo 'open` - broken\n"
    )
    problems = [str(p) for p in check(parse_paths(tmp_path, [tmp_path / "master-plan.md"]))]
    assert problems == [
        "core.md:4: gate 'tests': its command needs a shell for '&&', and gates run without "
        "one; write one gate per command, or put them in a script the gate runs",
        "core.md:6: gate 'quote': its command cannot be split: No closing quotation",
    ]


def test_a_readme_row_is_the_epic_its_first_id_names_not_one_it_depends_on() -> None:
    readme = (
        "| Epic | Title | Depends on | Status |\n|---|---|---|---|\n"
        "| E05 | Validators | E04 | 🔴 |\n"
        "| E06 | Reports | E05 | 🔴 |\n"
        "| [07](epic-07-x.md) | X | [05](epic-05-validators.md) | 🟡 |\n"
        "| 🟡 | [Validators again](epic-05-validators.md) | | |\n"
    )
    five = epic_names.EpicName("E", (5,))
    rows = epics.mark_readme_row(readme, "epic-05-validators.md", five).split("\n")
    assert rows[2:6] == [
        "| E05 | Validators | E04 | 🟢 |",
        "| E06 | Reports | E05 | 🔴 |",
        "| [07](epic-07-x.md) | X | [05](epic-05-validators.md) | 🟡 |",
        "| 🟢 | [Validators again](epic-05-validators.md) | | |",
    ]
    # Reading the status goes by the same rows: E06's 🟢 is not E05's.
    assert not epics.row_matches("| E06 | Reports | E05 | 🟢 |", "epic-05-validators.md", five)


def test_status_rows_in_a_readme_above_the_modules_are_read_and_written_back(
    tmp_path: Path,
) -> None:
    from shoemaker.model import Task, TaskOrigin
    from shoemaker.sources.writeback import write_back

    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "rooted", root)
    tasks = by_id(root, root / "docs/plans")
    # Rows linking the epic's file, or under a heading naming its module.
    assert {i for i, t in tasks.items() if t.done} == {"technical/E01", "billing/E01"}
    before = (root / "README.md").read_text()
    for external_id in ("technical/E02", "billing/E02"):
        module = external_id.split("/")[0]
        number = external_id[-2:]
        path = next(p for p in (root / "docs/plans" / module).glob(f"epic-{number}-*.md"))
        task = Task(
            1,
            "g",
            "t",
            "",
            TaskState.MERGING,
            origin=TaskOrigin("epics", path.relative_to(root).as_posix(), external_id),
            extras={"module": module},
        )
        assert "README.md" in write_back(task, root)
    after = (root / "README.md").read_text().split("\n")
    changed = [(b, a) for b, a in zip(before.split("\n"), after, strict=True) if a != b]
    assert changed == [
        (
            "| [E02](docs/plans/technical/epic-02-validators.md) | Validators, after "
            "[E01](docs/plans/technical/epic-01-forms.md) | 🔴 |",
            "| [E02](docs/plans/technical/epic-02-validators.md) | Validators, after "
            "[E01](docs/plans/technical/epic-01-forms.md) | 🟢 |",
        ),
        ("| E02 | Invoices | 🟡 |", "| E02 | Invoices | 🟢 |"),
    ]


def test_a_dependency_on_e02_finds_the_one_phase_dot_epic_numbered_2(tmp_path: Path) -> None:
    module = tmp_path / "plans" / "report"
    module.mkdir(parents=True)
    (module / "epic-1.2-tables.md").write_text("# Epic 1.2: Tables\n")
    (module / "epic-3.1-charts.md").write_text("---\ndepends_on: [report/E02]\n---\n# Charts\n")
    (module / "epic-3.4-export.md").write_text("---\ndepends_on: [2, E07]\n---\n# Export\n")
    parsed = parse_paths(tmp_path, [tmp_path / "plans"])
    deps = {t.external_id: t.depends_on for t in parsed.tasks}
    assert deps["report/E3.1"] == ("report/E1.2",)
    assert deps["report/E3.4"] == ("report/E1.2", "report/E07")
    # An id nothing answers to stays a problem, on its own line.
    assert [str(p) for p in check(parsed)] == [
        "plans/report/epic-3.4-export.md:2: report/E3.4 depends on report/E07, which no plan "
        "file or task has"
    ]


def test_overlapping_paths_read_each_epic_once() -> None:
    parsed = parse_paths(FIXTURES, [FIXTURES / "epics", FIXTURES / "epics/core"])
    assert check(parsed) == []
    assert len(parsed.tasks) == 6
    # Two files with one id are still a duplicate.
    broken = parse_paths(FIXTURES, [FIXTURES / "broken", FIXTURES / "broken/m"])
    assert [str(p) for p in check(broken)].count(
        "broken/m/epic-01-a.md:1: duplicate id m/E01 (also at broken/m/01-epic-again.md:1)"
    ) == 1
