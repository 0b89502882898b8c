"""Recovery after shoemaker dies, piece by piece: stale agents, half-done merges, merges not yet
recorded, the run lock. Real SIGKILLs of whole runs are in test_chaos.py."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agents import REHEARSAL, STREAM_ARGS, new_token, processes_with_token, stitch_prompt
from projects import check, cli, make_project, task
from shoemaker.engine.agent_call import RUN_MARKER, run_marker
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project, RunLock
from shoemaker.engine.recovery import recover
from shoemaker.errors import GenerationError
from shoemaker.git import IDENTITY_ENV
from shoemaker.model import Task, TaskState, task_branch
from shoemaker.store import NewTask


def test_a_stale_agent_is_killed_and_its_task_requeued(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A")])
    gen = start_generation(project, "g")
    (t,), _ = project.store.add_tasks("g", [NewTask("A")], 1, "test")
    token = new_token()
    argv = [*REHEARSAL, *STREAM_ARGS]
    agent = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=fast_tmp,
        env={**os.environ, "IS_SANDBOX": "1", "SHOEMAKER_TEST_TOKEN": token},
        start_new_session=True,
        text=True,
    )
    assert agent.stdin and agent.stdout
    agent.stdin.write(stitch_prompt(outcome="hang"))
    agent.stdin.close()
    agent.stdout.readline()  # it runs
    project.store.transition_task(t.id, TaskState.RUNNING, "attempt 1", count_attempt=True)

    def unfinished_run(pid: int) -> int:
        run = project.store.start_run(
            generation="g",
            task_id=t.id,
            phase="stitch",
            attempt=1,
            prompt="p",
            argv=argv,
            env_names=[],
            cwd=str(fast_tmp),
        )
        project.store.set_run_pid(run, pid)
        return run

    run = unfinished_run(agent.pid)
    # A run whose pid now belongs to some other program is left alone.
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    decoy = unfinished_run(other.pid)

    report = recover(project, gen)
    assert report.killed == [agent.pid] and agent.wait(timeout=10) == -signal.SIGKILL
    assert other.poll() is None
    other.kill()
    other.wait()
    assert report.requeued == [t.id] and project.store.get_task(t.id).state == TaskState.READY
    assert sorted(report.closed_runs) == sorted([run, decoy])
    assert project.store.get_run(run).reason.startswith("interrupted")
    assert processes_with_token(token) == []


def landed_before_a_crash(project: Project, files: dict[str, str]) -> tuple[Task, str]:
    """A task whose squash commit landed, its branch still there, and then shoemaker died
    before it recorded the merge or ran the post-merge gates."""
    (t,), _ = project.store.add_tasks("g", [NewTask("A")], 1, "test")
    branch = task_branch("g", t.id)
    project.store.transition_task(
        t.id, TaskState.RUNNING, count_attempt=True, branch=branch, worktree="gone"
    )
    for state in (TaskState.VERIFYING, TaskState.MERGING):
        project.store.transition_task(t.id, state)
    project.git.create_branch(branch, "HEAD")
    for name, text in files.items():
        (project.root / name).write_text(text)
    sha = project.git.commit_all(project.root, "A (task #1)", "", {"Shoemaker-Task": str(t.id)})
    assert sha is not None
    return project.store.get_task(t.id), sha


async def test_a_landed_merge_is_recorded_not_rerun(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [], gates=[check("post", "print('gate ran')")])
    gen = start_generation(project, "g")
    t, sha = landed_before_a_crash(project, {"a.py": "A = 1\nB = 2\n"})
    report = recover(project, gen)
    assert report.landed == {t.id: sha}
    assert project.store.get_task(t.id).state == TaskState.MERGING  # its gates have not run
    run = await Engine(project).run(cycles=1)
    done = project.store.get_task(t.id)
    assert done.state == TaskState.DONE and done.merged_commit == sha
    assert [o.task_id for o in run.outcomes] == [t.id] and run.merged == 1
    assert [(g.location, g.passed) for g in project.store.gate_results(t.id)] == [("merged", True)]
    metrics = project.store.metrics(t.id)
    assert metrics is not None and metrics.merge_sha == sha and metrics.insertions == 2
    assert project.git.log(f"{gen.start_commit}..{gen.branch}")[0].sha == sha  # nothing rerun
    assert not project.git.ref_exists(f"refs/heads/{t.branch}")


async def test_a_landed_merge_whose_gate_fails_after_recovery_is_reverted(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [],
        gates=[check("no-b", "import sys; sys.exit('B =' in open('a.py').read())")],
        max_retries=0,
    )
    gen = start_generation(project, "g")
    (project.root / "a.py").write_text("A = 1\n")
    project.git.commit_all(project.root, "a.py")
    t, sha = landed_before_a_crash(project, {"a.py": "A = 1\nB = 2\n"})
    await Engine(project).run(cycles=1)
    failed = project.store.get_task(t.id)
    assert failed.state == TaskState.FAILED and "after the merge" in failed.reason
    commits = project.git.log(f"{gen.start_commit}..{gen.branch}")
    assert commits[0].trailers.get("Shoemaker-Reverts-Task") == str(t.id)
    assert commits[1].sha == sha
    assert (project.root / "a.py").read_text() == "A = 1\n"


def _squash_left_half_done(project: Project, trailer: str) -> Task:
    """A task ``merging``, its squash merge staged in the main checkout and not committed:
    what shoemaker leaves when it dies inside ``git merge --squash``. Its commit carries
    ``trailer`` (``Shoemaker-Task: ID`` when the task is shoemaker's)."""
    (t,), _ = project.store.add_tasks("g", [NewTask("B")], 1, "test")
    branch = task_branch("g", t.id)
    project.store.transition_task(t.id, TaskState.RUNNING, count_attempt=True, branch=branch)
    for state in (TaskState.VERIFYING, TaskState.MERGING):
        project.store.transition_task(t.id, state)
    wt = project.root.parent / "side"
    project.git.add_worktree(wt, branch, "HEAD")
    (wt / "b.py").write_text("B = 1\n")
    project.git.commit_all(wt, "B (task #1)", "", {"Shoemaker-Task": trailer})
    project.git.remove_worktree(wt)
    _git(project, "merge", "--squash", "--no-commit", branch)
    return t


def _git(project: Project, *args: str, check: bool = True) -> str:
    return subprocess.run(
        ["git", "-C", str(project.root), *args], capture_output=True, text=True, check=check
    ).stdout


def _everything(project: Project) -> dict[str, object]:
    """The git state a person owns and every store row: a refusal leaves all of it as it was."""
    tree = {
        str(p.relative_to(project.root)): p.read_bytes()
        for p in sorted(project.root.rglob("*"))
        if p.is_file() and not {".git", ".shoemaker"} & set(p.relative_to(project.root).parts)
    }
    git_dir = project.root / ".git"
    db = sqlite3.connect(project.store.path)
    rows = list(db.iterdump())
    db.close()
    return {
        "refs": _git(project, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": _git(project, "symbolic-ref", "-q", "HEAD", check=False)
        + _git(project, "rev-parse", "HEAD"),
        "index": _git(project, "ls-files", "--stage"),
        "status": _git(project, "status", "--porcelain=v2"),
        "merge": [
            (git_dir / name).read_bytes() if (git_dir / name).exists() else None
            for name in ("MERGE_HEAD", "MERGE_MSG", "SQUASH_MSG")
        ],
        "tree": tree,
        "store": rows,
    }


def test_shoemakers_own_half_done_squash_merge_is_undone(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    gen = start_generation(project, "g")
    t = _squash_left_half_done(project, "1")
    assert project.git.has_staged()
    (project.root / "app.py").write_text("VALUE = 5\n")  # a person's edit, not staged
    report = recover(project, gen)
    assert report.merge_undone and not project.git.has_staged()
    assert not (project.root / "b.py").exists()
    assert (project.root / "app.py").read_text() == "VALUE = 5\n"
    assert report.requeued == [t.id]  # its merge never landed: it runs again


def test_shoemakers_own_half_done_revert_is_undone(fast_tmp: Path) -> None:
    # A gate failed after the merge and shoemaker died inside `git revert --no-commit`: the
    # revert's message names the landed commit, whose trailer names the merging task.
    project = make_project(fast_tmp, [])
    gen = start_generation(project, "g")
    t, sha = landed_before_a_crash(project, {"a.py": "A = 1\n"})
    _git(project, "revert", "--no-commit", sha)
    assert project.git.has_staged() and "This reverts commit" in project.git.merge_messages()
    report = recover(project, gen)
    assert report.merge_undone and not project.git.has_staged()
    assert (project.root / "a.py").read_text() == "A = 1\n"
    assert report.landed == {t.id: sha}  # its gates run again after recovery


def test_a_squash_merge_naming_no_merging_task_is_left_alone(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    gen = start_generation(project, "g")
    _squash_left_half_done(project, "99")  # not the task the store has merging
    before = _everything(project)
    with pytest.raises(GenerationError, match=r"staged files \(b\.py\)"):
        recover(project, gen)
    assert _everything(project) == before


def _a_persons_conflicted_merge(project: Project) -> None:
    """On the generation branch, a person merged a branch of theirs and it conflicted."""
    project.git.create_branch("mine", "HEAD")
    (project.root / "app.py").write_text("VALUE = 2\n")
    project.git.commit_all(project.root, "theirs")
    _git(project, "checkout", "-q", "mine")
    (project.root / "app.py").write_text("VALUE = 3\n")
    project.git.commit_all(project.root, "mine")
    _git(project, "checkout", "-q", "generation-g")
    proc = subprocess.run(
        ["git", "-C", str(project.root), "merge", "mine"],
        capture_output=True,
        text=True,
        env={**os.environ, **IDENTITY_ENV},
    )
    assert proc.returncode == 1 and project.git.is_merging()


def _a_persons_staged_edit(project: Project) -> None:
    (project.root / "app.py").write_text("VALUE = 7\n")
    _git(project, "add", "app.py")
    (project.root / "app.py").write_text("VALUE = 8\n")  # and more, not staged


@pytest.mark.parametrize(
    ("person", "said"),
    [
        (_a_persons_conflicted_merge, "a merge in progress that shoemaker did not start (app.py)"),
        (_a_persons_staged_edit, "staged files (app.py)"),
    ],
)
def test_a_persons_merge_or_staged_edit_refuses_the_run_and_stays(
    fast_tmp: Path, person: Callable[[Project], None], said: str
) -> None:
    project = make_project(fast_tmp, [task("A", files={"a.py": "A = 1\n"})])
    start_generation(project, "g")
    # A task left merging by a crash does not make the person's state shoemaker's.
    (t,), _ = project.store.add_tasks("g", [NewTask("left merging")], 1, "test")
    project.store.transition_task(t.id, TaskState.RUNNING, count_attempt=True)
    for state in (TaskState.VERIFYING, TaskState.MERGING):
        project.store.transition_task(t.id, state)
    person(project)
    before = _everything(project)
    for verb in ("run", "resume"):
        proc = cli(project, verb)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert said in proc.stderr and "which shoemaker never touches" in proc.stderr
        assert _everything(project) == before
    # The engine itself (the dashboard's way in) refuses the same way.
    with pytest.raises(GenerationError, match="which shoemaker never touches"):
        asyncio.run(Engine(project).run(cycles=1))
    assert _everything(project) == before


@pytest.mark.parametrize("checkout", ["detached", "main"])
def test_a_wrong_checkout_is_refused_before_any_agent_runs(fast_tmp: Path, checkout: str) -> None:
    project = make_project(fast_tmp, [task("A", files={"a.py": "A = 1\n"})])
    start_generation(project, "g")
    _git(project, "checkout", "-q", "--detach" if checkout == "detached" else "main")
    before = _everything(project)
    proc = cli(project, "run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    shown = "a detached HEAD" if checkout == "detached" else "main"
    assert f"has {shown} checked out" in proc.stderr and "git checkout generation-g" in proc.stderr
    assert project.store.runs() == [] and _everything(project) == before
    with pytest.raises(GenerationError, match="checked out"):
        asyncio.run(Engine(project).run(cycles=1))
    assert project.store.runs() == []


def test_recovery_promotes_the_dependents_of_a_done_task(fast_tmp: Path) -> None:
    # A store where a task is done and its dependent still waits (written by a process that
    # recorded them apart): recovery promotes it, and doing so again changes nothing.
    project = make_project(fast_tmp, [])
    gen = start_generation(project, "g")
    (a, b), _ = project.store.add_tasks("g", [NewTask("A"), NewTask("B", after=(0,))], 1, "t")
    for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING, TaskState.DONE):
        project.store.transition_task(a.id, state)
    assert project.store.get_task(b.id).state == TaskState.PROPOSED
    report = recover(project, gen)
    assert report.promoted == [b.id] and "1 waiting task(s) promoted" in report.summary()
    assert project.store.get_task(b.id).state == TaskState.READY
    assert recover(project, gen).promoted == []


def test_a_second_run_of_the_same_project_is_refused(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A")])
    start_generation(project, "g")
    held = RunLock(project)
    assert held.acquire()
    proc = subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), "run"],
        capture_output=True,
        text=True,
    )
    held.release()
    assert proc.returncode == 2 and f"pid {os.getpid()}" in proc.stderr
    assert "is running generation g" in proc.stderr


async def test_recovery_runs_before_every_run(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A", files={"a.py": "A = 1\n"})])
    start_generation(project, "g")
    engine = Engine(project)
    await engine.run(cycles=1)
    assert not engine.recovery.anything


def test_a_process_of_an_interrupted_run_is_found_by_its_marker(fast_tmp: Path) -> None:
    # shoemaker died after starting the agent and before storing its pid.
    project = make_project(fast_tmp, [task("A")])
    gen = start_generation(project, "g")
    run = project.store.start_run(
        generation="g",
        task_id=None,
        phase="measure",
        attempt=1,
        prompt="p",
        argv=["sleep"],
        env_names=[RUN_MARKER],
        cwd=str(fast_tmp),
    )
    child = subprocess.Popen(
        ["sleep", "60"], env={**os.environ, RUN_MARKER: run_marker(project, run)}
    )
    unrelated = subprocess.Popen(
        ["sleep", "60"], env={**os.environ, RUN_MARKER: run_marker(project, run + 1)}
    )
    report = recover(project, gen)
    assert report.killed == [child.pid] and child.wait(timeout=10) == -signal.SIGKILL
    assert unrelated.poll() is None
    unrelated.kill()
    unrelated.wait()


async def test_an_interrupted_attempts_work_is_carried_into_the_next(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A", files={"a.py": "A = 2\n"})])
    gen = start_generation(project, "g")
    engine = Engine(project)
    await engine.measure_once()
    (t,) = project.store.list_tasks("g")
    project.store.transition_task(t.id, TaskState.RUNNING, "attempt 1", count_attempt=True)
    # What the interrupted attempt left on its branch: a half-written file and a finished one.
    wt = fast_tmp / "left"
    project.git.add_worktree(wt, task_branch("g", t.id), gen.branch)
    (wt / "a.py").write_text("A =")
    (wt / "b.py").write_text("B = 1\n")
    project.git.commit_all(wt, "unfinished", "", {"Shoemaker-Outcome": "interrupted"})
    project.git.remove_worktree(wt)

    report = await Engine(project).run(cycles=1)
    assert report.merged == 1
    done = project.store.get_task(t.id)
    assert done.state == TaskState.DONE and done.attempts == 2 and done.interruptions == 1
    tree = project.git.root
    assert (tree / "a.py").read_text() == "A = 2\n" and (tree / "b.py").read_text() == "B = 1\n"
    landed = project.git.log(f"{gen.start_commit}..{gen.branch}")
    assert [c.trailers.get("Shoemaker-Task") for c in landed] == [str(t.id)]
    assert project.git.branches("task/*") == [] and project.git.branches("attempt/*") == []
