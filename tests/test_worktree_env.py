"""Worktrees that behave like the person's checkout: copied local files that are never
committed and whose secrets are redacted, setup run once per worktree, a port block per
worktree, and the collection of what no open generation owns."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agents import wait_for_file
from projects import check, cli, make_project, scripted, task
from scripted import MEASURE
from shoemaker.config import Config
from shoemaker.engine.engine import Engine
from shoemaker.engine.furnish import PORT_ENV, copy_into
from shoemaker.engine.gc import find_orphans
from shoemaker.engine.generation import start_generation
from shoemaker.engine.ports import port_base
from shoemaker.engine.project import Project
from shoemaker.engine.recovery import recover
from shoemaker.engine.task_detail import gate_verdict, load_task_detail
from shoemaker.errors import Failed
from shoemaker.events import AgentStarted, Event, Notice
from shoemaker.git import Git
from shoemaker.model import GenerationState, TaskState
from shoemaker.secrets import collect_secrets

SECRET = "sk-live-0123456789abcdef"
DB_PASSWORD = "hunter2-correct-horse"
SHOW_PORT = f"import os; print('AGENT-PORT', os.environ['{PORT_ENV}'])"
AGENT_COMMITS = [
    "git add -A",
    "git -c user.name=agent -c user.email=agent@example.com commit -q -m agent-work",
]


def _tree(git: Git, ref: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", ref],
        cwd=git.root,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def _with_env_files(root: Path) -> None:
    """The person's untracked local files, not in any .gitignore."""
    (root / ".env").write_text(
        f"API_KEY={SECRET}\nDATABASE_URL=postgres://app:{DB_PASSWORD}@localhost/app\nDEBUG=1\n"
    )
    (root / "config").mkdir()
    (root / "config" / "local.json").write_text('{"token": "tok-local-987654321"}\n')


async def test_copied_files_reach_the_agent_and_are_never_committed(fast_tmp: Path) -> None:
    seen = fast_tmp / "seen"
    gate = check(
        "sees-env",
        "import os, pathlib; "
        "assert pathlib.Path('.env').read_text().startswith('API_KEY='); "
        "assert pathlib.Path('config/local.json').is_file(); "
        f"open({str(seen)!r}, 'a').write(os.environ['{PORT_ENV}'] + '\\n')",
    )
    project = make_project(
        fast_tmp,
        [
            # The agent commits everything it sees itself, as agents do.
            task("Merged", files={"a.py": "A = 1\n"}, run=["cat .env", *AGENT_COMMITS]),
            task(
                "Reviewed",
                files={"migrations/b.py": "B = 2\n"},
                run=[f"{sys.executable} -c {SHOW_PORT!r}", *AGENT_COMMITS],
            ),
        ],
        worktree_copy=[".env", "config/*.json"],
        gates=[gate],
        review_globs=["migrations/**"],
    )
    start_generation(project, "g")
    _with_env_files(project.root)
    exclude = project.git.common_dir / "info" / "exclude"
    shared_before = exclude.read_text()
    project = Project.open(project.root)  # the copied files' secrets are known from here on
    await Engine(project).run(cycles=1)

    tasks = {t.title: t for t in project.store.list_tasks("g")}
    assert tasks["Merged"].state == TaskState.DONE, tasks["Merged"].reason
    assert tasks["Reviewed"].state == TaskState.NEEDS_REVIEW, tasks["Reviewed"].reason
    # Neither the generation branch nor the task branch waiting for review has them.
    for ref in ("generation-g", tasks["Reviewed"].branch):
        files = _tree(project.git, ref)
        assert ".env" not in files and "config/local.json" not in files, (ref, files)
    assert "a.py" in _tree(project.git, "generation-g")
    assert "migrations/b.py" in _tree(project.git, tasks["Reviewed"].branch)
    # The gates saw the files (and a port base) in both worktrees, and after the merge.
    assert len(seen.read_text().split()) == 3
    # The person's shared exclude file is as it was; the person's files too.
    assert exclude.read_text() == shared_before
    assert (project.root / ".env").read_text().startswith(f"API_KEY={SECRET}")
    # The agent printed the file: what was stored of it is redacted.
    run = next(r for r in project.store.runs(task_id=tasks["Merged"].id) if r.phase == "stitch")
    transcript = project.store.transcript(run.id).decode()
    assert "[redacted .env API_KEY]" in transcript
    assert SECRET not in transcript and DB_PASSWORD not in transcript
    # The agent process had its worktree's port block.
    run = next(r for r in project.store.runs(task_id=tasks["Reviewed"].id) if r.phase == "stitch")
    assert "AGENT-PORT 2" in project.store.transcript(run.id).decode()


def test_secret_looking_values_of_copied_files_are_redacted(fast_tmp: Path) -> None:
    root = fast_tmp / "repo"
    root.mkdir()
    _with_env_files(root)
    found = collect_secrets(root, Config(worktree_copy=[".env", "config/*.json"]), environ={})
    assert found[SECRET] == ".env API_KEY"
    assert found[DB_PASSWORD] == ".env URL password"
    assert found["tok-local-987654321"] == "config/local.json token"
    assert "1" not in found


def test_a_glob_that_matches_a_tracked_file_is_refused(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A")], worktree_copy=["*.py"])
    done = cli(project, "doctor")
    assert done.returncode != 0
    said = " ".join(done.stdout.split())
    assert "worktree_copy: '*.py' matches app.py, which git tracks" in said


def test_a_glob_that_leaves_the_repository_is_refused(fast_tmp: Path) -> None:
    outside = fast_tmp / "outside"
    outside.mkdir()
    (outside / "x.env").write_text("A=1\n")
    project = make_project(fast_tmp, [task("A")], worktree_copy=["linked/*.env"])
    (project.root / "linked").symlink_to(outside)
    done = cli(project, "doctor")
    said = " ".join(done.stdout.split())
    assert "worktree_copy: 'linked/*.env' matches linked/x.env, which lies outside" in said
    config = project.root / "configuration.yaml"
    config.write_text(config.read_text().replace("linked/*.env", "../secrets/.env"))
    done = cli(project, "list")  # `tasks` reads only the settings that find the store
    assert done.returncode == 2
    assert "worktree_copy: '../secrets/.env' must stay inside the repository" in done.stderr


def test_a_copy_never_follows_a_link_the_task_branch_made(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [], worktree_copy=["config/local.json"])
    git, outside = project.git, fast_tmp / "outside"
    outside.mkdir()
    git.create_branch("evil", "main")
    wt = fast_tmp / "wt"
    git.add_worktree(wt, "task/evil-1", "evil")
    (wt / "config").symlink_to(outside)
    git.commit_all(wt, "a link out")
    (project.root / "config").mkdir()
    (project.root / "config" / "local.json").write_text("{}\n")
    with pytest.raises(Failed, match="leads outside the worktree"):
        copy_into(project, wt)
    assert list(outside.iterdir()) == []


def _setup_script(counter: Path, fail: bool = False) -> list[str]:
    code = (
        "import os, pathlib, sys; "
        f"open({str(counter)!r}, 'a').write(os.getcwd() + ' ' + os.environ['{PORT_ENV}'] + '\\n'); "
        "print('installing dependencies'); "
        "pathlib.Path('node_modules').mkdir(); "
        "pathlib.Path('node_modules/lib.js').write_text('x'); "
        + ("print('boom: the registry is unreachable'); sys.exit(3)" if fail else "")
    )
    return [sys.executable, "-c", code]


async def test_setup_runs_once_per_worktree_and_its_output_is_kept(fast_tmp: Path) -> None:
    counter = fast_tmp / "setups"
    deps = check("deps", "import pathlib; assert pathlib.Path('node_modules/lib.js').is_file()")
    project = scripted(
        make_project(
            fast_tmp,
            [
                task(f"T{i}", [i - 1] if i else [], files={f"t{i}.py": f"T = {i}\n"})
                for i in range(3)
            ],
            worktree_setup=[_setup_script(counter)],
            gates=[deps],
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    tasks = project.store.list_tasks("g")
    assert [t.state for t in tasks] == [TaskState.DONE] * 3, [t.reason for t in tasks]
    # One worktree served the three tasks in turn: set up once, its dependencies kept.
    runs = [r for r in project.store.runs(generation="g") if r.phase == "stitch"]
    assert len({r.cwd for r in runs}) == 1
    setups = [line.split()[0] for line in counter.read_text().splitlines()]
    assert setups.count(runs[0].cwd) == 1
    # Each merge's gates ran in a new worktree of the merge commit: set up as well.
    assert sorted(Path(s).name for s in setups if s != runs[0].cwd) == [
        f"verify-g-{t.id}" for t in tasks
    ]
    assert "node_modules/lib.js" not in _tree(project.git, "generation-g")
    recorded = [g for g in project.store.gate_results(tasks[1].id) if g.location == "setup"]
    assert len(recorded) == 1 and recorded[0].passed  # its merge's worktree; its own was ready
    assert "installing dependencies" in recorded[0].output_tail
    log = project.state_dir / "setup" / f"{Path(runs[0].cwd).name}.log"
    assert "installing dependencies" in log.read_text()


async def test_a_failing_setup_fails_the_attempt_with_its_output(fast_tmp: Path) -> None:
    counter = fast_tmp / "setups"
    project = scripted(
        make_project(
            fast_tmp,
            [task("A", files={"a.py": "A = 1\n"})],
            worktree_setup=[_setup_script(counter, fail=True)],
            max_retries=0,
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (failed,) = project.store.list_tasks("g")
    assert failed.state == TaskState.FAILED
    assert "worktree setup `" in failed.reason and "exited 3" in failed.reason
    assert "boom: the registry is unreachable" in failed.reason
    # The task screen lists the setup with its output.
    (row,) = load_task_detail(project, failed.id).gates
    assert (row.where, row.passed, row.exit_code) == ("setup", False, 3)
    assert "boom: the registry is unreachable" in row.output_tail
    assert gate_verdict(row.name, row.where, row.passed, row.exit_code).startswith(
        f"» worktree: setup: {sys.executable} -c"
    )
    # No agent ran in a worktree that was not set up, and that worktree is gone.
    assert [r for r in project.store.runs(generation="g") if r.phase == "stitch"] == []
    assert [w.path for w in project.git.worktrees()] == [project.root]


async def test_parallel_tasks_get_distinct_port_blocks(fast_tmp: Path) -> None:
    # Both agents work until both have started: neither gives its worktree back to the
    # other first, however busy the machine.
    both = fast_tmp / "both-started"
    project = scripted(
        make_project(
            fast_tmp,
            [
                task(f"T{i}", files={f"t{i}.py": f"T = {i}\n"}, run=[wait_for_file(both)])
                for i in range(2)
            ],
            max_parallel=2,
        )
    )
    started: list[AgentStarted] = []

    def listen(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id is not None:
            started.append(event)
            if len(started) == 2:
                both.touch()

    project.bus.add_listener(listen)
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    calls = [c for c in project.runner.calls if c.key is not None and c.key != MEASURE]  # type: ignore[attr-defined]
    by_worktree = {c.spec.cwd: int(c.spec.env[PORT_ENV]) for c in calls}
    assert len(by_worktree) == 2, by_worktree
    first, second = sorted(by_worktree.values())
    assert second - first >= 100


def test_a_port_block_in_use_is_skipped_and_kept_for_the_worktree(fast_tmp: Path) -> None:
    a, b = fast_tmp / "a", fast_tmp / "b"
    a.mkdir()
    b.mkdir()
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        start = taken - 5
        first = port_base(a, start, 10)
        assert first > taken  # the block holding the listener was passed over
    assert port_base(a, start, 10) == first  # a worktree keeps its block
    assert port_base(b, start, 10) not in (first,)  # and nobody else gets it


def _generations(fast_tmp: Path) -> Project:
    """A closed generation's leftovers beside an open generation's work and a person's own
    branch and worktree."""
    project = make_project(fast_tmp, [])
    git, store = project.git, project.store
    start_generation(project, "old")
    git.checkout("main")
    store.set_generation_state("old", GenerationState.ABANDONED, "reset")
    start_generation(project, "new")
    root = project.worktree_root
    root.mkdir(parents=True, exist_ok=True)
    git.add_worktree(root / "old-1", "task/old-1", "main")
    git.create_branch("attempt/old-2-1", "main")
    (root / "old-3").mkdir()
    git.add_worktree(root / "new-1", "task/new-1", "main")
    git.create_branch("attempt/new-2-1", "main")
    git.create_branch("task/mine", "main")
    git.add_worktree(fast_tmp / "elsewhere", "task/old-9", "main")  # outside shoemaker's dir
    return project


def test_gc_lists_only_orphans_and_removes_them_with_yes(fast_tmp: Path) -> None:
    project = _generations(fast_tmp)
    git, root = project.git, project.worktree_root
    orphans = find_orphans(project)
    assert [p for p, _ in orphans.worktrees] == [root / "old-1"]
    # task/old-9 is checked out in a worktree outside shoemaker's directory: left alone.
    assert sorted(b for b, _ in orphans.branches) == ["attempt/old-2-1", "task/old-1"]
    assert [p for p, _ in orphans.directories] == [root / "old-3"]

    listed = cli(project, "gc")
    assert listed.returncode == 0, listed.stderr
    assert "task/old-1" in listed.stdout and "4 belong to no open generation" in listed.stdout
    assert (root / "old-1").is_dir() and git.ref_exists("refs/heads/attempt/old-2-1")

    removed = cli(project, "gc", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not (root / "old-1").exists() and not (root / "old-3").exists()
    assert not git.ref_exists("refs/heads/task/old-1")
    assert not git.ref_exists("refs/heads/attempt/old-2-1")
    # What the open generation owns, and the person's own, stay.
    for branch in ("task/new-1", "attempt/new-2-1", "task/mine", "task/old-9", "generation-new"):
        assert git.ref_exists(f"refs/heads/{branch}"), branch
    kept = {project.root, root / "new-1", fast_tmp / "elsewhere"}
    assert {w.path for w in git.worktrees()} == kept


def test_recovery_warns_when_orphans_pile_up(fast_tmp: Path) -> None:
    project = _generations(fast_tmp)
    notices: list[Event] = []
    project.bus.add_listener(notices.append)
    recover(project, project.store.get_generation("new"))
    assert not [n for n in notices if isinstance(n, Notice) and "shoemaker gc" in n.message]

    count = find_orphans(project).count
    assert count >= 2
    lower = project.config.model_copy(update={"gc_warn_threshold": count - 1})
    strict = Project.open(project.root, lower)
    strict.bus.add_listener(notices.append)
    recover(strict, strict.store.get_generation("new"))
    (warning,) = [n for n in notices if isinstance(n, Notice) and "shoemaker gc" in n.message]
    assert warning.level == "warning"
    assert warning.message.startswith(f"recovery: {count} worktrees, branches and directories")


@pytest.mark.parametrize("bad", [["/etc/passwd"], [".git/config"], [""]])
def test_bad_copy_globs_are_refused_by_the_configuration(bad: list[str]) -> None:
    with pytest.raises(ValueError, match="must stay inside the repository"):
        Config(worktree_copy=bad)


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
async def test_setup_runs_in_the_agents_sandbox(tmp_path: Path) -> None:
    # On the disk, not tmpfs: bwrap gives the sandbox a /dev (and /dev/shm) of its own.
    code = (
        "import os, pathlib; "
        f"print('PORTS', os.environ['{PORT_ENV}']); "
        "pathlib.Path('deps').mkdir(); "
        f"p = pathlib.Path({str(tmp_path / 'repo' / 'pwned.txt')!r})\n"
        "try:\n    p.write_text('x'); print('WROTE')\n"
        "except OSError as exc:\n    print('REFUSED', exc.strerror)"
    )
    project = scripted(
        make_project(
            tmp_path,
            [task("A", files={"a.py": "A = 1\n"})],
            sandbox="bwrap",
            worktree_setup=[[sys.executable, "-c", code]],
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (done,) = project.store.list_tasks("g")
    assert done.state == TaskState.DONE, done.reason
    (setup,) = [g for g in project.store.gate_results(done.id) if g.location == "setup"]
    assert "REFUSED Read-only file system" in setup.output_tail, setup.output_tail
    assert not (project.root / "pwned.txt").exists()
    (call,) = [c for c in project.runner.calls if c.key != MEASURE]  # type: ignore[attr-defined]
    assert f"PORTS {call.spec.env[PORT_ENV]}" in setup.output_tail
