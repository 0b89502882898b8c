"""Plans people write, run end to end with the rehearsal agent as a real process: imported,
every task merged in dependency order, progress written back into the plan files on the
generation branch, and the plan still clean for ``plan check``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from projects import cli, make_project, scripted
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.engine.review import approve
from shoemaker.events import Notice
from shoemaker.git import Git
from shoemaker.model import Task, TaskState

FIXTURES = Path(__file__).parent / "fixtures" / "plans"

pytestmark = pytest.mark.slow


def with_plan(project: Project, fixture: str, into: str) -> None:
    shutil.copytree(FIXTURES / fixture, project.root / into, dirs_exist_ok=True)
    project.git.commit_all(project.root, f"plan: {fixture}")


def show(project: Project, ref: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(project.root), "show", f"{ref}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def merged_in_dependency_order(project: Project, start: str, branch: str) -> list[Task]:
    """The tasks' commits on the branch, oldest first; each one's dependencies came before."""
    tasks = {t.id: t for t in project.store.list_tasks()}
    log = list(reversed(project.git.log(f"{start}..{branch}")))
    order = [int(c.trailers["Shoemaker-Task"]) for c in log]
    for commit in log:
        task = tasks[int(commit.trailers["Shoemaker-Task"])]
        assert task.origin is not None
        assert commit.trailers["Shoemaker-Source"] == f"{task.origin.format}:{task.external_id}"
        for dep in task.depends_on:
            if tasks[dep].merged_commit:
                assert order.index(dep) < order.index(task.id)
    assert len(set(order)) == len(order)  # one commit per task
    return [tasks[i] for i in order]


def touched_by(project: Project, task: Task) -> set[str]:
    """The paths the task's one commit changed."""
    sha = task.merged_commit
    return {f.path for f in project.git.diff_stat(f"{sha}^", sha).files}


async def test_epics_import_run_and_write_back(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [],
        measure="off",
        gates=[{"name": "compiles", "command": ["python", "-m", "compileall", "-q", "."]}],
    )
    with_plan(project, "epics", "docs/plans")
    gen = start_generation(project, "g1")
    imported = cli(project, "tasks", "import", "docs/plans")
    assert imported.returncode == 0, imported.stderr
    assert "6 task(s) added" in imported.stdout
    again = cli(project, "tasks", "import", "docs/plans", "--dry-run")
    assert "0 task(s) would add, 0 updated, 6 already there" in " ".join(again.stdout.split())

    report = await Engine(project).run(cycles=1)
    assert (report.merged, report.failed) == (5, 0)
    tasks = {t.external_id: t for t in project.store.list_tasks("g1")}
    assert all(t.state == TaskState.DONE for t in tasks.values())
    assert not tasks["core/E01"].merged_commit  # done in its README: never run
    landed = merged_in_dependency_order(project, gen.start_commit, gen.branch)
    assert {t.external_id for t in landed} == set(tasks) - {"core/E01"}

    # Written back in the task's own commit: front matter and README row.
    for path in (
        "core/epic-02-parser.md",
        "core/03-epic-writer.md",
        "cli/epic-cli-01-args.md",
        "cli/epic-cli-02-help.md",
        "phased/epic-2.1-report.md",
    ):
        text = show(project, gen.branch, f"docs/plans/{path}")
        assert "\nstatus: complete\n" in text.split("\n---\n")[0] + "\n", path
    readme = show(project, gen.branch, "docs/plans/core/README.md")
    assert readme.count("🟢") == 3 and "🔴" not in readme and "🟡" not in readme
    e3 = tasks["core/E03"]
    assert project.git.log(f"{e3.merged_commit}^..{e3.merged_commit}")[0].sha == e3.merged_commit
    touched = {
        f.path for f in project.git.diff_stat(f"{e3.merged_commit}^", e3.merged_commit).files
    }
    assert touched == {
        "core/writer.py",
        "docs/plans/core/03-epic-writer.md",
        "docs/plans/core/README.md",
    }

    # The prompt: the whole epic file, the module README, what each finished dependency merged.
    prompt = project.store.runs(task_id=e3.id)[-1].prompt
    assert (FIXTURES / "epics/core/03-epic-writer.md").read_text().strip() in prompt
    assert "The core of the toolkit: parsing and writing." in prompt
    e2 = tasks["core/E02"]
    assert f"- core/E02 (Parser): merged as {e2.merged_commit[:10]}; files: " in prompt
    assert "core/parser.py" in prompt
    assert "- core/E01 (Setup): done before this generation ran it" in prompt
    assert "GitHub issue: 42" in prompt

    listed = json.loads(cli(project, "tasks", "--json").stdout)
    row = next(r for r in listed if r["title"] == "Writer")
    assert row["source"] == {
        "format": "epics",
        "path": "docs/plans/core/03-epic-writer.md",
        "external_id": "core/E03",
    }
    assert row["gates"] == ["compiles"] and row["priority"] == 0
    assert next(r for r in listed if r["title"] == "Parser")["priority"] == 1
    table = cli(project, "tasks").stdout
    assert "cli/CLI02" in table

    check = cli(project, "plan", "check", "docs/plans")
    assert check.returncode == 0, check.stderr
    assert "no problem" in check.stdout


async def test_beads_from_plan_sources_run_and_export_round_trips(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [],
        measure="off",
        plan_sources=[{"path": ".beads/issues.jsonl", "format": "beads"}],
    )
    with_plan(project, "beads", ".")
    original = (project.root / ".beads/issues.jsonl").read_text()
    gen = start_generation(project, "g1")
    # Nothing imported yet: `run` reads plan_sources at the start of its cycle.
    assert project.store.list_tasks("g1") == []
    exported = cli(project, "tasks", "export", "--format", "beads")
    assert exported.returncode == 0 and exported.stdout == ""

    report = await Engine(project).run(cycles=1)
    assert (report.merged, report.failed) == (3, 0)
    landed = merged_in_dependency_order(project, gen.start_commit, gen.branch)
    assert [t.external_id for t in landed] == ["bd-2", "bd-3", "bd-4"]  # the parent last
    assert all(".beads/issues.jsonl" in touched_by(project, t) for t in landed)

    # On the generation branch, shoemaker's issues are closed; nothing else changed.
    after = show(project, gen.branch, ".beads/issues.jsonl")
    before_lines, after_lines = original.split("\n"), after.split("\n")
    assert after_lines[0] == before_lines[0]  # bd-1 was closed already
    for old, new in zip(before_lines[1:4], after_lines[1:4], strict=True):
        o, n = json.loads(old), json.loads(new)
        assert n["status"] == "closed" and n["close_reason"].startswith("done by shoemaker")
        assert {
            k: v
            for k, v in n.items()
            if k not in ("status", "updated_at", "closed_at", "close_reason")
        } == {k: v for k, v in o.items() if k not in ("status", "updated_at")}

    # Export writes the same file back: it already says what shoemaker did.
    out = project.root.parent / "exported.jsonl"
    exported = cli(project, "tasks", "export", "--format", "beads", str(out))
    assert exported.returncode == 0, exported.stderr
    assert out.read_text() == after
    # A second cycle's import of the edited file adds nothing.
    await Engine(project).run(cycles=1)
    assert len(project.store.list_tasks("g1")) == 4
    check = cli(project, "plan", "check", ".beads/issues.jsonl")
    assert check.returncode == 0, check.stderr


async def test_a_measure_proposals_file_imports_and_runs(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [], measure="off")
    (project.root / "plan.json").write_text(
        json.dumps(
            [
                {
                    "index": 0,
                    "title": "Add a",
                    "description": '<!-- rehearsal\nfiles: {a.py: "A = 1\\n"}\n-->',
                    "dependency": -1,
                },
                {
                    "index": 1,
                    "title": "Add b",
                    "description": '<!-- rehearsal\nfiles: {b.py: "B = 2\\n"}\n-->',
                    "dependency": 0,
                },
            ]
        )
    )
    project.git.commit_all(project.root, "plan")
    gen = start_generation(project, "g1")
    assert cli(project, "tasks", "import", "plan.json").returncode == 0
    report = await Engine(project).run(cycles=1)
    assert report.merged == 2
    landed = merged_in_dependency_order(project, gen.start_commit, gen.branch)
    assert [t.external_id for t in landed] == ["plan#0", "plan#1"]


async def test_needs_review_waits_for_a_person_then_writes_back(fast_tmp: Path) -> None:
    project = scripted(make_project(fast_tmp, [], measure="off"))
    epic = project.root / "docs/plans/core/epic-01-risky.md"
    epic.parent.mkdir(parents=True)
    epic.write_text(
        "---\nneeds_review: true\n---\n# Epic 01: Risky\n\n"
        '<!-- rehearsal\nfiles: {risky.py: "RISK = 1\\n"}\n-->\n'
    )
    project.git.commit_all(project.root, "plan")
    gen = start_generation(project, "g1")
    assert cli(project, "tasks", "import", "docs/plans").returncode == 0
    await Engine(project).run(cycles=1)
    (task,) = project.store.list_tasks("g1")
    assert task.state == TaskState.NEEDS_REVIEW and "needs_review" in task.reason
    assert "[core/E01]" in cli(project, "review").stdout
    outcome = await approve(project, gen, task.id)
    assert outcome.state == TaskState.DONE
    assert "status: complete" in show(project, gen.branch, "docs/plans/core/epic-01-risky.md")


async def test_a_broken_plan_source_is_reported_and_the_run_goes_on(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [],
            measure="off",
            plan_sources=[{"path": "docs/plans", "format": "epics"}, {"path": "plan.json"}],
        )
    )
    with_plan(project, "circular", "docs/plans")
    (project.root / "plan.json").write_text(
        json.dumps([{"index": 0, "title": "Add a", "description": "a", "dependency": -1}])
    )
    project.git.commit_all(project.root, "plan")
    start_generation(project, "g1")
    refused = cli(project, "tasks", "import", "docs/plans")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "dependency cycle: loop/E0" in refused.stderr
    assert "nothing was imported" in refused.stderr
    assert project.store.list_tasks("g1") == []

    report = await Engine(project).run(cycles=1)
    assert report.merged == 1  # the measure file's task; the circular plan added nothing
    notices = [
        e.message
        for _, e in project.store.events_after(0, limit=10_000)
        if isinstance(e, Notice) and e.level == "error"
    ]
    assert any(n.startswith("plan_sources: docs/plans/loop/epic-0") for n in notices)
    assert [t.external_id for t in project.store.list_tasks("g1")] == ["plan#0"]


async def test_a_master_plan_with_phases_gates_subagents_and_notes(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [], measure="off", max_retries=1)
    with_plan(project, "phases", "docs/plan")
    gen = start_generation(project, "g1")
    imported = cli(project, "tasks", "import", "docs/plan/master-plan.md")
    assert imported.returncode == 0, imported.stderr
    report = await Engine(project).run(cycles=1)
    assert (report.merged, report.failed) == (3, 0)
    tasks = {t.external_id: t for t in project.store.list_tasks("g1")}
    landed = merged_in_dependency_order(project, gen.start_commit, gen.branch)
    assert [t.external_id for t in landed] == [
        "master-plan/P1",
        "master-plan/P2",
        "master-plan/P3.1",
    ]

    # Phase 2 failed until its stream showed the required subagent.
    p2 = tasks["master-plan/P2"]
    runs = project.store.runs(task_id=p2.id)
    assert p2.attempts == 2 and len(runs) == 2
    assert "doc-sync-manager" in runs[1].prompt.split("## The previous attempt failed")[1]
    # The previous phase's notes reached the next phase's prompt.
    assert "The package exists." in runs[0].prompt
    # The phases' own gates ran, in the worktree and after the merge.
    gates = {(g.name, g.location) for g in project.store.gate_results(p2.id)}
    assert gates == {("core-imports", "worktree"), ("core-imports", "merged")}
    assert {g.name for g in project.store.gate_results(tasks["master-plan/P1"].id)} == {"compiles"}

    # Written back: status, checklists, the master plan's rows.
    for name in ("phase1-setup.md", "phase2-core.md", "phase3.1-report.md"):
        text = show(project, gen.branch, f"docs/plan/{name}")
        tasks_section = text.split("## Tasks")[1]
        assert "**Status:** Complete" in text and "- [ ]" not in tasks_section, name
        assert "- [x]" in tasks_section
    master = show(project, gen.branch, "docs/plan/master-plan.md")
    assert master.count("| Complete |") == 3 and "Pending |" not in master
    # Each phase's write-back is inside its own (one) commit.
    for task in landed:
        assert task.origin is not None
        assert {task.origin.path, "docs/plan/master-plan.md"} <= touched_by(project, task)
    listed = {
        r["source"]["external_id"]: r for r in json.loads(cli(project, "tasks", "--json").stdout)
    }
    assert listed["master-plan/P2"]["gates"] == ["core-imports"]  # the phase's own gate
    assert listed["master-plan/P2"]["source"]["path"] == "docs/plan/phase2-core.md"
    assert listed["master-plan/P2"]["extras"]["required_agents"] == ["doc-sync-manager"]
    check = cli(project, "plan", "check", "docs/plan/master-plan.md")
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("fmt", ["epics", "phases", "beads"])
def test_the_demo_runs_from_a_plan_file(fast_tmp: Path, fmt: str) -> None:
    demo = fast_tmp / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "shoemaker",
            "demo",
            "--headless",
            "--plan",
            fmt,
            "--dir",
            str(demo),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "6/6" in proc.stdout
    git = Git(demo)
    log = [c for c in git.log("demo-start..demo-finished") if "Shoemaker-Task" in c.trailers]
    assert len(log) == 6 and all(c.trailers["Shoemaker-Source"].startswith(f"{fmt}:") for c in log)
    # The plan on the merged branch says what was done.
    plan = {
        "epics": "docs/plans/textkit/epic-06-document-the-api-in-the-readme.md",
        "phases": "docs/plan/master-plan.md",
        "beads": ".beads/issues.jsonl",
    }[fmt]
    text = (demo / plan).read_text()
    assert {"epics": "status: complete", "phases": "| Complete |", "beads": '"closed"'}[fmt] in text


async def test_an_epic_whose_agent_changes_nothing_still_lands_its_status(fast_tmp: Path) -> None:
    project = scripted(make_project(fast_tmp, [], measure="off"))
    epic = project.root / "docs/plans/core/epic-01-noop.md"
    epic.parent.mkdir(parents=True)
    epic.write_text("# Epic 01: Nothing to do\n\n<!-- rehearsal\ntext: it was done already\n-->\n")
    project.git.commit_all(project.root, "plan")
    gen = start_generation(project, "g1")
    assert cli(project, "tasks", "import", "docs/plans").returncode == 0
    report = await Engine(project).run(cycles=1)
    (task,) = project.store.list_tasks("g1")
    assert task.state == TaskState.DONE and report.merged == 1
    changed = project.git.diff_stat(f"{task.merged_commit}^", task.merged_commit).files
    assert [f.path for f in changed] == ["docs/plans/core/epic-01-noop.md"]
    assert show(project, gen.branch, "docs/plans/core/epic-01-noop.md").startswith(
        "---\nstatus: complete\n---\n"
    )


async def test_an_epic_added_while_the_generation_runs_joins_at_the_next_cycle(
    fast_tmp: Path,
) -> None:
    project = scripted(
        make_project(
            fast_tmp, [], measure="off", plan_sources=[{"path": "docs/plans", "format": "epics"}]
        )
    )
    plans = project.root / "docs/plans/core"
    plans.mkdir(parents=True)
    (plans / "epic-01-a.md").write_text(
        '# Epic 01: A\n\n<!-- rehearsal\nfiles: {a.py: "A = 1\\n"}\n-->\n'
    )
    project.git.commit_all(project.root, "plan")
    gen = start_generation(project, "g1")
    first = await Engine(project).run(cycles=1)
    assert first.merged == 1
    # A person writes the next epic into their checkout while the generation is open.
    (plans / "epic-02-b.md").write_text(
        '# Epic 02: B\n\n<!-- rehearsal\nfiles: {b.py: "B = 2\\n"}\n-->\n'
    )
    second = await Engine(project).run(cycles=1)
    assert second.merged == 1
    tasks = {t.external_id: t for t in project.store.list_tasks("g1")}
    assert list(tasks) == ["core/E01", "core/E02"]
    assert tasks["core/E02"].depends_on == [tasks["core/E01"].id]  # implicit, across cycles
    assert all(t.state == TaskState.DONE for t in tasks.values())
    landed = merged_in_dependency_order(project, gen.start_commit, gen.branch)
    assert [t.external_id for t in landed] == ["core/E01", "core/E02"]
    assert "status: complete" in show(project, gen.branch, "docs/plans/core/epic-01-a.md")
    # The new epic is the person's uncommitted file: their checkout is left as it is.
    assert (plans / "epic-02-b.md").read_text().startswith("# Epic 02: B\n")
