"""executor: dask, end to end: a real ``dask scheduler`` and two ``dask worker`` processes on
loopback (on ports they pick, ended by pid), the rehearsal agent as the agent, and the faults
a cluster adds: a worker killed mid-task, the scheduler killed, the orchestrator SIGKILLed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents import sleepers, stitch_prompt
from cluster import START_TIMEOUT_S, Cluster, ancestors, parent_of, two_workers, wait_gone
from projects import check, cli, make_project, task
from shoemaker.cluster import worker
from shoemaker.cluster.attempt import (
    AttemptSpec,
    Lines,
    RunnerFailure,
    Sealed,
    Started,
)
from shoemaker.cluster.dask_runner import DaskRunner
from shoemaker.cluster.worker import LocalRunner
from shoemaker.config import DaskConfig, GateConfig
from shoemaker.demo import prepare_demo
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.history import task_history_path
from shoemaker.engine.project import Project
from shoemaker.engine.stitch import LOST_WORKERS_LIMIT
from shoemaker.engine.task_detail import load_task_detail
from shoemaker.events import AgentStarted, Event
from shoemaker.git import Git
from shoemaker.model import GenerationState, TaskState, task_branch

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(fast_tmp: Path) -> Iterator[Cluster]:
    with two_workers(fast_tmp) as found:
        yield found


def on_cluster(project: Project, cluster: Cluster, **dask: Any) -> Project:
    """``project`` with ``executor: dask`` at ``cluster``, committed like any setting."""
    path = project.root / "configuration.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(
        executor="dask",
        max_parallel=2,
        dask={"scheduler": cluster.address, "resources": {"agent_slot": 1}, **dask},
    )
    path.write_text(yaml.safe_dump(config))
    project.git.commit_all(project.root, "run on the cluster")
    return Project.open(project.root)


def started_runs(project: Project) -> list[AgentStarted]:
    seen: list[AgentStarted] = []

    def listen(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id is not None:
            seen.append(event)

    project.bus.add_listener(listen)
    return seen


def ran_in(project: Project, task_id: int) -> list[str]:
    """The sandbox of each run of a finished task, as its history record says."""
    record = yaml.safe_load(task_history_path(project, project.store.get_task(task_id)).read_text())
    return [run["sandbox"] for run in record["runs"]]


def landed(git: Git, branch: str) -> list[int]:
    """The task ids of the commits on ``branch`` (each task once if all is well)."""
    return sorted(
        int(c.trailers["Shoemaker-Task"]) for c in git.log(branch) if "Shoemaker-Task" in c.trailers
    )


# -- the worker function, in this process ----------------------------------------------------


#: How long a held step keeps a cancelled attempt from ending, to show that it does.
HELD_S = 1.0
#: A bound on waiting for a held step (never a wait: it is released as soon as it is held).
STEP_LIMIT_S = 120.0


def attempt_spec(project: Project, task_id: int, **fields: Any) -> AttemptSpec:
    """Attempt 1 of ``task_id`` on the project's HEAD with its agent; ``fields`` replace any."""
    git = project.git
    base = git.rev_parse("HEAD")
    given: dict[str, Any] = {
        "key": f"k-{task_id}-1",
        "task_id": task_id,
        "attempt": 1,
        "base": base,
        "bundle": git.bundle(base),
        "branch": f"task/g-{task_id}",
        "agent": project.config.agent,
        "argv": (project.config.agent.command, *project.config.agent.args),
        "env": Sealed({"IS_SANDBOX": "1"}),
        "prompt": stitch_prompt(task_id, 1),
        "gates": (),
        "max_time_sec": 60,
        "idle_timeout_sec": 30,
        "kill_grace_sec": 5,
    }
    return AttemptSpec(**{**given, **fields})


async def test_the_worker_function_returns_the_task_branch_as_a_bundle(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    git = project.git
    base = git.rev_parse("HEAD")
    spec = attempt_spec(
        project,
        7,
        env=Sealed({"IS_SANDBOX": "1", "SECRET_TOKEN": "s3cr3t-value"}),
        prompt=stitch_prompt(7, 1, files={"feature.py": "X = 2\n"}),
        gates=(GateConfig(**check("imports", "import feature")),),
    )
    assert "s3cr3t" not in repr(spec) and "s3cr3t" not in repr(spec.env)
    events: list[object] = []
    result = await LocalRunner().run(spec, events.append)
    assert result.run.ok, result.run.reason
    assert isinstance(events[0], Started) and events[0].worker == "local"
    assert any(isinstance(e, Lines) for e in events)
    assert result.commit is not None and result.bundle
    bundle = fast_tmp / "task.bundle"
    bundle.write_bytes(result.bundle)
    git.fetch_bundle(bundle, "task/g-7")
    assert git.rev_parse("task/g-7") == result.commit
    assert [f.path for f in git.diff_stat(base, "task/g-7").files] == ["feature.py"]
    assert [(g.gate.name, g.outcome.passed) for g in result.gates] == [("imports", True)], [
        g.outcome for g in result.gates
    ]


@pytest.fixture
def worker_tmp(fast_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory of the worker function run in this process: empty at first."""
    tmp = fast_tmp / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


async def test_a_worker_function_that_cannot_start_says_so_and_leaves_nothing(
    fast_tmp: Path, worker_tmp: Path
) -> None:
    project = make_project(fast_tmp, [])
    spec = attempt_spec(project, 1, bundle=b"# v2 git bundle\nnot one\n", env=Sealed({}))
    with pytest.raises(RunnerFailure) as failed:
        await LocalRunner().run(spec, lambda _: None)
    assert failed.value.kind == "error" and "GitError" in str(failed.value)
    assert list(worker_tmp.iterdir()) == []


async def test_a_cancelled_attempt_removes_its_clone_only_once_its_git_step_has_ended(
    fast_tmp: Path, worker_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cluster's worker cancels an attempt its orchestrator no longer wants. A git step then
    # running in a thread goes on; removed meanwhile, the clone kept what git wrote after.
    project = make_project(fast_tmp, [])
    entered, release = threading.Event(), threading.Event()
    clone_ran_in: list[bool] = []
    real_clone = worker._clone

    def held_clone(spec: AttemptSpec, where: Path) -> tuple[Git, Path]:
        entered.set()
        release.wait(STEP_LIMIT_S)
        clone_ran_in.append(where.is_dir())
        return real_clone(spec, where)

    monkeypatch.setattr(worker, "_clone", held_clone)
    attempt = asyncio.create_task(LocalRunner().run(attempt_spec(project, 1), lambda _: None))
    assert await asyncio.to_thread(entered.wait, STEP_LIMIT_S)
    attempt.cancel()
    # Cancelled, it cannot end while its step runs: it has a second to prove it would not
    # (without the wait it would end at once, its clone removed under the held step).
    try:
        ended, _ = await asyncio.wait([attempt], timeout=HELD_S)
        assert not ended
    finally:
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert clone_ran_in == [True]  # its directory was still there: the clean-up waited
    assert list(worker_tmp.iterdir()) == []


# -- a real cluster ----------------------------------------------------------------------------


async def test_the_demo_generation_runs_on_two_dask_workers(
    fast_tmp: Path, cluster: Cluster
) -> None:
    demo = prepare_demo(fast_tmp / "demo", str(fast_tmp / "worktrees"))
    project = on_cluster(Project.open(demo), cluster)
    seen = started_runs(project)
    ancestry: dict[int, list[int]] = {}

    def trace(event: Event) -> None:
        # At its start, while it runs: whose process is it?
        if isinstance(event, AgentStarted) and event.pid and event.phase == "stitch":
            ancestry[event.pid] = ancestors(event.pid)

    project.bus.add_listener(trace)
    gen = await asyncio.to_thread(start_generation, project, "demo")
    report = await Engine(project).run()

    tasks = project.store.list_tasks(gen.name)
    assert len(tasks) == 6 and {t.state for t in tasks} == {TaskState.DONE}, report
    assert landed(project.git, gen.branch) == [1, 2, 3, 4, 5, 6]
    # Every stitch agent ran on a worker, in that worker's process tree, never in ours.
    stitched = [e for e in seen if e.phase == "stitch"]
    assert len(stitched) == 6 and {e.worker for e in stitched} <= {"w1", "w2"}
    nannies = {w.pid for w in cluster.workers}
    checked = [pid for pid, chain in ancestry.items() if chain]
    assert checked, "no agent was seen alive"
    for pid in checked:
        chain = ancestry[pid]
        # This process started the cluster, so it is an ancestor: through a nanny, never
        # as the agent's own parent.
        assert chain[0] != os.getpid() and nannies & set(chain[: chain.index(os.getpid())])
    # The task screen's log names the worker of each run.
    detail = load_task_detail(project, 1)
    assert any(line.startswith("── attempt 1 · run ") and " · on w" in line for line in detail.log)
    # Its attempts table and its history say where each run ran: no sandbox, on a worker.
    (run,) = detail.runs
    (worker,) = [e.worker for e in stitched if e.task_id == 1]
    assert detail.sandboxes == {run.id: f"none (on worker {worker})"}, detail.sandboxes
    (recorded,) = ran_in(project, 1)
    assert recorded == detail.sandboxes[run.id]
    # No worktree or branch of a task is left.
    assert [w.path for w in project.git.worktrees()] == [project.root]
    assert project.git.branches("task/*") == []


async def test_a_task_asking_for_a_resource_runs_on_the_one_worker_that_has_it(
    fast_tmp: Path, cluster: Cluster
) -> None:
    """w1 and w2 have no gpu: the task that asks for one waits, saying so, until w3 (which
    has one) joins, and runs there; the other task runs on w1 or w2 meanwhile."""
    tasks = [
        {**task("Train", files={"model.py": "M = 1\n"}), "resources": {"gpu": 1}},
        task("Plain", files={"plain.py": "P = 1\n"}),
    ]
    project = on_cluster(make_project(fast_tmp, tasks), cluster)
    seen = started_runs(project)
    joined: list[asyncio.Task[Any]] = []

    def start_the_gpu_worker(event: Event) -> None:
        message = getattr(event, "message", "")
        if event.kind == "log" and "no dask worker has" in message and not joined:
            assert event.task_id == 1 and "gpu=1" in message and "agent_slot=1" in message
            joined.append(
                asyncio.ensure_future(
                    asyncio.to_thread(cluster.start_worker, "w3", "agent_slot=1,gpu=1")
                )
            )

    project.bus.add_listener(start_the_gpu_worker)
    gen = await asyncio.to_thread(start_generation, project, "g")
    report = await Engine(project).run(cycles=1)

    (train,) = [t for t in project.store.list_tasks(gen.name) if t.title == "Train"]
    assert train.id == 1 and train.extras["resources"] == {"gpu": 1.0}
    assert joined, "the task never said it waits for a worker with a gpu"
    await joined[0]
    assert {t.state for t in project.store.list_tasks(gen.name)} == {TaskState.DONE}, report
    stitched = {e.task_id: e.worker for e in seen if e.phase == "stitch"}
    assert stitched[1] == "w3" and stitched[2] in ("w1", "w2"), stitched
    assert landed(project.git, gen.branch) == [1, 2]


async def test_a_cluster_attempt_continues_the_work_an_earlier_attempt_left(
    fast_tmp: Path, cluster: Cluster
) -> None:
    """A gate whose failure asks for a targeted fix keeps attempt 1's work on the task
    branch: attempt 2, on a worker, starts from it (told so by its prompt) and the task lands
    with both attempts' work."""
    attempts = {1: {"files": {"a.py": "A = 1\n"}}, 2: {"files": {"b.py": "B = 1\n"}}}
    gate = {"name": "needs b", "command": "test -f b.py", "severity": "fix", "after_merge": False}
    project = make_project(fast_tmp, [task("Two steps", on_attempt=attempts)], gates=[gate])
    project = on_cluster(project, cluster)
    seen = started_runs(project)
    gen = await asyncio.to_thread(start_generation, project, "g")
    report = await Engine(project).run(cycles=1)

    (t,) = project.store.list_tasks(gen.name)
    assert (t.state, t.attempts) == (TaskState.DONE, 2), (t.reason, report)
    assert {e.worker for e in seen if e.phase == "stitch"} <= {"w1", "w2", "w3"}
    first, second = project.store.runs(task_id=t.id)
    assert "already holds that attempt's work" not in first.prompt
    assert "already holds that attempt's work" in second.prompt
    git = project.git
    assert {f.path for f in git.diff_stat(f"{gen.branch}~1", gen.branch).files} == {
        "a.py",
        "b.py",
    }
    assert landed(git, gen.branch) == [1]
    assert git.branches("attempt/*") == [] and git.branches("task/*") == []
    notices = [getattr(e, "message", "") for e in project.store.events_of_kind(gen.name, ["log"])]
    assert "continuing the work of the earlier attempt" in notices


async def test_an_interrupted_attempts_work_is_carried_into_the_next_on_a_worker(
    fast_tmp: Path, cluster: Cluster
) -> None:
    project = on_cluster(make_project(fast_tmp, [task("A", files={"a.py": "A = 2\n"})]), cluster)
    gen = await asyncio.to_thread(start_generation, project, "g")
    await Engine(project).measure_once()
    (t,) = project.store.list_tasks("g")
    project.store.transition_task(t.id, TaskState.RUNNING, "attempt 1", count_attempt=True)
    # What the interrupted attempt left on its branch: a half-written file and a finished one.
    wt = fast_tmp / "left"
    project.git.add_worktree(wt, task_branch("g", t.id), gen.branch)
    (wt / "a.py").write_text("A =")
    (wt / "b.py").write_text("B = 1\n")
    project.git.commit_all(wt, "unfinished", "", {"Shoemaker-Outcome": "interrupted"})
    project.git.remove_worktree(wt)
    seen = started_runs(project)

    report = await Engine(project).run(cycles=1)
    assert report.merged == 1, report
    done = project.store.get_task(t.id)
    assert (done.state, done.attempts, done.interruptions) == (TaskState.DONE, 2, 1)
    assert {e.worker for e in seen if e.phase == "stitch"} <= {"w1", "w2"}
    (run,) = project.store.runs(task_id=t.id)
    assert "This directory already holds" in run.prompt  # told it continues
    tree = project.git.root
    assert (tree / "a.py").read_text() == "A = 2\n" and (tree / "b.py").read_text() == "B = 1\n"
    assert landed(project.git, gen.branch) == [t.id]
    assert project.git.branches("task/*") == [] and project.git.branches("attempt/*") == []


def hanging_first(heartbeat: float = 0.2) -> list[dict[str, Any]]:
    """Task 1's first attempt never ends by itself; its second succeeds. Task 2 is quick."""
    return [
        task("slow", on_attempt={1: {"outcome": "hang", "heartbeat": heartbeat}}),
        task("quick", files={"quick.py": "Q = 1\n"}),
    ]


def first_agent_of_task_1(project: Project, act: Any) -> list[AgentStarted]:
    """Call ``act(event)`` at the start of task 1's first attempt's agent, once."""
    hits: list[AgentStarted] = []

    def listen(event: Event) -> None:
        if (
            isinstance(event, AgentStarted)
            and event.task_id == 1
            and event.attempt == 1
            and event.pid
            and not hits
        ):
            hits.append(event)
            act(event)

    project.bus.add_listener(listen)
    return hits


async def test_a_worker_killed_mid_task_costs_an_attempt_and_the_task_lands_once(
    fast_tmp: Path, cluster: Cluster
) -> None:
    project = on_cluster(make_project(fast_tmp, hanging_first()), cluster)
    killed: list[int] = []

    def kill_its_worker(event: AgentStarted) -> None:
        worker = parent_of(event.pid or 0)
        assert worker is not None and worker != os.getpid()
        killed.append(worker)
        os.kill(worker, signal.SIGKILL)

    hits = first_agent_of_task_1(project, kill_its_worker)
    gen = await asyncio.to_thread(start_generation, project, "g")
    await Engine(project).run(cycles=1)

    assert killed and hits
    assert wait_gone(hits[0].pid or 0, 30), "the agent outlived its worker"
    first = project.store.get_task(1)
    assert (first.state, first.attempts, first.interruptions) == (TaskState.DONE, 2, 1)
    assert project.store.get_task(2).state == TaskState.DONE
    assert landed(project.git, gen.branch) == [1, 2]
    notices = project.store.events_of_kind(gen.name, ["log"])
    assert any("worker-lost" in getattr(e, "message", "") for e in notices)


async def test_a_task_that_keeps_losing_its_worker_fails(fast_tmp: Path, cluster: Cluster) -> None:
    project = on_cluster(make_project(fast_tmp, [task("doomed", outcome="hang")]), cluster)
    killed: list[int] = []

    def kill_its_worker(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id == 1 and event.pid:
            worker = parent_of(event.pid)
            assert worker is not None and worker != os.getpid()
            killed.append(worker)
            os.kill(worker, signal.SIGKILL)

    project.bus.add_listener(kill_its_worker)
    await asyncio.to_thread(start_generation, project, "g")
    await Engine(project).run(cycles=1)
    doomed = project.store.get_task(1)
    assert len(killed) == LOST_WORKERS_LIMIT
    assert doomed.state == TaskState.FAILED and "takes its worker down" in doomed.reason


async def test_a_lost_scheduler_pauses_the_generation_until_it_is_back(
    fast_tmp: Path, cluster: Cluster
) -> None:
    # Committed, the doctor's wait for the scheduler that is gone is short (5 s). A run
    # connecting to a live one is given what a busy machine may need.
    project = on_cluster(make_project(fast_tmp, hanging_first()), cluster, connect_timeout_sec=5)
    project.config.dask.connect_timeout_sec = START_TIMEOUT_S
    hits = first_agent_of_task_1(project, lambda _: cluster.kill_scheduler())
    gen = await asyncio.to_thread(start_generation, project, "g")
    report = await Engine(project).run(cycles=1)

    assert hits
    paused = project.store.get_generation(gen.name)
    assert paused.state == GenerationState.PAUSED
    assert "scheduler" in paused.reason and "shoemaker resume" in paused.reason, paused.reason
    assert "scheduler" in report.stopped_because
    states = [(t.state, t.reason) for t in project.store.list_tasks(gen.name)]
    # Nothing stays running: the hanging task is back to ready, the quick one too unless it
    # had already landed.
    assert states[0][0] == TaskState.READY and states[1][0] in ("ready", "done"), states
    # Still gone: the next run pauses (after the short wait), saying so, and so does the doctor.
    project.config.dask.connect_timeout_sec = 5
    again = await Engine(project).run(cycles=1)
    assert "cannot reach the dask scheduler" in again.stopped_because
    doctor = await asyncio.to_thread(cli, project, "doctor")
    assert doctor.returncode == 1 and "✗ dask cluster: cannot reach" in doctor.stdout

    cluster.start_scheduler()
    cluster.start_worker("w3")
    project.config.dask.connect_timeout_sec = START_TIMEOUT_S  # back: a live one again
    resumed = await Engine(project).run(cycles=1)
    assert project.store.get_task(1).state == TaskState.DONE, resumed
    assert project.store.get_task(2).state == TaskState.DONE
    assert landed(project.git, gen.branch) == [1, 2]
    assert wait_gone(hits[0].pid or 0, 30)


async def test_an_orchestrator_killed_mid_run_is_resumed_and_its_cluster_runs_cancelled(
    fast_tmp: Path, cluster: Cluster
) -> None:
    project = on_cluster(make_project(fast_tmp, hanging_first()), cluster)
    doctor = await asyncio.to_thread(cli, project, "doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert "✓ dask cluster" in doctor.stdout and "✓ executor: dask at" in doctor.stdout
    await asyncio.to_thread(start_generation, project, "g")
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), "run", "--cycles", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert orchestrator.stdout is not None
    for line in orchestrator.stdout:
        if "#1" in line and "agent started (stitch" in line:
            break
    orchestrator.kill()
    orchestrator.wait()
    (run,) = [r for r in project.store.runs(task_id=1) if r.pid]
    # Nothing of this process asked: the scheduler saw its client go, the worker its task
    # released, and the agent was stopped there.
    assert wait_gone(run.pid or 0, 30), "the cluster kept running a dead orchestrator's agent"

    report = await Engine(project).run(cycles=1)
    assert {t.state for t in project.store.list_tasks("g")} == {TaskState.DONE}, report
    assert landed(project.git, project.store.get_generation("g").branch) == [1, 2]
    assert project.store.get_task(1).interruptions == 1


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
async def test_bwrap_on_the_workers_refuses_writes_outside_the_clone_and_the_task_merges(
    fast_tmp: Path, cluster: Cluster
) -> None:
    # A directory on the real disk, and the orchestrator's own repository: the agent and the
    # gate, on a worker, try to write in both, and in the worker's repository of the clone.
    host_dir = Path.home() / ".cache" / f"shoemaker-dask-sandbox-test-{fast_tmp.name}"
    host_dir.mkdir(parents=True)
    try:
        repo = fast_tmp / "repo"  # make_project's repository
        agent_writes = [host_dir / "agent.txt", repo / "agent-escaped.txt"]
        gate_writes = [host_dir / "gate.txt", repo / "gate-escaped.txt"]
        touch_all = "; ".join(f"touch {path}" for path in gate_writes)
        project = make_project(
            fast_tmp,
            [
                task(
                    "Boxed",
                    files={"a.py": "A = 1\n"},
                    run=[*(f"touch {path}" for path in agent_writes), "touch ../git/escaped"],
                    signal={"status": "completed"},  # from inside the worker's sandbox
                )
            ],
            sandbox="bwrap",
            require_done_signal=True,
            gates=[{"name": "boxed gate", "command": f"{touch_all}; test -f a.py"}],
        )
        project = on_cluster(project, cluster)
        doctor = await asyncio.to_thread(cli, project, "doctor")
        said = " ".join(doctor.stdout.split())  # as printed, wrapped to the terminal
        assert doctor.returncode == 0 and "agents and gates in bwrap on the workers" in said, said
        seen = started_runs(project)
        gen = await asyncio.to_thread(start_generation, project, "g")
        report = await Engine(project).run(cycles=1)

        (t,) = project.store.list_tasks(gen.name)
        assert t.state == TaskState.DONE, (t.reason, report)
        assert landed(project.git, gen.branch) == [1]
        assert {e.worker for e in seen if e.phase == "stitch"} <= {"w1", "w2"}
        escaped = [p for p in [*agent_writes, *gate_writes] if p.exists()]
        assert escaped == []
        (run,) = project.store.runs(task_id=t.id)
        # The command line sent was bare; the worker ran it in bwrap, and the records say so.
        assert run.argv[0] == project.config.agent.command
        (worker,) = {e.worker for e in seen if e.phase == "stitch"}
        label = load_task_detail(project, t.id).sandboxes[run.id]
        assert label == f"bwrap (on worker {worker})" and ran_in(project, t.id) == [label]
        log = project.store.transcript(run.id).decode()
        assert log.count("Read-only file system") >= 3 and "signalled completed" in log, log
        (gate,) = [g for g in project.store.gate_results(t.id) if g.location == "worktree"]
        assert gate.passed and "Read-only file system" in gate.output_tail, gate.output_tail
    finally:
        shutil.rmtree(host_dir)


async def test_what_the_agent_started_dies_with_its_worker(
    fast_tmp: Path, cluster: Cluster
) -> None:
    """PR_SET_PDEATHSIG takes the agent along with its worker, not what it started: the
    worker's janitor kills the agent's process group, then removes the clone."""
    token = cluster.env["SHOEMAKER_TEST_TOKEN"]
    # A child left running in the agent's group (``sleep 300``), then the agent waits on
    # another (``sleep 120``) until its worker is killed.
    first = {"detach": ["sh -c 'sleep 300 &'", "sleep 120"]}
    tasks = [task("spawns", on_attempt={1: first})]
    project = on_cluster(make_project(fast_tmp, tasks), cluster)
    started: list[AgentStarted] = []
    left: list[int] = []

    def note_start(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id == 1 and event.attempt == 1:
            started.append(event)

    async def kill_once_it_spawned() -> None:
        # The child is there once its `sleep` is: a while after `sh` returned and the agent
        # said so, on a busy machine. No event says when; /proc does.
        while not (started and (children := sleepers(token))):
            await asyncio.sleep(0.05)
        left.extend(children)
        worker = parent_of(started[0].pid or 0)
        assert worker is not None and worker != os.getpid()
        os.kill(worker, signal.SIGKILL)

    project.bus.add_listener(note_start)
    killer = asyncio.create_task(kill_once_it_spawned())
    gen = await asyncio.to_thread(start_generation, project, "g")
    try:
        await Engine(project).run(cycles=1)
    finally:
        killer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await killer  # an assertion of its own is raised here

    assert left, "the agent's child was never seen"
    assert all(wait_gone(pid, 30) for pid in left), "the agent's child outlived its worker"
    assert wait_gone(started[0].pid or 0, 30)
    assert sleepers(token) == []
    spawned = project.store.get_task(1)
    assert (spawned.state, spawned.attempts, spawned.interruptions) == (TaskState.DONE, 2, 1)
    assert landed(project.git, gen.branch) == [1]


async def test_what_a_gate_started_dies_with_its_worker(fast_tmp: Path, cluster: Cluster) -> None:
    fifo = fast_tmp / "gate-started"
    os.mkfifo(fifo)
    once = fast_tmp / "once"
    # The first run of the gate leaves a child in its group, says who they are, and waits.
    line = f"if mkdir {once} 2>/dev/null; then sleep 300 & echo $$ $! > {fifo}; sleep 120; fi; true"
    tasks = [task("gated", files={"gated.py": "G = 1\n"})]
    project = make_project(fast_tmp, tasks, gates=[{"name": "slow gate", "command": line}])
    project = on_cluster(project, cluster)

    async def kill_its_worker_mid_gate() -> int:
        gate, child = map(int, (await asyncio.to_thread(fifo.read_text)).split())
        worker = parent_of(gate)
        assert worker is not None and worker != os.getpid()
        os.kill(worker, signal.SIGKILL)
        return child

    killer = asyncio.create_task(kill_its_worker_mid_gate())
    gen = await asyncio.to_thread(start_generation, project, "g")
    await Engine(project).run(cycles=1)
    if not killer.done():  # the gate never ran: end the reader (it fails on an empty line)
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    child = await killer

    assert wait_gone(child, 30), "the gate's child outlived its worker"
    gated = project.store.get_task(1)
    assert (gated.state, gated.attempts, gated.interruptions) == (TaskState.DONE, 2, 1)
    assert landed(project.git, gen.branch) == [1]


def test_doctor_takes_bwrap_on_the_workers_and_refuses_a_container_there(fast_tmp: Path) -> None:
    from shoemaker.engine.doctor import _executor

    boxed = make_project(fast_tmp / "bwrap", [], executor="dask", sandbox="bwrap")
    ((ok, detail),) = [(c.ok, c.detail) for c in _executor(boxed)]
    assert ok and "in bwrap on the workers" in detail
    contained = make_project(fast_tmp / "podman", [], executor="dask", sandbox="podman")
    (check,) = _executor(contained)
    assert not check.ok and "not podman" in check.detail and "sandbox: bwrap" in check.fix
    docker = make_project(fast_tmp / "docker", [], executor="dask", sandbox="docker")
    (check,) = _executor(docker)
    assert not check.ok and "not docker" in check.detail
    assert check.fix == "set sandbox: bwrap (installed on every worker) or none, or executor: local"


def test_the_default_install_never_imports_dask() -> None:
    code = (
        "import sys\n"
        "import shoemaker.cli, shoemaker.engine.engine, shoemaker.engine.doctor\n"
        "import shoemaker.cluster.attempt, shoemaker.cluster.worker\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


async def test_the_scheduler_never_shows_a_secret_of_the_run(
    fast_tmp: Path, cluster: Cluster
) -> None:
    project = make_project(fast_tmp, [])
    secret, login = "tok-0123456789abcdef", "sk-login-fedcba9876543210"
    spec = attempt_spec(
        project,
        1,
        key="shoemaker-g-1-1-cafe",
        env=Sealed({"IS_SANDBOX": "1", "API_TOKEN": secret}),
        login=Sealed({"auth.json": f'{{"OPENAI_API_KEY": "{login}"}}'}),
        prompt=stitch_prompt(1, 1, outcome="hang", heartbeat=0.2),
    )
    runner = DaskRunner(DaskConfig(scheduler=cluster.address, resources={"agent_slot": 1}))
    await runner.connect()
    assert runner.client is not None
    client = runner.client

    def scheduler_view(dask_scheduler: Any) -> list[str]:
        # Everything the scheduler would print of a task: its key, its state, its call and
        # each argument (as a repr and as a string).
        return [
            f"{key} {ts!r} {ts.run_spec!r} "
            + " ".join(f"{a!r} {a!s}" for a in getattr(ts.run_spec, "args", ()))
            for key, ts in dask_scheduler.tasks.items()
        ]

    shown: list[str] = []
    looked: list[asyncio.Task[None]] = []

    async def look_then_cancel(running: asyncio.Task[Any]) -> None:
        shown.extend(await client.run_on_scheduler(scheduler_view))
        running.cancel()

    def on_event(event: object) -> None:
        if isinstance(event, Started) and not looked:
            looked.append(asyncio.create_task(look_then_cancel(attempt)))

    attempt = asyncio.create_task(runner.run(spec, on_event))
    with pytest.raises(asyncio.CancelledError):
        await attempt
    await looked[0]
    await runner.close()
    assert any("shoemaker-g-1-1-cafe" in line for line in shown), shown
    assert all(secret not in line and login not in line for line in shown), shown
    assert "AttemptSpec(shoemaker-g-1-1-cafe" in "\n".join(shown)
    assert all(secret not in line and login not in line for line in cluster.log)


async def test_a_connect_cancelled_midway_closes_its_client() -> None:
    """A scheduler that accepts and never answers, and a run cancelled meanwhile (Ctrl-C): the
    client made is closed, not left to its collection (which printed a traceback at exit)."""
    reached = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        reached.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    runner = DaskRunner(DaskConfig(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout_sec=60))
    connecting = asyncio.create_task(runner.connect())
    await reached.wait()
    client = runner.client
    assert client is not None
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert runner.client is None and client.status == "closed"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()
