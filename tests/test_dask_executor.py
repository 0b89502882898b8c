"""executor: dask, end to end: a real ``dask scheduler`` and two ``dask worker`` processes on
loopback (free ports, ended by pid), the rehearsal agent as the agent, and the faults a
cluster adds: a worker killed mid-task, the scheduler killed, the orchestrator SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents import new_token, processes_with_token, stitch_prompt
from cluster import Cluster, ancestors, parent_of
from projects import check, make_project, task
from shoemaker.cluster.attempt import AttemptSpec, Lines, LocalRunner, Sealed, Started
from shoemaker.config import GateConfig
from shoemaker.demo import prepare_demo
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.events import AgentStarted, Event
from shoemaker.git import Git
from shoemaker.model import GenerationState, TaskState

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(fast_tmp: Path) -> Iterator[Cluster]:
    """A scheduler and workers w1, w2; their temporary files in ``worker-tmp``, their
    environment marked so that whatever they leave running is found."""
    tmp = fast_tmp / "worker-tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "SHOEMAKER_TEST_TOKEN": new_token()}
    env.pop("PYTEST_CURRENT_TEST", None)
    found = Cluster(env, fast_tmp / "dask-local")
    try:
        found.start_scheduler()
        found.start_worker("w1")
        found.start_worker("w2")
        yield found
    finally:
        found.stop()
    left = processes_with_token(env["SHOEMAKER_TEST_TOKEN"])
    assert left == [], [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left]
    assert list(tmp.iterdir()) == [], "a worker left a temporary clone"


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


def landed(git: Git, branch: str) -> list[int]:
    """The task ids of the commits on ``branch`` (each task once if all is well)."""
    return sorted(
        int(c.trailers["Shoemaker-Task"]) for c in git.log(branch) if "Shoemaker-Task" in c.trailers
    )


# -- the worker function, in this process ----------------------------------------------------


async def test_the_worker_function_returns_the_task_branch_as_a_bundle(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    git = project.git
    base = git.rev_parse("HEAD")
    prompt = stitch_prompt(7, 1, files={"feature.py": "X = 2\n"})
    spec = AttemptSpec(
        key="k-7-1",
        task_id=7,
        attempt=1,
        base=base,
        bundle=git.bundle(base),
        branch="task/g-7",
        agent=project.config.agent,
        argv=(project.config.agent.command, *project.config.agent.args),
        env=Sealed({"IS_SANDBOX": "1", "SECRET_TOKEN": "s3cr3t-value"}),
        prompt=prompt,
        gates=(GateConfig(**check("imports", "import feature")),),
        max_time_sec=60,
        idle_timeout_sec=30,
        kill_grace_sec=5,
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


# -- a real cluster ----------------------------------------------------------------------------


async def test_the_demo_generation_runs_on_two_dask_workers(
    fast_tmp: Path, cluster: Cluster
) -> None:
    demo = prepare_demo(fast_tmp / "demo", str(fast_tmp / "worktrees"))
    project = on_cluster(Project.open(demo), cluster)
    seen = started_runs(project)
    ancestry: dict[int, list[int]] = {}
    project.bus.add_listener(
        lambda e: ancestry.setdefault(e.pid, ancestors(e.pid))
        if isinstance(e, AgentStarted) and e.pid and e.phase == "stitch"
        else None
    )
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
    # The merged demo passes its own tests; no worktree or branch of a task is left.
    assert [w.path for w in project.git.worktrees()] == [project.root]
    assert project.git.branches("task/*") == []
