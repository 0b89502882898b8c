"""The bus owns delivery: the store announces what it commits, listeners hear it on the loop."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from shoemaker.engine.bus import EventBus
from shoemaker.events import (
    AgentFinished,
    AgentOutput,
    AgentStarted,
    CycleStarted,
    Event,
    MetricsRecorded,
    Notice,
    OutputLine,
    TaskStateChanged,
    parse_event,
)
from shoemaker.model import IllegalTransition, TaskState
from shoemaker.secrets import Redactor
from shoemaker.store import NewTask, Store


def wired(path: Path, redactor: Redactor | None = None) -> tuple[Store, EventBus]:
    """A store and a bus wired as ``Project.open`` wires them."""
    db = path / "shoemaker.db"
    store = Store(db, redactor) if redactor else Store(db)
    bus = EventBus(store, *([redactor] if redactor else []))
    store.on_commit = bus.announce_all
    return store, bus


def test_store_announces_each_committed_transaction_once_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "shoemaker.db")
    heard: list[list[Event]] = []
    store.on_commit = heard.append
    _, created = store.create_generation("g", "generation-g", "main", "0" * 40)
    tasks, added = store.add_tasks(
        "g", [NewTask("a"), NewTask("b", after=(0,)), NewTask("c", after=(0,))], 1, "test"
    )
    assert heard == [[created], added]
    a = tasks[0].id
    for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
        store.transition_task(a, state)
    heard.clear()
    done = store.finish_task(a, "merged")
    # The done and the two promotions it causes: one transaction, one announcement.
    assert [(e.task_id, e.new) for e in done] == [(a, "done"), (a + 1, "ready"), (a + 2, "ready")]
    assert heard == [done]
    heard.clear()
    store.next_cycle("g")  # a transaction that writes no event announces nothing
    assert store.append_events([]) == 0
    assert heard == []


def test_a_rolled_back_transaction_announces_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "shoemaker.db")
    store.create_generation("g", "generation-g", "main", "0" * 40)
    (a, b), _ = store.add_tasks("g", [NewTask("a"), NewTask("b", after=(0,))], 1, "test")
    for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
        store.transition_task(a.id, state)
    heard: list[list[Event]] = []
    store.on_commit = heard.append
    db = sqlite3.connect(store.path)
    db.execute(
        "CREATE TRIGGER no_ready BEFORE UPDATE OF state ON tasks WHEN NEW.state = 'ready' "
        "BEGIN SELECT RAISE(ABORT, 'promotion refused'); END"
    )
    db.commit()
    # The done was written (and its event inserted) before the promotion failed.
    with pytest.raises(sqlite3.DatabaseError, match="promotion refused"):
        store.finish_task(a.id, "merged")
    with pytest.raises(IllegalTransition):
        store.transition_task(b.id, TaskState.DONE)
    assert heard == []
    db.execute("DROP TRIGGER no_ready")
    db.commit()
    db.close()
    # The next transaction announces only its own events, none left over from the others.
    assert heard == [] and store.get_task(a.id).state == TaskState.MERGING
    events = store.finish_task(a.id, "merged")
    assert heard == [events] and [e.task_id for e in events] == [a.id, b.id]


def test_a_write_and_the_event_announcing_it_are_one_transaction(tmp_path: Path) -> None:
    """The run's pid, its outcome, a task's metrics and a new cycle carry their events: each
    is announced with (and only with) the write it announces, and is in the log with it."""
    store = Store(tmp_path / "shoemaker.db")
    store.create_generation("g", "generation-g", "main", "0" * 40)
    (task,), _ = store.add_tasks("g", [NewTask("a")], 1, "test")
    heard: list[list[Event]] = []
    store.on_commit = heard.append
    run_id = store.start_run(
        generation="g",
        task_id=task.id,
        phase="stitch",
        attempt=1,
        prompt="p",
        argv=["agent"],
        env_names=[],
        cwd="/x",
    )
    started = AgentStarted(
        generation="g",
        run_id=run_id,
        task_id=task.id,
        phase="stitch",
        attempt=1,
        argv=["agent"],
        cwd="/x",
        pid=42,
    )
    store.set_run_pid(run_id, 42, started)
    finished = AgentFinished(
        generation="g",
        run_id=run_id,
        task_id=task.id,
        phase="stitch",
        ok=True,
        exit_code=0,
        ended="result",
    )
    run = store.finish_run(run_id, transcript=b"", ok=True, cost_usd=0.25, announce=finished)
    metrics = MetricsRecorded(generation="g", task_id=task.id, insertions=3)
    record = store.record_metrics(
        task.id,
        metrics,
        commit_sha="c",
        merge_sha="m",
        files_changed=1,
        insertions=3,
        deletions=0,
        prod_loc_before=0,
        prod_loc_after=3,
        test_loc_before=0,
        test_loc_after=0,
        duration_s=1.0,
    )
    cycle = store.next_cycle("g", announce=True)
    assert heard[:3] == [[started], [finished], [metrics]]
    assert heard[3] == [CycleStarted(generation="g", cycle=cycle, ts=heard[3][0].ts)]
    # What the calls return is what a later read finds.
    assert (run.pid, run.ok, run.cost_usd) == (42, True, 0.25) and run == store.get_run(run_id)
    assert record == store.metrics(task.id)
    logged = [e.kind for _, e in store.events_after(0, generation="g")]
    assert logged[-4:] == ["agent_started", "agent_finished", "metrics", "cycle_started"]


def test_without_a_running_loop_delivery_is_synchronous(tmp_path: Path) -> None:
    store, bus = wired(tmp_path)
    heard: list[tuple[int, Event]] = []
    bus.add_listener(lambda e: heard.append((threading.get_ident(), e)))
    _, created = store.create_generation("g", "generation-g", "main", "0" * 40)
    assert heard == [(threading.get_ident(), created)]
    bus.emit(Notice(generation="g", message="hello"))
    assert [e.kind for _, e in heard] == ["generation_state", "log"]
    # Emitted events are persisted, then delivered once.
    assert [e for _, e in store.events_after(0)] == [e for _, e in heard]


async def test_commits_on_worker_threads_are_delivered_on_the_loop_in_commit_order(
    tmp_path: Path,
) -> None:
    store, bus = wired(tmp_path)
    loop_thread = threading.get_ident()
    heard: list[tuple[int, Event]] = []
    bus.add_listener(lambda e: heard.append((threading.get_ident(), e)))
    await asyncio.to_thread(store.create_generation, "g", "generation-g", "main", "0" * 40)
    tasks, _ = await asyncio.to_thread(
        store.add_tasks, "g", [NewTask(f"t{i}") for i in range(8)], 1, "test"
    )

    def walk(task_id: int) -> None:
        for state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
            store.transition_task(task_id, state, f"walk {task_id}")
            bus.emit(Notice(generation="g", task_id=task_id, message=f"{task_id} is {state}"))
        store.finish_task(task_id, "merged")

    # Eight workers commit at once, interleaving; the loop writes meanwhile too.
    workers = [asyncio.to_thread(walk, t.id) for t in tasks]
    bus.emit(Notice(generation="g", message="from the loop"))
    await asyncio.gather(*workers)
    assert {thread for thread, _ in heard} == {loop_thread}
    committed = [e for _, e in store.events_after(0, limit=10_000)]
    assert [e for _, e in heard] == committed
    assert len(committed) == 1 + 8 + 1 + 8 * 7  # generation, tasks, the loop's log, walks


async def test_a_write_by_a_listener_is_delivered_after_the_event_it_answers(
    tmp_path: Path,
) -> None:
    store, bus = wired(tmp_path)
    store.create_generation("g", "generation-g", "main", "0" * 40)
    heard: list[str] = []

    def answer(event: Event) -> None:
        heard.append(f"{event.kind} begins")
        if isinstance(event, TaskStateChanged) and event.new == TaskState.READY:
            store.transition_task(event.task_id, TaskState.RUNNING, "answered")
        heard.append(f"{event.kind} ends")

    bus.add_listener(answer)
    (task,), _ = await asyncio.to_thread(store.add_tasks, "g", [NewTask("a")], 1, "test")
    assert heard == ["task_state begins", "task_state ends"] * 2
    assert store.get_task(task.id).state == TaskState.RUNNING


async def test_a_closed_loop_falls_back_to_synchronous_delivery(tmp_path: Path) -> None:
    store, bus = wired(tmp_path)
    other = asyncio.new_event_loop()
    other.close()
    bus.bind_loop(other)  # e.g. the loop of an earlier asyncio.run in the same process
    heard: list[Event] = []
    bus.add_listener(heard.append)  # on this loop's thread: binds to the running loop again
    bus.bind_loop(other)
    created = await asyncio.to_thread(
        lambda: store.create_generation("g", "generation-g", "main", "0" * 40)[1]
    )
    assert heard == [created]


def test_secrets_never_reach_a_listener(tmp_path: Path) -> None:
    store, bus = wired(tmp_path, Redactor({"hunter2hunter2": "API_KEY"}))
    heard: list[Event] = []
    bus.add_listener(heard.append)
    store.create_generation("g", "generation-g", "main", "0" * 40)
    store.add_tasks("g", [NewTask("use hunter2hunter2")], 1, "test")
    bus.emit(Notice(generation="g", message="the key is hunter2hunter2"))
    assert heard and not any("hunter2hunter2" in e.model_dump_json() for e in heard)


def test_state_events_carry_enums_and_keep_their_json() -> None:
    from shoemaker.events import GenerationStateChanged, parse_event
    from shoemaker.model import GenerationState

    task = TaskStateChanged(
        ts=1.5, generation="g", task_id=3, title="t", old=None, new=TaskState.READY, attempt=1
    )
    gen = GenerationStateChanged(
        ts=2.0, generation="g", old=GenerationState.ACTIVE, new=GenerationState.RUNNING
    )
    # The stream and the stored events read exactly as when the states were plain strings.
    assert task.model_dump_json() == (
        '{"ts":1.5,"generation":"g","kind":"task_state","task_id":3,"title":"t","old":null,'
        '"new":"ready","reason":"","attempt":1,"depends_on":[]}'
    )
    assert gen.model_dump_json() == (
        '{"ts":2.0,"generation":"g","kind":"generation_state","old":"active","new":"running",'
        '"reason":"","branch":"","base_branch":""}'
    )
    for event in (task, gen):
        back = parse_event(event.model_dump_json())
        assert back == event and back.model_dump_json() == event.model_dump_json()
    back_task = parse_event(task.model_dump_json())
    assert isinstance(back_task, TaskStateChanged) and back_task.new is TaskState.READY


class CountingRedactor(Redactor):
    """A redactor that counts its passes, to prove a batch is read once."""

    def __init__(self, secrets: dict[str, str]) -> None:
        super().__init__(secrets)
        self.passes = 0

    def text(self, value: str) -> str:
        self.passes += 1
        return super().text(value)

    def data(self, value: bytes) -> bytes:
        self.passes += 1
        return super().data(value)


class Lines:
    """A batch's lines as the engine keeps them: made when asked for, ``clean`` applied."""

    def __init__(self, texts: tuple[str, ...], clean: Redactor | None) -> None:
        self.texts, self.clean = texts, clean
        self.asked: list[int | None] = []

    def __call__(self, most: int | None) -> list[OutputLine]:
        self.asked.append(most)
        kept = self.texts if most is None else self.texts[len(self.texts) - most :]
        return [("assistant", self.clean.text(t) if self.clean else t) for t in kept]


def output_batch(*texts: str, clean: Redactor | None = None) -> AgentOutput:
    return AgentOutput.of("g", 7, 3, (100, 180), len(texts) + 1, Lines(texts, clean))


def test_a_batch_of_agent_output_is_one_row_of_references_redacted_in_one_pass(
    tmp_path: Path,
) -> None:
    redactor = CountingRedactor({"hunter2hunter2": "API_KEY"})
    store, bus = wired(tmp_path, redactor)
    heard: list[Event] = []
    bus.add_listener(heard.append)
    before = store.last_event_seq()
    batch = output_batch("reading", 'the key is "hunter2hunter2"', "done", clean=redactor)
    bus.emit(batch)
    assert redactor.passes == 1  # the batch's JSON, once: no pass per line, none on delivery
    assert store.last_event_seq() == before + 1
    ((_, stored),) = store.events_after(before)
    (delivered,) = heard
    assert stored == delivered and delivered is batch  # delivered as built, its lines unmade
    assert json.loads(stored.json_bytes()) == {
        "ts": batch.ts,
        "generation": "g",
        "kind": "agent_output",
        "run_id": 7,
        "task_id": 3,
        "start": 100,
        "end": 180,
        "read": 4,
    }
    assert isinstance(stored, AgentOutput) and stored.texts == []  # no source: no text
    assert delivered.texts == ["reading", 'the key is "[redacted API_KEY]"', "done"]
    row = sqlite3.connect(tmp_path / "shoemaker.db").execute("SELECT data FROM events").fetchall()
    assert not any("hunter2hunter2" in data or "reading" in data for (data,) in row)


def test_a_batch_is_condensed_once_and_a_tail_only_as_far_as_it_goes() -> None:
    lines = Lines(("one", "two", "three"), None)
    batch = AgentOutput.of("g", 7, 3, (0, 30), 3, lines)
    asked = lines.asked
    assert batch.shown(2) == [("assistant", "two"), ("assistant", "three")]
    assert asked == [2]
    assert batch.texts == ["one", "two", "three"] and batch.texts == ["one", "two", "three"]
    assert batch.shown(1) == [("assistant", "three")]
    assert asked == [2, None]  # the whole batch once; the tail after it from the same lines


def test_a_batch_holding_a_lone_surrogate_still_prints() -> None:
    batch = output_batch("broken \ud800 escape")  # json.loads('"\\ud800"') gives one
    assert json.loads(batch.ndjson_bytes())["lines"] == [["assistant", "broken ? escape"]]


def test_the_printers_show_every_line_of_a_batch(tmp_path: Path) -> None:
    from io import StringIO

    from rich.console import Console

    from shoemaker.headless import NdjsonPrinter, StoryPrinter

    _, bus = wired(tmp_path)
    out, story = StringIO(), StringIO()
    bus.add_listener(NdjsonPrinter(out))
    bus.add_listener(StoryPrinter(Console(file=story, width=200, highlight=False)))
    batch = output_batch("[Read: src/x.py]", "all [b]good[/b]")
    bus.emit(batch)
    (line,) = out.getvalue().splitlines()
    assert parse_event(line) == batch  # the stored event, its lines added
    assert json.loads(line)["lines"] == [
        ["assistant", "[Read: src/x.py]"],
        ["assistant", "all [b]good[/b]"],
    ]
    assert story.getvalue().splitlines() == ["#3   [Read: src/x.py]", "#3   all [b]good[/b]"]


def test_a_copy_of_an_event_is_serialised_anew() -> None:
    notice = Notice(generation="g", message="before")
    assert b"before" in notice.json_bytes()
    changed = notice.model_copy(update={"message": "after"})
    assert b"after" in changed.json_bytes() and b"before" not in changed.json_bytes()
