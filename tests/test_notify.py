"""Notifications: apprise sending the real payloads of a real run (the rehearsal agent as a
process) to loopback servers, as a json:// webhook and as an ntfy server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from textual.pilot import Pilot

from clock import ManualClock
from notify_server import ARRIVAL_LIMIT_S, Received, receiver, silent_port
from projects import cli, make_project, task
from shoemaker.config import NotifyChannel, load_config
from shoemaker.config.file import ConfigError
from shoemaker.config.notify import NOTIFY_EVENTS
from shoemaker.engine.ending import stop_generation
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.events import (
    BatchFinished,
    BudgetCrossed,
    Event,
    GenerationStateChanged,
    Notice,
    RateLimitCleared,
    RateLimited,
    Recovered,
    TaskStateChanged,
)
from shoemaker.model import GenerationState, TaskState
from shoemaker.notify import BUILDERS, Notifier, message_for
from shoemaker.store import NewTask
from shoemaker.tui.app import ShoemakerApp
from shoemaker.tui.metrics import MetricsPanel

SECRET = "sk-notify-test-0123456789abcdef"


def notices(project: Project) -> list[str]:
    return [
        e.message for _, e in project.store.events_after(0, limit=100_000) if isinstance(e, Notice)
    ]


def titles(requests: list[Received]) -> list[str]:
    return [r.json["title"] for r in requests]


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"url": "ntfy.sh/topic"}, "notify.0.url: must be an apprise URL such as ntfy://"),
        ({"events": ["task_failed"]}, "notify.0.url: required; add it"),
        (
            {"url": "json://h/p", "events": ["task_fialed"]},
            "notify.0.events: unknown event 'task_fialed' (did you mean task_failed?)",
        ),
        ({"url": "json://h/p", "events": []}, "notify.0.events: names no event"),
        ({"url": "json://h/p", "event": ["task_failed"]}, "notify.0.event: unknown setting"),
    ],
)
def test_a_bad_channel_is_one_line_naming_its_field(
    tmp_path: Path, entry: dict[str, object], says: str
) -> None:
    (tmp_path / "configuration.yaml").write_text(yaml.safe_dump({"notify": [entry]}))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and says in message, message


def test_a_channel_wants_every_event_unless_it_names_some() -> None:
    assert NotifyChannel(url="ntfy://h/t").events == list(NOTIFY_EVENTS)
    # The names of events that other features emit are in the fixed list already.
    assert {"rate_limited", "batch_finished"} <= set(NOTIFY_EVENTS)


def test_every_builder_makes_a_message_with_a_listed_name() -> None:
    events: list[Event] = [
        TaskStateChanged(generation="g", task_id=1, title="t", old=TaskState.RUNNING, new=s)
        for s in (TaskState.FAILED, TaskState.BLOCKED, TaskState.NEEDS_REVIEW)
    ]
    made = [
        message_for(e, "repo")
        for e in events
        + [
            TaskStateChanged(
                generation="g", task_id=1, title="t", old=TaskState.MERGING, new=TaskState.CONFLICT
            ),
            BudgetCrossed(
                generation="g",
                scope="day",
                metric="usd",
                spent=2,
                limit=1,
                action="finish",
                message="day $2.00 of $1.00",
            ),
            Recovered(generation="g", summary="1 task(s) back to ready"),
            BatchFinished(
                generation="g", schedule="nightly", outcome="finished", reason="r", notify=True
            ),
            RateLimited(generation="g", status="allowed_warning", resets_at=0, parallel=1),
            RateLimitCleared(generation="g", status="rejected", resets_at=0),
        ]
        + [
            GenerationStateChanged(generation="g", old=old, new=new, reason="why")
            for old, new in [
                (GenerationState.RUNNING, GenerationState.ACTIVE),
                (GenerationState.RUNNING, GenerationState.PAUSED),
                (GenerationState.ACTIVE, GenerationState.STOPPED),
            ]
        ]
    ]
    assert all(m is not None and m.event in NOTIFY_EVENTS for m in made)
    assert {m.event for m in made if m} == set(NOTIFY_EVENTS)
    assert all("repository repo" in m.body and "generation g" in m.body for m in made if m)
    assert set(BUILDERS) == {
        TaskStateChanged,
        GenerationStateChanged,
        BudgetCrossed,
        Recovered,
        BatchFinished,
        RateLimited,
        RateLimitCleared,
    }
    # Progress that needs nobody makes no message.
    started = GenerationStateChanged(
        generation="g", old=GenerationState.ACTIVE, new=GenerationState.RUNNING
    )
    done = TaskStateChanged(
        generation="g", task_id=1, title="t", old=TaskState.MERGING, new=TaskState.DONE
    )
    assert message_for(started, "repo") is None and message_for(done, "repo") is None
    quiet = BatchFinished(generation="g", schedule="s", outcome="finished", reason="r")
    assert message_for(quiet, "repo") is None  # its schedule did not ask to be told


# -- a real run -------------------------------------------------------------------------------


async def test_a_failing_task_reaches_a_json_webhook_and_an_ntfy_server(fast_tmp: Path) -> None:
    with receiver() as server:
        project = make_project(
            fast_tmp,
            [task("Break things", outcome="max_turns", files={"x.py": "x = 1\n"})],
            max_retries=0,
            notify=[
                {"url": server.url("json", "hook")},
                {"url": server.url("ntfy", "shoemaker-alerts"), "events": ["task_failed"]},
            ],
        )
        start_generation(project, "g1")
        report = await Engine(project).run(cycles=1)
        assert report.failed == 1
        got = await asyncio.to_thread(
            server.wait_for,
            lambda r: len([x for x in r if x.path == "/hook"]) >= 2 and len(r) >= 3,
        )
    hook = [r for r in got if r.path == "/hook"]
    ntfy = [r for r in got if r.path != "/hook"]
    failed = next(r.json for r in hook if "failed" in r.json["title"])
    assert failed["type"] == "failure" and failed["title"] == "shoemaker: task #1 failed"
    task_row = project.store.list_tasks("g1")[0]
    assert failed["message"] == (
        f"repository repo, generation g1, task #1 'Break things': {task_row.reason}"
    )
    assert "shoemaker: generation g1 finished its run" in titles(hook)
    # ntfy: the topic in the JSON body, only the event this channel asked for.
    assert [r.json["topic"] for r in ntfy] == ["shoemaker-alerts"]
    assert ntfy[0].json["title"] == "shoemaker: task #1 failed"
    assert project.notifier is not None and project.notifier.flush()
    status = project.notifier.status
    assert status.failed == 0 and status.sent == len(got)


def test_a_scheduled_batch_that_asks_to_be_told_reaches_the_channel(fast_tmp: Path) -> None:
    with receiver() as server:
        project = make_project(
            fast_tmp,
            [task(name, files={f"{name.lower()}.py": "X = 1\n"}) for name in ("One", "Two")],
            notify=[{"url": server.url("json", "hook"), "events": ["batch_finished"]}],
            schedules=[
                {"name": "nightly", "cron": "0 2 * * *", "max_tasks": 1, "notify_on_complete": 1}
            ],
        )
        start_generation(project, "g1")
        done = cli(project, "schedule", "run", "nightly")
        (got,) = server.wait_for(lambda r: len(r) >= 1)
    assert done.returncode == 0, done.stderr
    assert got.json["title"] == "shoemaker: batch nightly finished"
    assert got.json["message"] == (
        "repository repo, generation g1: max_tasks reached (1 task(s) started) (1 done, 0 failed)"
    )


async def test_a_rate_limit_pause_and_its_end_reach_the_channel(fast_tmp: Path) -> None:
    reset = 1_900_000_600.0
    with receiver() as server:
        project = make_project(
            fast_tmp,
            [
                task(
                    "Hello",
                    files={"hello.py": "HELLO = 1\n"},
                    on_attempt={1: {"rate_limit": {"status": "rejected", "resets_at": reset}}},
                )
            ],
            notify=[{"url": server.url("json", "hook"), "events": ["rate_limited"]}],
        )
        start_generation(project, "g1")
        clock = project.clock = ManualClock(reset - 600)
        run = asyncio.create_task(Engine(project).run(cycles=1))
        (paused,) = await asyncio.to_thread(server.wait_for, lambda r: len(r) >= 1)
        await clock.waiting_until(reset)
        clock.advance(600)
        await asyncio.wait_for(run, ARRIVAL_LIMIT_S)
        got = await asyncio.to_thread(server.wait_for, lambda r: len(r) >= 2)
    assert paused.json["title"] == (
        "shoemaker: generation g1 paused by the provider's rate limit until 2030-03-17 17:56:40 UTC"
    )
    assert paused.json["message"].startswith(
        "repository repo, generation g1, task #1: no agent starts before then"
    )
    assert titles(got)[1] == "shoemaker: generation g1 runs again"


def test_a_headless_run_sends_before_the_process_ends(fast_tmp: Path) -> None:
    with receiver() as server:
        project = make_project(
            fast_tmp,
            [task("Break things", outcome="max_turns", files={"x.py": "x = 1\n"})],
            max_retries=0,
            notify=[{"url": server.url("ntfy", "alerts")}],
        )
        start_generation(project, "g1")
        done = cli(project, "run", "--cycles", "1")
        # The run's last message (its end) is sent as the process ends, not lost with it.
        got = server.wait_for(lambda r: len(r) >= 2)
    assert done.returncode == 1, done.stderr
    assert titles(got) == [
        "shoemaker: task #1 failed",
        "shoemaker: generation g1 finished its run",
    ]


async def test_a_secret_in_a_reason_never_reaches_the_server(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", SECRET)  # a secret by its name
    with receiver() as server:
        project = make_project(
            fast_tmp,
            [
                task(
                    "Needs a key",
                    signal={"status": "blocked", "reason": f"the key {SECRET} is refused"},
                    files={"x.py": "x = 1\n"},
                )
            ],
            notify=[{"url": server.url("json", "hook"), "events": ["task_blocked"]}],
        )
        start_generation(project, "g1")
        await Engine(project).run(cycles=1)
        assert project.notifier is not None
        # And an event that never went through the store: the notifier redacts on its own.
        project.notifier(
            TaskStateChanged(
                generation="g1",
                task_id=9,
                title=f"use {SECRET}",
                old=TaskState.RUNNING,
                new=TaskState.BLOCKED,
                reason=f"needs {SECRET}",
            )
        )
        got = await asyncio.to_thread(server.wait_for, lambda r: len(r) >= 2)
    assert project.store.list_tasks("g1")[0].state == TaskState.BLOCKED
    for request in got:
        assert SECRET not in request.body.decode(), request.body
        assert "[redacted MY_SERVICE_API_KEY]" in request.json["message"]


async def test_an_unreachable_channel_neither_slows_nor_fails_the_run(fast_tmp: Path) -> None:
    with receiver() as server, silent_port() as (port, listener):
        project = make_project(
            fast_tmp,
            [task("Break things", outcome="max_turns", files={"x.py": "x = 1\n"})],
            max_retries=0,
            notify_timeout_sec=ARRIVAL_LIMIT_S,
            notify=[
                {"url": f"json://127.0.0.1:{port}/never"},
                {"url": server.url("json", "hook")},
            ],
        )
        start_generation(project, "g1")
        report = await Engine(project).run(cycles=1)
        assert report.failed == 1 and report.stopped_because
        # The run ended while its first message to the silent channel still waits for an
        # answer (its timeout is the arrival limit): the run did not wait for it.
        notifier = project.notifier
        assert notifier is not None
        assert not [o for o in notifier.status.last if o.channel == "channel 1 (json)"]
        assert not notifier.channels[0].wait(0)
        # The working channel was not held back by the silent one.
        await asyncio.to_thread(server.wait_for, lambda r: len(r) >= 2)
        listener.close()  # resets the waiting connection: every message to it fails now
        assert await asyncio.to_thread(notifier.flush, ARRIVAL_LIMIT_S)
    status = notifier.status
    assert status.failed >= 2 and status.sent >= 2
    told = [n for n in notices(project) if "channel 1 (json)" in n]
    assert len(told) == 1, told
    assert told[0].startswith("notifications to channel 1 (json) fail:")


async def test_the_run_after_a_crash_says_what_it_recovered(fast_tmp: Path) -> None:
    with receiver() as server:
        project = make_project(
            fast_tmp,
            [],
            measure="off",
            notify=[{"url": server.url("json", "hook"), "events": ["run_crashed"]}],
        )
        start_generation(project, "g1")
        # What a run killed mid-task leaves: a task running that no process works on.
        (t,), _ = project.store.add_tasks("g1", [NewTask("Add a")], 1, "test")
        project.store.transition_task(t.id, TaskState.RUNNING, "attempt 1", count_attempt=True)
        await Engine(project).run(cycles=1)
        got = await asyncio.to_thread(server.wait_for, lambda r: len(r) >= 1)
    assert titles(got) == ["shoemaker: a run died; recovered"]
    assert (
        got[0].json["message"].startswith("repository repo, generation g1: 1 task(s) back to ready")
    )


async def test_stopping_the_generation_notifies(fast_tmp: Path) -> None:
    with receiver() as server:
        project = make_project(
            fast_tmp,
            [task("Add a", files={"a.py": "A = 1\n"})],
            notify=[{"url": server.url("json", "hook"), "events": ["generation_stopped"]}],
        )
        start_generation(project, "g1")
        await Engine(project).run(cycles=1)
        await asyncio.to_thread(stop_generation, project, None)
        got = await asyncio.to_thread(server.wait_for, lambda r: len(r) >= 1)
    assert titles(got) == ["shoemaker: generation g1 stopped"]
    assert got[0].json["message"] == "repository repo, generation g1: merged"


# -- shoemaker notify test --------------------------------------------------------------------


def test_notify_test_reports_each_channel(fast_tmp: Path) -> None:
    with receiver() as server, silent_port() as (port, listener):
        listener.close()  # nothing listens there now: refused at once
        project = make_project(
            fast_tmp,
            [],
            notify=[
                {"url": server.url("json", "hook")},
                {"url": f"ntfy://127.0.0.1:{port}/topic"},
            ],
        )
        done = cli(project, "notify", "test")
        got = server.wait_for(lambda r: len(r) >= 1)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "ok channel 1 (json): sent"
    assert lines[1].startswith("failed channel 2 (ntfy): ") and len(lines[1]) > 30
    assert len(lines) == 2 and "127.0.0.1" not in done.stdout  # a URL may hold a token
    assert got[0].json["title"] == "shoemaker: test notification"


def test_notify_test_without_channels_says_how_to_add_one(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    done = cli(project, "notify", "test")
    assert done.returncode == 2
    assert done.stderr.startswith("shoemaker: no notification channel is configured: add `notify:`")
    assert done.stdout == ""


def test_opening_a_project_with_channels_does_not_import_apprise(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [], notify=[{"url": "json://127.0.0.1:9/x"}])
    assert isinstance(project.notifier, Notifier)
    code = (
        "import sys; from pathlib import Path; from shoemaker.engine.project import Project; "
        f"p = Project.open(Path({str(project.root)!r})); "
        "sys.exit(2 if p.notifier is None else int('apprise' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- the dashboard ----------------------------------------------------------------------------


async def _until(pilot: Pilot[None], condition: Callable[[], bool]) -> None:
    """Let the app run until ``condition`` holds, failing past the arrival limit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ARRIVAL_LIMIT_S
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await pilot.pause(0.02)


async def test_the_dashboard_engine_notifies_and_shows_what_it_sent(fast_tmp: Path) -> None:
    with receiver() as server:
        project = make_project(
            fast_tmp,
            [task("Break things", outcome="max_turns", files={"x.py": "x = 1\n"})],
            max_retries=0,
            notify=[{"url": server.url("json", "hook")}],
        )
        start_generation(project, "g1")
        app = ShoemakerApp(project)
        async with app.run_test(size=(120, 36)) as pilot:
            metrics = app.query_one(MetricsPanel)
            await _until(pilot, lambda: app.check_action("run", ()) is True)
            assert "notify" not in metrics.text()  # nothing sent yet: nothing shown
            await pilot.press("r")
            got = await asyncio.to_thread(server.wait_for, lambda r: len(r) >= 2)
            await _until(pilot, lambda: "notify 2 sent" in metrics.text())
        assert titles(got) == [
            "shoemaker: task #1 failed",
            "shoemaker: generation g1 finished its run",
        ]
        assert (
            "notify 2 sent · last: generation g1 finished its run → channel 1 (json) sent"
            in metrics.text()
        )
