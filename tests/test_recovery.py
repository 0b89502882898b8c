"""Recovery after shoemaker dies: stale agents, half-done merges, merges not yet recorded, and
real SIGKILLs of a running `shoemaker run` followed by `shoemaker resume`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents import REHEARSAL, STREAM_ARGS, new_token, processes_with_token, stitch_prompt
from projects import make_project, task
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import RunLock
from shoemaker.engine.recovery import recover
from shoemaker.model import TaskState
from shoemaker.store import NewTask, Store


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
    project.store.set_run_pid(run, agent.pid)
    # A run whose pid now belongs to some other program is left alone.
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    decoy = project.store.start_run(
        generation="g",
        task_id=t.id,
        phase="stitch",
        attempt=1,
        prompt="p",
        argv=argv,
        env_names=[],
        cwd=str(fast_tmp),
    )
    project.store.set_run_pid(decoy, other.pid)

    report = recover(project, gen)
    assert report.killed == [agent.pid] and agent.wait(timeout=10) == -signal.SIGKILL
    assert other.poll() is None
    other.kill()
    other.wait()
    assert report.requeued == [t.id] and project.store.get_task(t.id).state == TaskState.READY
    assert sorted(report.closed_runs) == sorted([run, decoy])
    assert project.store.get_run(run).reason.startswith("interrupted")
    assert processes_with_token(token) == []


def test_a_landed_merge_is_recorded_not_rerun(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    gen = start_generation(project, "g")
    (t,), _ = project.store.add_tasks("g", [NewTask("A")], 1, "test")
    for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
        project.store.transition_task(t.id, state, count_attempt=state == TaskState.RUNNING)
    # The squash commit landed, then shoemaker died before recording it.
    (project.root / "a.py").write_text("A = 1\n")
    sha = project.git.commit_all(project.root, "A (task #1)", "", {"Shoemaker-Task": str(t.id)})
    report = recover(project, gen)
    assert report.recorded_done == [t.id]
    done = project.store.get_task(t.id)
    assert done.state == TaskState.DONE and done.merged_commit == sha


def test_a_half_done_squash_merge_is_undone(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    gen = start_generation(project, "g")
    project.git.create_branch("side", "HEAD")
    wt = fast_tmp / "side"
    project.git.add_worktree(wt, "task/side", "HEAD")
    (wt / "b.py").write_text("B = 1\n")
    project.git.commit_all(wt, "side work")
    subprocess.run(
        ["git", "merge", "--squash", "task/side"], cwd=project.root, check=True, capture_output=True
    )
    assert project.git.has_staged()
    (project.root / "app.py").write_text("VALUE = 5\n")  # a person's edit, not staged
    report = recover(project, gen)
    assert report.merge_undone and not project.git.has_staged()
    assert not (project.root / "b.py").exists()
    assert (project.root / "app.py").read_text() == "VALUE = 5\n"


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
    assert proc.returncode == 1 and "another shoemaker process is running" in proc.stdout


def _wait_for_agents(db: Path, count: int, limit: float = 60) -> None:
    """Until the store has seen ``count`` stitch agents start (another process writes it)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if db.exists():
            store = Store(db)
            started = sum(
                1
                for _, e in store.events_after(0, 100_000)
                if e.kind == "agent_started" and getattr(e, "phase", "") == "stitch"
            )
            store.close()
            if started >= count:
                return
        time.sleep(0.05)
    raise AssertionError(f"{count} agents never started")


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [[1], [2, 4], [1, 3, 5]])
def test_sigkill_then_resume_lands_every_task_once(fast_tmp: Path, kill_after: list[int]) -> None:
    token = new_token()
    env = {**os.environ, "SHOEMAKER_TEST_TOKEN": token}
    demo = fast_tmp / "demo"
    cli = [sys.executable, "-m", "shoemaker", "-C", str(demo)]
    subprocess.run(
        [sys.executable, "-m", "shoemaker", "demo", "--prepare", str(demo)],
        check=True,
        capture_output=True,
        env=env,
    )
    subprocess.run([*cli, "generation", "start", "chaos"], check=True, capture_output=True, env=env)
    db = demo / ".shoemaker" / "shoemaker.db"
    for count in kill_after:
        run = subprocess.Popen(
            [*cli, "resume", "--parallel", "2", "--events", "none"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_agents(db, count)
        run.send_signal(signal.SIGKILL)
        run.wait()
    final = subprocess.run(
        [*cli, "resume", "--parallel", "2"], capture_output=True, text=True, env=env, timeout=300
    )
    assert final.returncode == 0, final.stdout + final.stderr
    assert "recovered first" in final.stdout
    store = Store(db)
    tasks = store.list_tasks("chaos")
    assert len(tasks) == 6 and all(t.state == TaskState.DONE for t in tasks)
    log = subprocess.run(
        [
            "git",
            "log",
            "--format=%(trailers:key=Shoemaker-Task,valueonly)",
            "chaos-start..generation-chaos",
        ],
        cwd=demo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(log) == sorted(str(t.id) for t in tasks)  # every task exactly once
    assert store.integrity_check() == "ok"
    assert processes_with_token(token) == []
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=demo, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(worktrees) == 1
    pytest_run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=demo,
        capture_output=True,
        text=True,
    )
    assert pytest_run.returncode == 0, pytest_run.stdout


async def test_recovery_runs_before_every_run(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A", files={"a.py": "A = 1\n"})])
    start_generation(project, "g")
    engine = Engine(project)
    await engine.run(cycles=1)
    assert not engine.recovery.anything
