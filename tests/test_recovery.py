"""Recovery after shoemaker dies, piece by piece: stale agents, half-done merges, merges not yet
recorded, the run lock. Real SIGKILLs of whole runs are in test_chaos.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from agents import REHEARSAL, STREAM_ARGS, new_token, processes_with_token, stitch_prompt
from projects import check, make_project, task
from shoemaker.engine.agent_call import RUN_MARKER, run_marker
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project, RunLock
from shoemaker.engine.recovery import recover
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
    assert [(g["location"], bool(g["passed"])) for g in project.store.gate_results(t.id)] == [
        ("merged", True)
    ]
    metrics = project.store.metrics(t.id)
    assert metrics is not None and metrics["merge_sha"] == sha and metrics["insertions"] == 2
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
