"""The store: schema version, WAL, transitions checked and logged in the same transaction."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from interleave import interleave
from shoemaker.events import Notice, TaskStateChanged
from shoemaker.model import GenerationState, IllegalTransition, Spend, TaskState, Usage
from shoemaker.store import (
    GateRecord,
    GenerationTotals,
    MetricsRecord,
    NewTask,
    Store,
    StoreError,
    TaskUsage,
)
from shoemaker.store.schema import SCHEMA_VERSION


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "state" / "shoemaker.db")
    s.create_generation("g1", "generation-g1", "main", "0" * 40)
    return s


def test_pragmas_and_version(store: Store) -> None:
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.integrity_check() == "ok"


def test_reopening_does_not_migrate_twice(store: Store) -> None:
    store.close()
    again = Store(store.path)
    assert again.get_generation("g1").base_branch == "main"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="upgrade shoemaker"):
        Store(path)


def test_tasks_with_dependencies_start_proposed(store: Store) -> None:
    tasks, events = store.add_tasks(
        "g1", [NewTask("a"), NewTask("b", after=(0,)), NewTask("c", after=(0, 1))], 1, "measure"
    )
    assert [t.state for t in tasks] == [TaskState.READY, TaskState.PROPOSED, TaskState.PROPOSED]
    assert tasks[2].depends_on == [tasks[0].id, tasks[1].id]
    assert [e.new for e in events] == ["ready", "proposed", "proposed"]


def test_a_bad_batch_inserts_nothing(store: Store) -> None:
    with pytest.raises(StoreError):
        store.add_tasks("g1", [NewTask("a"), NewTask("b", depends_on=(999,))], 1, "measure")
    assert store.list_tasks("g1") == []
    assert [e.kind for _, e in store.events_after(0)] == ["generation_state"]


def test_transitions_are_checked_and_logged_atomically(store: Store) -> None:
    (task,), _ = store.add_tasks("g1", [NewTask("a")], 1, "measure")
    with pytest.raises(IllegalTransition, match="ready → done"):
        store.transition_task(task.id, TaskState.DONE)
    before = store.last_event_seq()
    event = store.transition_task(
        task.id, TaskState.RUNNING, "go", count_attempt=True, worktree="/w", branch="task/g1-1"
    )
    assert isinstance(event, TaskStateChanged) and event.attempt == 1
    got = store.get_task(task.id)
    assert (got.state, got.attempts, got.worktree) == (TaskState.RUNNING, 1, "/w")
    assert [e for _, e in store.events_after(before)] == [event]


def test_done_promotes_and_failure_blocks_transitively(store: Store) -> None:
    tasks, _ = store.add_tasks(
        "g1",
        [NewTask("a"), NewTask("b", after=(0,)), NewTask("c", after=(1,)), NewTask("d")],
        1,
        "measure",
    )
    a, b, c, d = (t.id for t in tasks)
    for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING, TaskState.DONE):
        store.transition_task(a, state)
    assert [e.task_id for e in store.promote_unblocked("g1")] == [b]
    store.transition_task(b, TaskState.RUNNING)
    store.transition_task(b, TaskState.FAILED, "boom")
    blocked = store.block_dependents("g1", b)
    assert [e.task_id for e in blocked] == [c]
    assert store.get_task(c).state == TaskState.BLOCKED
    assert store.get_task(d).state == TaskState.READY


def test_done_and_the_promotions_it_causes_are_one_transaction(store: Store) -> None:
    tasks, _ = store.add_tasks(
        "g1", [NewTask("a"), NewTask("b", after=(0,)), NewTask("c", after=(0, 1))], 1, "measure"
    )
    a, b, _c = (t.id for t in tasks)
    for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
        store.transition_task(a, state)
    # A promotion that cannot be written takes the task's "done" with it.
    db = sqlite3.connect(store.path)
    db.execute(
        "CREATE TRIGGER no_ready BEFORE UPDATE OF state ON tasks WHEN NEW.state = 'ready' "
        "BEGIN SELECT RAISE(ABORT, 'promotion refused'); END"
    )
    db.commit()
    before = store.last_event_seq()
    with pytest.raises(sqlite3.DatabaseError, match="promotion refused"):
        store.finish_task(a, "merged", merged_commit="f" * 40)
    assert store.get_task(a).state == TaskState.MERGING and store.last_event_seq() == before
    db.execute("DROP TRIGGER no_ready")
    db.commit()
    db.close()
    events = store.finish_task(a, "merged", merged_commit="f" * 40)
    assert [(e.task_id, e.new) for e in events] == [(a, "done"), (b, "ready")]
    assert [e for _, e in store.events_after(before)] == events
    assert store.get_task(a).merged_commit == "f" * 40
    assert store.promote_unblocked("g1") == []  # idempotent


def test_two_tasks_finishing_together_promote_their_dependent_once(store: Store) -> None:
    tasks, _ = store.add_tasks(
        "g1", [NewTask("a"), NewTask("b"), NewTask("c", after=(0, 1))], 1, "measure"
    )
    a, b, c = (t.id for t in tasks)
    for task_id in (a, b):
        for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
            store.transition_task(task_id, state)
    store.transition_task(a, TaskState.DONE)
    store.transition_task(b, TaskState.DONE)
    # Two processes (two connections) promote at once. The first is held just before it
    # writes the promotion until the second has begun its own promotion: a check made
    # outside the writing transaction would then promote c twice (ready → ready).
    first, second = store, Store(store.path)
    first_writes, second_began = threading.Event(), threading.Event()

    def hold_first(sql: str) -> None:
        if sql.startswith("UPDATE tasks") and not first_writes.is_set():
            first_writes.set()
            second_began.wait(timeout=30)

    def note_second(sql: str) -> None:
        if sql.startswith("BEGIN"):
            second_began.set()

    first._db.set_trace_callback(hold_first)
    second._db.set_trace_callback(note_second)
    results: dict[str, object] = {}

    def promote(name: str, s: Store) -> None:
        try:
            results[name] = [e.task_id for e in s.promote_unblocked("g1")]
        except Exception as exc:  # the failure this test is about, reported below
            results[name] = exc

    one = threading.Thread(target=promote, args=("first", first))
    one.start()
    assert first_writes.wait(timeout=30)
    two = threading.Thread(target=promote, args=("second", second))
    two.start()
    one.join()
    two.join()
    assert second_began.is_set()
    assert results == {"first": [c], "second": []}
    assert store.get_task(c).state == TaskState.READY
    promotions = [e for _, e in store.events_after(0) if getattr(e, "new", None) == "ready"]
    assert [getattr(e, "task_id", None) for e in promotions].count(c) == 1
    second.close()


def _two_done_and_their_dependent(store: Store) -> tuple[int, int, int]:
    tasks, _ = store.add_tasks(
        "g1", [NewTask("a"), NewTask("b"), NewTask("c", after=(0, 1))], 1, "measure"
    )
    a, b, c = (t.id for t in tasks)
    for task_id in (a, b):
        for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
            store.transition_task(task_id, state)
    return a, b, c


@pytest.mark.parametrize("after", [1, 2, 3, 4, 5, 6])
def test_two_threads_promoting_at_once_promote_the_dependent_once(
    tmp_path: Path, after: int
) -> None:
    # The engine's workers call one Store from threads. The first thread stops after its
    # `after`-th store call, the second promotes right there, then the first goes on: a
    # promotion checked in one call and written in another (the race a 200-task run met as
    # "illegal transition ready → ready") fails at one of these points.
    store = Store(tmp_path / "shoemaker.db")
    store.create_generation("g1", "generation-g1", "main", "0" * 40)
    a, b, c = _two_done_and_their_dependent(store)
    store.transition_task(a, TaskState.DONE)
    store.transition_task(b, TaskState.DONE)
    before = store.last_event_seq()

    def promote() -> list[int]:
        return [e.task_id for e in store.promote_unblocked("g1")]

    first, second, _ = interleave(store, after, promote, promote)
    assert (first, second) in (([c], []), ([], [c])), (first, second)
    assert store.get_task(c).state == TaskState.READY
    assert [getattr(e, "task_id", None) for _, e in store.events_after(before)] == [c]


def test_two_tasks_finished_by_two_threads_promote_their_dependent_once(tmp_path: Path) -> None:
    # The engine's path: each worker records its task done with the promotions it causes, in
    # one store call, so the other thread's call comes before or after it, never inside.
    store = Store(tmp_path / "shoemaker.db")
    store.create_generation("g1", "generation-g1", "main", "0" * 40)
    a, b, c = _two_done_and_their_dependent(store)
    first, second, _ = interleave(
        store,
        1,
        lambda: [e.task_id for e in store.finish_task(a, "merged")],
        lambda: [e.task_id for e in store.finish_task(b, "merged")],
    )
    assert (first, second) == ([a], [b, c])
    assert store.get_task(c).state == TaskState.READY


def test_event_log_is_append_only(store: Store) -> None:
    store.append_events([Notice(message="hello")])
    db = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET kind = 'x'")


def test_runs_keep_env_names_and_a_compressed_transcript(store: Store) -> None:
    run_id = store.start_run(
        generation="g1",
        task_id=None,
        phase="measure",
        attempt=0,
        prompt="p",
        argv=["claude", "-p"],
        env_names=["PATH", "ANTHROPIC_API_KEY"],
        cwd="/x",
    )
    raw = b'{"type":"result"}\n' * 1000
    store.finish_run(
        run_id,
        transcript=raw,
        exit_code=0,
        ok=True,
        cost_usd=0.5,
        model_usage={"m": {"costUSD": 0.5}},
    )
    run = store.get_run(run_id)
    assert run.env_names == ["ANTHROPIC_API_KEY", "PATH"]
    assert run.ok is True and run.model_usage == {"m": {"costUSD": 0.5}}
    assert store.transcript(run_id) == raw
    stored = sqlite3.connect(store.path).execute("SELECT length(transcript) FROM runs").fetchone()
    assert stored[0] < len(raw) / 10


def test_generation_state_machine(store: Store) -> None:
    event = store.set_generation_state("g1", GenerationState.RUNNING, "run")
    assert event is not None and event.old == "active"
    store.set_generation_state("g1", GenerationState.STOPPED, "merged")
    with pytest.raises(IllegalTransition):
        store.set_generation_state("g1", GenerationState.RUNNING)
    assert store.open_generations() == []


def test_reads_return_records_with_one_usage(store: Store) -> None:
    (task,), _ = store.add_tasks("g1", [NewTask("t")], cycle=1, source="test")
    runs = []
    for usage, cost in ((Usage(10, 2, 3, 4), 0.25), (Usage(1, 1, 0, 6), 0.5)):
        run_id = store.start_run(
            generation="g1",
            task_id=task.id,
            phase="stitch",
            attempt=1,
            prompt="p",
            argv=["a"],
            env_names=[],
            cwd="/x",
        )
        store.finish_run(run_id, transcript=b"", usage=usage, cost_usd=cost, wall_s=1.0)
        runs.append(run_id)
    assert [store.get_run(r).usage for r in runs] == [Usage(10, 2, 3, 4), Usage(1, 1, 0, 6)]
    # The columns stay four: a record's usage is read back from, and written to, each.
    row = sqlite3.connect(store.path).execute(
        "SELECT input_tokens, output_tokens, cache_creation_input_tokens, "
        "cache_read_input_tokens FROM runs WHERE id = ?",
        (runs[0],),
    )
    assert row.fetchone() == (10, 2, 3, 4)
    both = Usage(11, 3, 3, 10)
    assert store.task_usage("g1") == {task.id: TaskUsage(both, 0.75, 2.0, 2)}
    spent = store.spend(generation="g1")
    assert spent == Spend(both, 0.75, 2.0) and spent.tokens == 14  # a budget counts in + out
    store.record_gate(
        task_id=task.id,
        run_id=runs[1],
        name="tests",
        location="worktree",
        passed=False,
        exit_code=1,
        duration_s=0.5,
        output_tail="boom",
    )
    (gate,) = store.gate_results(task.id)
    assert isinstance(gate, GateRecord)
    assert (gate.run_id, gate.name, gate.passed, gate.exit_code, gate.output_tail) == (
        runs[1],
        "tests",
        False,
        1,
        "boom",
    )
    assert store.metrics(task.id) is None
    store.record_metrics(
        task.id,
        commit_sha="c",
        merge_sha="m",
        files_changed=1,
        insertions=5,
        deletions=2,
        prod_loc_before=10,
        prod_loc_after=13,
        test_loc_before=0,
        test_loc_after=0,
        duration_s=3.0,
    )
    metrics = store.metrics(task.id)
    assert isinstance(metrics, MetricsRecord)
    assert (metrics.merge_sha, metrics.insertions, metrics.deletions) == ("m", 5, 2)
    assert store.generation_totals("g1") == GenerationTotals(2, both, 0.75, 5, 2)
    assert store.generation_totals("nothing") == GenerationTotals()


def test_a_task_from_a_plan_file_keeps_its_source_and_a_done_one_unblocks_its_dependents(
    store: Store,
) -> None:
    from shoemaker.model import PlanGate, TaskOrigin

    origin = TaskOrigin("epics", "docs/plans/core/epic-01-a.md", "core/E01")
    tasks, _ = store.add_tasks(
        "g1",
        [
            NewTask("a", origin=origin, done=True, extras={"github_issue": 7}),
            NewTask(
                "b",
                after=(0,),
                needs_review=True,
                plan_gates=(PlanGate("lint", "ruff check"), PlanGate("docs")),
                origin=TaskOrigin("epics", "docs/plans/core/epic-02-b.md", "core/E02"),
            ),
        ],
        1,
        "import",
    )
    a, b = (store.get_task(t.id) for t in tasks)
    assert (a.state, a.origin, a.extras, a.external_id) == (
        TaskState.DONE,
        origin,
        {"github_issue": 7},
        "core/E01",
    )
    assert b.state == TaskState.READY and b.needs_review
    assert b.plan_gates == (PlanGate("lint", "ruff check"), PlanGate("docs", ""))
    # A task that has not started takes its plan file's new text; a started one does not.
    assert store.update_planned_text(b.id, "b2", "new text")
    assert store.get_task(b.id).description == "new text"
    store.transition_task(b.id, TaskState.RUNNING, count_attempt=True)
    assert not store.update_planned_text(b.id, "b3", "newer")
    assert store.get_task(b.id).title == "b2"
    # measure's tasks have no source.
    assert store.add_tasks("g1", [NewTask("c")], 1, "measure")[0][0].origin is None


def test_a_task_imported_meanwhile_is_refused_and_nothing_is_added(store: Store) -> None:
    from shoemaker.model import TaskOrigin

    origin = TaskOrigin("beads", ".beads/issues.jsonl", "bd-1")
    store.add_tasks("g1", [NewTask("a", origin=origin)], 1, "import")
    with pytest.raises(StoreError, match=r"bd-1 of \.beads/issues\.jsonl was imported meanwhile"):
        store.add_tasks("g1", [NewTask("b"), NewTask("a", origin=origin)], 1, "import")
    assert [t.title for t in store.list_tasks("g1")] == ["a"]
