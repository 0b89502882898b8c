"""Where an attempt runs is the place's business: the same tasks, stitched at home in a pooled
worktree and through the worker function (a cluster's place on the in-process runner), end in
the same states, with the same reasons, gates, commits and nothing left behind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from projects import check, make_project, task
from shoemaker.cluster.attempt import AttemptResult, AttemptSpec, EventSink, RunnerFailure
from shoemaker.cluster.worker import LocalRunner
from shoemaker.engine.generation import start_generation
from shoemaker.engine.measure import measure
from shoemaker.engine.places import AttemptPlace, ClusterPlace, LocalPlace
from shoemaker.engine.project import Project
from shoemaker.engine.remote import ClusterAttempts
from shoemaker.engine.stitch import Stitcher
from shoemaker.events import AgentStarted, TaskStateChanged
from shoemaker.model import TaskState

#: A gate that reads the work: it passes where the agent wrote ``a.py`` and fails where it
#: wrote ``bad.txt``, whichever machine it runs on.
GATE = check("sane", "import pathlib, sys; sys.exit(pathlib.Path('bad.txt').exists())")


async def stitched(
    root: Path, place: Callable[[Project], AttemptPlace]
) -> tuple[dict[str, Any], set[str]]:
    """What stitching two tasks (one that passes its gate, one that fails it) leaves, and the
    names of the workers their agents ran on."""
    project = make_project(
        root,
        [
            task("good", files={"a.py": "A = 1\n"}),
            task("bad", files={"bad.txt": "no\n"}),
        ],
        gates=[GATE],
    )
    gen = start_generation(project, "g")
    listed = await measure(project, gen, 1)
    stitcher = Stitcher(project, gen, place=place(project))
    outcomes = [await stitcher.stitch(t) for t in listed]
    stitcher.pool.close()
    await stitcher.place.close()
    tasks = project.store.list_tasks(gen.name)
    landed = project.git.log(f"{gen.start_commit}..{gen.branch}")
    seen = {
        "outcomes": [(o.task_id, o.state, o.reason) for o in outcomes],
        "tasks": [(t.id, t.state, t.reason, t.attempts, t.interruptions) for t in tasks],
        "gates": [
            [(g.name, g.location, g.passed, g.exit_code) for g in project.store.gate_results(t.id)]
            for t in tasks
        ],
        "runs": [(r.task_id, r.attempt, r.ok) for r in project.store.runs()],
        "landed": [(c.subject, c.trailers.get("Shoemaker-Task")) for c in landed],
        "files": [f.path for f in project.git.diff_stat(gen.start_commit, gen.branch).files],
        "worktrees": [w.path for w in project.git.worktrees()] == [project.root],
        "branches": project.git.branches("task/*") + project.git.branches("attempt/*"),
    }
    started = project.store.events_of_kind(gen.name, ["agent_started"])
    workers = {e.worker for e in started if isinstance(e, AgentStarted) and e.phase == "stitch"}
    project.store.close()
    return seen, workers


async def test_a_task_lands_the_same_way_at_home_and_through_the_worker_function(
    fast_tmp: Path,
) -> None:
    home, at_home = await stitched(fast_tmp / "home", LocalPlace)
    worker, on_worker = await stitched(
        fast_tmp / "worker", lambda project: ClusterPlace(ClusterAttempts(project, LocalRunner()))
    )
    assert (at_home, on_worker) == ({""}, {LocalRunner.name})  # each ran where it was placed
    assert worker == home
    # And what both did is what the tasks asked for: one landed, one given back by its gate.
    assert [state for _, state, *_ in home["tasks"]] == [TaskState.DONE, TaskState.READY]
    assert home["files"] == ["a.py"]
    assert home["gates"] == [
        [("sane", "worktree", True, 0), ("sane", "merged", True, 0)],
        [("sane", "worktree", False, 1)],
    ]
    assert home["worktrees"] and home["branches"] == ["attempt/g-2-1"]


class SchedulerGone:
    """A cluster whose scheduler is gone when the attempt is sent (what cannot be timed here:
    the scheduler dying under attempts already at work, as every one of them sees it)."""

    async def run(self, spec: AttemptSpec, on_event: EventSink) -> AttemptResult:
        raise RunnerFailure("scheduler-gone", "the dask scheduler at tcp://127.0.0.1:9 went away")

    async def close(self) -> None:
        return None


async def test_an_attempt_cancelled_while_it_puts_its_task_back_ends_once_the_task_is_ready(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost scheduler fails every attempt at once; the first to stop the run has the others
    cancelled, maybe while they put their tasks back to ready (slow on a loaded machine, held
    here). The cancelled one ends only after its task is ready: the paused run leaves no task
    ``running``."""
    project = make_project(fast_tmp, [task("quick", files={"a.py": "A = 1\n"})])
    gen = start_generation(project, "g")
    (listed,) = await measure(project, gen, 1)
    store, loop = project.store, asyncio.get_running_loop()
    putting_back, hold = asyncio.Event(), threading.Event()
    order: list[str] = []
    transition = store.transition_task

    def held(task_id: int, new: TaskState, reason: str = "", **kw: Any) -> TaskStateChanged:
        if new != TaskState.READY:
            return transition(task_id, new, reason, **kw)
        loop.call_soon_threadsafe(putting_back.set)
        hold.wait()  # set by the test once it has cancelled the attempt
        changed = transition(task_id, new, reason, **kw)
        order.append("ready")
        return changed

    monkeypatch.setattr(store, "transition_task", held)
    place = ClusterPlace(ClusterAttempts(project, SchedulerGone()))
    stitcher = Stitcher(project, gen, place=place)
    stitching = asyncio.create_task(stitcher.stitch(listed))
    stitching.add_done_callback(lambda _: order.append("ended"))
    try:
        await putting_back.wait()
        stitching.cancel()
        # A few turns of the loop, no time: more than a stitch that let go of its thread
        # needs to end (its done callback included); the thread is held all along.
        for _ in range(10):
            await asyncio.sleep(0)
    finally:
        hold.set()
    with pytest.raises(asyncio.CancelledError):
        await stitching
    assert order == ["ready", "ended"]
    back = store.get_task(listed.id)
    assert back.state == TaskState.READY and "scheduler" in back.reason, back.reason
    stitcher.pool.close()
    store.close()
