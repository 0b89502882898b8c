"""The lifecycle verbs through the command line: start, run, pause, resume, stop, reset, list,
switch; each refusal exits 2, says why and changes nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from agents import wait_for_file
from projects import cli, make_project, task
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import pause_generation, start_generation
from shoemaker.engine.project import Project, RunLock
from shoemaker.events import AgentStarted, Event
from shoemaker.model import GenerationState, TaskState


def refs(project: Project) -> str:
    """Every ref and what HEAD is: a refusal must leave this exactly as it was."""
    git = ["git", "-C", str(project.root)]
    listing = subprocess.run(
        [*git, "for-each-ref", "--format=%(refname) %(objectname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    head = subprocess.run(
        [*git, "symbolic-ref", "-q", "HEAD"], capture_output=True, text=True
    ).stdout
    return listing + head


def state(project: Project, name: str) -> str:
    return str(project.store.get_generation(name).state)


def test_start_tags_the_base_and_records_the_branch_it_started_from(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    project.git.create_branch("develop", "HEAD")
    project.git.checkout("develop")
    proc = cli(project, "start", "g1")
    assert proc.returncode == 0, proc.stderr
    assert "base develop" in proc.stdout
    gen = project.store.get_generation("g1")
    assert gen.base_branch == "develop" and project.git.current_branch() == "generation-g1"
    assert project.git.rev_parse("g1-start^{commit}") == project.git.rev_parse("develop")


def test_start_refuses_a_dirty_tree_and_a_running_project(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    before = refs(project)
    (project.root / "app.py").write_text("VALUE = 2\n")
    proc = cli(project, "start", "g1")
    assert proc.returncode == 2 and "uncommitted changes (app.py)" in proc.stderr
    assert ".gitignore" not in proc.stderr
    subprocess.run(["git", "-C", str(project.root), "checkout", "--", "."], check=True)
    # An untracked file (a .env not ignored yet) is refused too, saying how to go on.
    (project.root / ".env").write_text("TOKEN=x\n")
    proc = cli(project, "start", "g1")
    assert proc.returncode == 2 and "uncommitted changes (.env)" in proc.stderr
    assert "(or ignore untracked files in .gitignore) before you start" in proc.stderr
    (project.root / ".env").unlink()
    lock = RunLock(project)
    assert lock.acquire()
    try:
        proc = cli(project, "start", "g1")
    finally:
        lock.release()
    assert proc.returncode == 2 and "a run is in progress" in proc.stderr
    assert refs(project) == before and project.store.list_generations() == []


def test_start_can_reset_the_sources_keeping_some_and_writing_seeds(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [],
        source_dirs=["src"],
        reset_sources=True,
        reset_keep=["src/keep/**"],
        seed_files={"src/main.py": "templates/main.py.j2"},
    )
    for rel, text in {
        "src/old.py": "OLD = 1\n",
        "src/keep/conf.py": "KEEP = 1\n",
        "templates/main.py.j2": "# generation {{ generation }} from {{ base_branch }}\n",
    }.items():
        (project.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (project.root / rel).write_text(text)
    project.git.commit_all(project.root, "sources")
    proc = cli(project, "start", "fresh")
    assert proc.returncode == 0, proc.stderr
    root = project.root
    assert not (root / "src/old.py").exists() and (root / "src/keep/conf.py").exists()
    assert (root / "src/main.py").read_text() == "# generation fresh from main\n"
    assert project.git.dirty_paths() == []
    assert (root / "app.py").exists()  # outside source_dirs
    project.git.checkout("main")
    assert (root / "src/old.py").exists()  # the base is untouched


def test_a_bad_seed_template_refuses_start_and_changes_nothing(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [], reset_sources=True, seed_files={"src/x.py": "missing.j2"})
    before = refs(project)
    proc = cli(project, "start", "g1")
    assert proc.returncode == 2 and "seed_files: src/x.py" in proc.stderr
    assert refs(project) == before and project.store.list_generations() == []


def test_stop_refuses_a_conflicting_merge_and_changes_nothing(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A", files={"app.py": "VALUE = 2\n"})])
    start_generation(project, "g1")
    assert cli(project, "run").returncode == 0
    project.git.checkout("main")
    (project.root / "app.py").write_text("VALUE = 3\n")
    project.git.commit_all(project.root, "a change on main")
    project.git.checkout("generation-g1")
    before = refs(project)
    proc = cli(project, "stop")
    assert proc.returncode == 2
    assert "would conflict in app.py" in proc.stderr and "resolve that on main" in proc.stderr
    assert refs(project) == before and state(project, "g1") == "active"


def test_stop_merges_tags_and_cleans_up(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A", files={"a.py": "A = 1\n"})], cleanup_dirs=["build"])
    start_generation(project, "g1")
    assert cli(project, "run").returncode == 0
    (project.root / "build").mkdir()
    (project.root / "build" / "out.txt").write_text("x")
    with (project.root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("build/\n")
    proc = cli(project, "stop")
    assert proc.returncode == 0, proc.stderr
    git = project.git
    assert git.current_branch() == "main" and (project.root / "a.py").exists()
    assert set(git.tags("g1-*")) == {"g1-start", "g1-finished", "g1-merged"}
    assert not git.ref_exists("refs/heads/generation-g1")
    assert not (project.root / "build").exists()
    assert state(project, "g1") == "stopped"


def test_reset_abandons_keeps_the_tags_and_removes_branches_and_worktrees(
    fast_tmp: Path,
) -> None:
    project = make_project(
        fast_tmp,
        [task("A", files={"a.py": "A = 1\n"}), task("B", files={"b.py": "B = 1\n"})],
        cleanup_dirs=["build"],
    )
    start_generation(project, "g1")
    assert cli(project, "run").returncode == 0
    git = project.git
    head = git.rev_parse("generation-g1")
    # Work that never merged, and a worktree left on it.
    git.create_branch("task/g1-9", "generation-g1")
    git.add_worktree(project.worktree_root / "g1-9", "attempt/g1-1-1", "generation-g1")
    (project.root / "build").mkdir()
    with (project.root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("build/\n")

    (project.root / "a.py").write_text("A = 2\n")
    before = refs(project)
    proc = cli(project, "reset")
    assert proc.returncode == 2 and "uncommitted changes (a.py)" in proc.stderr
    assert refs(project) == before
    subprocess.run(["git", "-C", str(project.root), "checkout", "--", "."], check=True)

    proc = cli(project, "reset")
    assert proc.returncode == 0, proc.stderr
    assert "tagged g1-abandoned" in proc.stdout
    assert git.rev_parse("g1-abandoned^{commit}") == head
    assert git.current_branch() == "main" and not (project.root / "a.py").exists()
    assert git.branches() == ["main", "task/g1-9"]  # not a task of g1's: not its to remove
    assert [w.path for w in git.worktrees()] == [project.root]
    assert set(git.tags("g1-*")) == {"g1-start", "g1-abandoned"}
    assert not (project.root / "build").exists()
    assert state(project, "g1") == "abandoned"
    assert cli(project, "run").returncode == 2  # nothing open any more


def test_switch_moves_between_open_generations_and_refuses_while_running(
    fast_tmp: Path,
) -> None:
    project = make_project(fast_tmp, [])
    start_generation(project, "g1")
    project.git.checkout("main")
    start_generation(project, "g2")
    listing = json.loads(cli(project, "list", "--json").stdout)
    assert [(g["name"], g["state"]) for g in listing] == [("g1", "active"), ("g2", "active")]

    assert cli(project, "switch", "g1").returncode == 0
    assert project.git.current_branch() == "generation-g1"
    proc = cli(project, "tasks")
    assert proc.returncode == 0 and "generation g1" in proc.stdout

    lock = RunLock(project)
    assert lock.acquire()
    try:
        proc = cli(project, "switch", "g2")
    finally:
        lock.release()
    assert proc.returncode == 2 and "a run is in progress" in proc.stderr
    assert project.git.current_branch() == "generation-g1"

    (project.root / "app.py").write_text("VALUE = 9\n")
    proc = cli(project, "switch", "g2")
    assert proc.returncode == 2 and "uncommitted changes" in proc.stderr
    assert project.git.current_branch() == "generation-g1"
    proc = cli(project, "switch", "nope")
    assert proc.returncode == 2 and "no generation named 'nope'" in proc.stderr


def test_several_open_generations_and_none_checked_out_asks_for_switch(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    start_generation(project, "g1")
    project.git.checkout("main")
    start_generation(project, "g2")
    project.git.checkout("main")
    proc = cli(project, "run")
    assert proc.returncode == 2 and "shoemaker switch NAME" in proc.stderr


def test_pause_marks_an_idle_generation_and_resume_goes_on(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A", files={"a.py": "A = 1\n"})])
    start_generation(project, "g1")
    proc = cli(project, "pause")
    assert proc.returncode == 0 and "paused" in proc.stdout
    assert state(project, "g1") == "paused"
    assert "already paused" in cli(project, "pause").stdout
    proc = cli(project, "resume")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state(project, "g1") == "active"
    assert [t.state for t in project.store.list_tasks("g1")] == [TaskState.DONE]


async def test_pause_from_another_process_starts_no_new_task(fast_tmp: Path) -> None:
    # Each agent works until the test lets it finish: the pause is written while the first
    # one works, however busy the machine.
    go = fast_tmp / "go"
    project = make_project(
        fast_tmp,
        [task(n, files={f"{n}.py": "X = 1\n"}, run=[wait_for_file(go)]) for n in ("a", "b", "c")],
    )
    start_generation(project, "g1")
    started: list[AgentStarted] = []
    asked = asyncio.Event()

    def listen(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.phase == "stitch":
            started.append(event)
            asked.set()

    project.bus.add_listener(listen)
    run = asyncio.create_task(Engine(project, max_parallel=1).run())
    await asked.wait()
    # What `shoemaker pause` in another process does: it writes the request to the store.
    message = await asyncio.to_thread(pause_generation, project)
    assert "pause requested" in message
    go.touch()
    report = await run
    assert report.stopped_because == "paused" and len(started) == 1
    assert state(project, "g1") == GenerationState.PAUSED
    states = sorted(t.state for t in project.store.list_tasks("g1"))
    assert states == [TaskState.DONE, TaskState.READY, TaskState.READY]


@pytest.mark.parametrize(
    ("settings", "why", "done"),
    [
        ({"max_tasks": 2}, "max_tasks reached (2 tasks done)", 2),
        ({"stall_cycles": 1}, "1 cycle(s) in a row changed no line", 3),
    ],
)
async def test_run_stop_rules(
    fast_tmp: Path, settings: dict[str, int], why: str, done: int
) -> None:
    changes = "max_tasks" in settings
    proposals = [
        task(n, files={f"{n}.py": "X = 1\n"}) if changes else task(n, text="nothing to do")
        for n in ("a", "b", "c")
    ]
    project = make_project(fast_tmp, proposals, **settings)
    start_generation(project, "g1")
    report = await Engine(project).run(cycles=5)
    assert report.stopped_because == why
    tasks = project.store.list_tasks("g1")
    assert sum(1 for t in tasks if t.state == TaskState.DONE) == done
