"""Rate limits: what the streams say, the generation pausing itself until the reset and going on
by itself, the attempts it interrupted not counted, a warning lowering the parallelism, and a
restart that keeps the reset time. The agents are the real rehearsal executable; the wall clock
is the test's (``ManualClock``), so no test sleeps for a reset."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import streamjson_reference as reference
from agents import REHEARSAL, STREAM_ARGS, stitch_prompt
from clock import ManualClock
from conftest import REPO_ROOT
from projects import make_project, task
from shoemaker.agents.protocol import AgentSummary
from shoemaker.agents.ratelimit import RateLimit, rate_limit_of
from shoemaker.agents.streamjson import summarize_lines
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.events import (
    AgentStarted,
    Event,
    GenerationStateChanged,
    RateLimitCleared,
    RateLimited,
    TaskStateChanged,
    parse_event,
)
from shoemaker.model import GenerationState, TaskState

T0 = 1_900_000_000.0
"""The test clock's start (2030-03-17): reset times are given from it."""

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "stream-json"
FIXTURE = FIXTURES / "link-assistant__hive-mind__background-disabled.jsonl"


def line(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


def limit_event(status: str, resets: Any = T0 + 600) -> str:
    return line(
        {"type": "rate_limit_event", "rate_limit_info": {"status": status, "resetsAt": resets}}
    )


def retry(delay_ms: Any, error: str = "rate_limit", status: Any = 429) -> str:
    return line(
        {
            "type": "system",
            "subtype": "api_retry",
            "attempt": 1,
            "max_retries": 1,
            "retry_delay_ms": delay_ms,
            "error_status": status,
            "error": error,
        }
    )


def error_result(status: int) -> str:
    return line(
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "api_error_status": status,
            "result": f"API Error: {status}",
        }
    )


# -- the facts in a stream ----------------------------------------------------------------------


def test_each_way_the_cli_says_it_becomes_one_fact() -> None:
    warned = summarize_lines([limit_event("allowed_warning")])
    assert warned.rate_limit == RateLimit("allowed_warning", T0 + 600, None, "rate_limit_event")
    refused = summarize_lines([retry(30_000), retry(45_000), error_result(429)], exit_code=1)
    assert refused.rate_limit == RateLimit("rejected", None, 45.0, "result")
    assert rate_limit_of(refused) == refused.rate_limit
    # Retries that end in success: the limit was met, nothing was refused.
    recovered = summarize_lines([retry(1000), line({"type": "result", "is_error": False})])
    assert recovered.rate_limit == RateLimit("allowed", None, 1.0, "api_retry")
    # Other retries and errors say nothing about a rate limit.
    other = summarize_lines([retry(500, "overloaded", 529), error_result(529)], exit_code=1)
    assert other.rate_limit is None and rate_limit_of(other) is None
    # A reset time in milliseconds is read as seconds; one that is no number is left out.
    assert summarize_lines([limit_event("rejected", (T0 + 60) * 1000)]).rate_limit == RateLimit(
        "rejected", T0 + 60, None, "rate_limit_event"
    )
    for bad in ("soon", True, 1e999, None):
        fact = summarize_lines([limit_event("rejected", bad)]).rate_limit
        assert fact == RateLimit("rejected", None, None, "rate_limit_event")


def test_the_recorded_rate_limit_event_is_allowed_with_its_reset_time() -> None:
    summary = summarize_lines(FIXTURE.read_bytes().splitlines())
    assert summary.rate_limit == RateLimit("allowed", 1790678400.0, None, "rate_limit_event")


def test_what_the_real_cli_printed_for_429_with_retry_after_is_a_rejection() -> None:
    # claude 2.1.197, CLAUDE_CODE_MAX_RETRIES=1, the API answering 429 with retry-after: 3:
    # one api_retry line (retry_delay_ms 3000), a synthetic error message, a 429 result.
    recorded = FIXTURE.with_name("shoemaker__claude-2.1.197__rate-limit-429-retry-after.jsonl")
    summary = summarize_lines(recorded.read_bytes().splitlines(), exit_code=1)
    assert summary.rate_limit == RateLimit("rejected", None, 3.0, "result")
    assert summary.rate_limit.reset_time(T0, 300) == T0 + 3


@pytest.mark.parametrize(
    "lines",
    [
        [limit_event("allowed"), limit_event("allowed_warning", T0 + 5), limit_event("allowed")],
        [retry(2000), limit_event("rejected", 12), retry("x"), error_result(429)],
        [limit_event("bogus"), line({"type": "rate_limit_event", "rate_limit_info": []})],
        [retry(1e999), retry(None, "unknown", 429), error_result(429), error_result(200)],
    ],
)
def test_the_fact_is_what_the_reference_parser_folds(lines: list[str]) -> None:
    for exit_code in (None, 0, 1):
        fast = summarize_lines(lines, exit_code).rate_limit
        slow = reference.summarize_lines(lines, exit_code).rate_limit
        assert (None if fast is None else _as_dict(fast)) == slow


def _as_dict(fact: RateLimit) -> dict[str, Any]:
    return {
        "status": fact.status,
        "resets_at": fact.resets_at,
        "retry_after_s": fact.retry_after_s,
        "source": fact.source,
    }


def test_codex_and_gemini_runs_refused_with_429_are_rejected_without_a_reset_time() -> None:
    refused = AgentSummary(ended="result", is_error=True, api_error_status=429)
    assert rate_limit_of(refused) == RateLimit("rejected", None, None, "status 429")
    assert rate_limit_of(AgentSummary(ended="result", is_error=True, api_error_status=500)) is None


def test_the_reset_time_comes_from_the_stream_else_the_retry_delay_else_the_setting() -> None:
    assert RateLimit("rejected", T0 + 90).reset_time(T0, 300) == T0 + 90
    assert RateLimit("rejected", T0 - 90, 20.0).reset_time(T0, 300) == T0 + 20
    assert RateLimit("rejected", None, 0.0).reset_time(T0, 300) == T0 + 300


# -- the rehearsal agent's directive ------------------------------------------------------------


def rehearse(cwd: Path, rate_limit: Any) -> tuple[int, list[dict[str, Any]]]:
    proc = subprocess.run(
        [*REHEARSAL, *STREAM_ARGS],
        input=stitch_prompt(files={"a.py": "A = 1\n"}, rate_limit=rate_limit),
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "IS_SANDBOX": "1"},
        timeout=60,
    )
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines()]


def test_the_rehearsal_agent_prints_the_rate_limit_lines_the_cli_prints(fast_tmp: Path) -> None:
    code, lines = rehearse(fast_tmp, {"status": "rejected", "resets_at": T0 + 60})
    assert code == 1 and not (fast_tmp / "a.py").exists()
    summary = summarize_lines([json.dumps(x) for x in lines], exit_code=code)
    assert summary.rate_limit == RateLimit("rejected", T0 + 60, 1.0, "result")
    assert lines[1]["rate_limit_info"] == {
        "status": "rejected",
        "rateLimitType": "five_hour",
        "resetsAt": T0 + 60,
        "isUsingOverage": False,
    }
    assert lines[-1]["api_error_status"] == 429 and lines[-2]["error"] == "rate_limit"
    code, lines = rehearse(fast_tmp, {"status": "allowed_warning", "resets_at": T0 + 60})
    assert code == 0 and (fast_tmp / "a.py").exists()  # a warning: the work is done
    assert summarize_lines([json.dumps(x) for x in lines]).rate_limit == RateLimit(
        "allowed_warning", T0 + 60, None, "rate_limit_event"
    )
    for bad in ({"status": "throttled"}, {"resets_at": "soon"}, {"when": 1}, "rejected"):
        code, lines = rehearse(fast_tmp, bad)
        assert code == 1 and "bad directive: " in lines[-1]["result"]


# -- the generation pauses itself and goes on by itself ----------------------------------------


def refused_once(reset: float) -> dict[str, Any]:
    """A task whose first attempt the provider refuses until ``reset``; the next lands."""
    return task(
        "Hello",
        files={"hello.py": "HELLO = 1\n"},
        on_attempt={1: {"rate_limit": {"status": "rejected", "resets_at": reset}}},
    )


def limited_project(root: Path, proposals: list[dict[str, Any]], **settings: Any) -> Project:
    project = make_project(root, proposals, **settings)
    start_generation(project, "g")
    project.clock = ManualClock(T0)
    return project


def recorder(project: Project) -> list[Event]:
    seen: list[Event] = []
    project.bus.add_listener(seen.append)
    return seen


async def first(project: Project, kind: type[Event], **fields: Any) -> Event:
    """The next event of ``kind`` with ``fields`` the bus delivers."""
    found: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

    def listen(event: Event) -> None:
        wanted = isinstance(event, kind) and not found.done()
        if wanted and all(getattr(event, k) == v for k, v in fields.items()):
            found.set_result(event)

    project.bus.add_listener(listen)
    try:
        return await asyncio.wait_for(found, 120)
    finally:
        project.bus.remove_listener(listen)


async def test_a_rejected_agent_pauses_the_generation_until_the_reset_then_its_task_lands(
    fast_tmp: Path,
) -> None:
    reset = T0 + 600
    project = limited_project(
        fast_tmp,
        [refused_once(reset)],
        # A counted failure would fail the task at once: the refused attempt must not count.
        max_retries=0,
    )
    clock = project.clock
    assert isinstance(clock, ManualClock)
    seen = recorder(project)
    limited = asyncio.ensure_future(first(project, RateLimited))
    run = asyncio.create_task(Engine(project).run(cycles=1))
    event = await limited
    await clock.waiting_until(reset)  # every agent is back; the run waits for the reset
    assert isinstance(event, RateLimited)
    assert (event.status, event.resets_at) == ("rejected", reset)
    (refused,) = project.store.list_tasks("g")
    assert event.task_id == refused.id and event.run_id is not None
    gen = project.store.get_generation("g")
    assert gen.state == GenerationState.RATE_LIMITED and gen.rate_limited_until == reset
    assert refused.state == TaskState.READY and "rate limited until 2030-03-17" in refused.reason
    assert (refused.attempts, refused.interruptions) == (1, 1)
    (run_record,) = project.store.runs(task_id=refused.id)
    assert run_record.ok is False and run_record.reason.startswith("rate limited until 2030")
    assert "429" in run_record.reason
    started = [e for e in seen if isinstance(e, AgentStarted) and e.task_id is not None]
    assert len(started) == 1  # no new agent while the limit holds
    assert not run.done()

    clock.advance(600)
    report = await asyncio.wait_for(run, 120)
    done = project.store.get_task(refused.id)
    assert done.state == TaskState.DONE, done.reason
    assert (done.attempts, done.interruptions) == (2, 1)
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    assert report.merged == 1
    gen = project.store.get_generation("g")
    assert gen.state != GenerationState.RATE_LIMITED and gen.rate_limited_until is None
    cleared = [e for e in seen if isinstance(e, RateLimitCleared)]
    assert [(e.status, e.resets_at) for e in cleared] == [("rejected", reset)]
    states = [e.new for e in seen if isinstance(e, GenerationStateChanged)]
    assert states[:3] == [
        GenerationState.RUNNING,
        GenerationState.RATE_LIMITED,
        GenerationState.RUNNING,
    ]
    # The stored log holds both events as the notifier and the dashboard read them.
    kinds = [parse_event(e.json_bytes()).kind for _, e in project.store.events_after(0)]
    assert "rate_limited" in kinds and "rate_limit_cleared" in kinds


async def test_a_warning_lowers_the_parallelism_until_its_reset_then_restores_it(
    fast_tmp: Path,
) -> None:
    reset = T0 + 300
    warn: dict[str, Any] = {"status": "allowed_warning", "resets_at": reset}
    later = [task(name, [0], files={f"{name.lower()}.py": "X = 1\n"}) for name in "BCDE"]
    project = limited_project(
        fast_tmp,
        [task("A", files={"a.py": "A = 1\n"}, rate_limit=warn), *later],
        max_parallel=2,
    )
    clock = project.clock
    assert isinstance(clock, ManualClock)
    running: set[int] = set()
    most = {"warned": 0, "restored": 0}
    phase = ["before"]

    def watch(event: Event) -> None:
        if isinstance(event, RateLimited):
            phase[0] = "warned"
        if isinstance(event, TaskStateChanged):
            if event.new == TaskState.RUNNING:
                running.add(event.task_id)
            elif event.old == TaskState.RUNNING:
                running.discard(event.task_id)
            if phase[0] in most:
                most[phase[0]] = max(most[phase[0]], len(running))
        if isinstance(event, AgentStarted) and phase[0] == "warned" and event.task_id:
            ids = {t.id: t.title for t in project.store.list_tasks("g")}
            if ids[event.task_id] != "A":
                # One task after A runs alone; its reset comes while it runs.
                phase[0] = "restored"
                clock.advance(300)

    project.bus.add_listener(watch)
    seen = recorder(project)
    await asyncio.wait_for(Engine(project).run(cycles=1), 300)
    tasks = project.store.list_tasks("g")
    assert all(t.state == TaskState.DONE for t in tasks), [(t.title, t.reason) for t in tasks]
    warning = next(e for e in seen if isinstance(e, RateLimited))
    assert (warning.status, warning.resets_at, warning.parallel) == ("allowed_warning", reset, 1)
    assert most == {"warned": 1, "restored": 2}
    cleared = [e for e in seen if isinstance(e, RateLimitCleared)]
    assert [(e.status, e.resets_at) for e in cleared] == [("allowed_warning", reset)]
    # A warning pauses nothing.
    states = {e.new for e in seen if isinstance(e, GenerationStateChanged)}
    assert GenerationState.RATE_LIMITED not in states


async def test_a_refused_measure_waits_for_the_reset_and_measures_again(fast_tmp: Path) -> None:
    project = limited_project(fast_tmp, [task("Hello", files={"hello.py": "HELLO = 1\n"})])
    clock = project.clock
    assert isinstance(clock, ManualClock)
    # measure reads the documents of the checkout: while this block is there, it is refused.
    spec = project.root / "docs" / "SPEC.md"
    committed = spec.read_text()
    refusal = {"rate_limit": {"status": "rejected", "resets_at": T0 + 60}}
    spec.write_text(committed + f"\n<!-- rehearsal\n{json.dumps(refusal)}\n-->\n")
    run = asyncio.create_task(Engine(project).run(cycles=1))
    await asyncio.wait_for(clock.waiting_until(T0 + 60), 120)
    gen = project.store.get_generation("g")
    assert gen.state == GenerationState.RATE_LIMITED and gen.rate_limited_until == T0 + 60
    assert project.store.list_tasks("g") == []
    (refused,) = project.store.runs(generation="g")
    assert refused.phase == "measure" and refused.reason.startswith("rate limited until")
    spec.write_text(committed)
    clock.advance(60)
    await asyncio.wait_for(run, 120)
    (landed,) = project.store.list_tasks("g")
    assert landed.state == TaskState.DONE, landed.reason
    assert len(project.store.runs(generation="g")) == 3  # measure twice, then the task


# -- a restart keeps the reset time -------------------------------------------------------------


def _shoemaker(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_a_run_killed_while_rate_limited_is_resumed_after_the_reset(fast_tmp: Path) -> None:
    import time

    reset = float(int(time.time()) + 7200)  # the killed run waits on the machine's clock
    project = make_project(
        fast_tmp,
        [refused_once(reset)],
        max_retries=0,
    )
    start_generation(project, "g")
    headless = _shoemaker(project, "run", "--cycles", "1", "--events", "ndjson")
    try:
        assert headless.stdout is not None
        for text in headless.stdout:  # await the process's own account, line by line
            if json.loads(text).get("kind") == "rate_limited":
                break
        else:
            pytest.fail(
                f"no rate_limited event: {headless.stderr.read() if headless.stderr else ''}"
            )
        os.kill(headless.pid, signal.SIGKILL)
    finally:
        headless.wait(60)
    gen = project.store.get_generation("g")
    assert gen.state == GenerationState.RATE_LIMITED and gen.rate_limited_until == reset
    listing = _shoemaker(project, "list", "--json")
    out, _ = listing.communicate(timeout=120)
    (row,) = json.loads(out)
    assert row["state"] == "rate_limited" and row["rate_limited_until"] == reset
    shown = _shoemaker(project, "list")
    table, _ = shown.communicate(timeout=120)
    assert "rate_limited until" in table

    clock = ManualClock(reset - 3600)
    project.clock = clock
    resumed = asyncio.create_task(Engine(project).run(cycles=1))
    await asyncio.wait_for(clock.waiting_until(reset), 120)
    gen = project.store.get_generation("g")
    assert gen.state == GenerationState.RATE_LIMITED and gen.rate_limited_until == reset
    (waiting,) = project.store.list_tasks("g")
    assert waiting.state == TaskState.READY and waiting.interruptions == 1
    assert len(project.store.runs(task_id=waiting.id)) == 1  # nothing started before the reset
    clock.advance(3600)
    await asyncio.wait_for(resumed, 120)
    done = project.store.get_task(waiting.id)
    assert done.state == TaskState.DONE and (done.attempts, done.interruptions) == (2, 1)
    assert project.store.get_generation("g").rate_limited_until is None


# -- the dashboard counts down -------------------------------------------------------------------


async def test_the_dashboard_shows_rate_limited_with_a_countdown_to_the_reset(
    fast_tmp: Path,
) -> None:
    from textual.widgets import DataTable

    from shoemaker.tui.app import ShoemakerApp
    from shoemaker.tui.screens import GenerationsScreen
    from shoemaker.tui.widgets import GenerationsPanel
    from tui_data import CLOCK, fixed_project

    project = fixed_project(fast_tmp)
    reset = CLOCK + 125
    project.store.set_rate_limited(
        "g1", RateLimited(generation="g1", status="rejected", resets_at=reset, reason="429")
    )
    now = [CLOCK]
    app = ShoemakerApp(project, clock=lambda: now[0], follow_idle_s=3600)

    def state_cell() -> str:
        panel = app.query_one(GenerationsPanel)
        return str(panel.get_row_at(0)[1]).strip()

    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.snapshots_loaded > 0)
        assert state_cell() == "rate_limited 2m05s"
        assert "g1 rate_limited · resumes in 2m05s" in app.sub_title
        now[0] += 65  # the clock moves; no event arrives: the countdown follows by itself
        await until(pilot, lambda: state_cell() == "rate_limited 1m00s")
        assert "resumes in 1m00s" in app.sub_title
        await pilot.press("G")
        assert isinstance(app.screen, GenerationsScreen)
        table = app.screen.query_one("#gens-table", DataTable)
        assert table.get_row_at(0)[:2] == ["g1", "rate_limited 1m00s"]
        now[0] += 200  # past the reset, before the run says so: never below zero
        await until(pilot, lambda: table.get_row_at(0)[1] == "rate_limited 0s")


async def until(pilot: Any, condition: Any, limit: float = 180) -> None:
    """Let the app run until ``condition`` holds (bounded, so a bug fails instead of hanging)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await pilot.pause(0.05)


def test_the_store_keeps_the_reset_time_and_a_persons_pause(fast_tmp: Path) -> None:
    from shoemaker.store import Store

    store = Store(fast_tmp / "state" / "shoemaker.db")
    store.create_generation("g", "generation-g", "main", "abc")
    store.set_generation_state("g", GenerationState.RUNNING)
    limited = RateLimited(generation="g", status="rejected", resets_at=T0 + 60, reason="429")
    moved = store.set_rate_limited("g", limited)
    assert moved is not None and moved.new == GenerationState.RATE_LIMITED
    gen = Store(store.path).get_generation("g")  # as another process reads it
    assert (gen.state, gen.rate_limited_until) == (GenerationState.RATE_LIMITED, T0 + 60)
    assert gen.reason == "rate limited: 429"
    cleared = RateLimitCleared(generation="g", status="rejected", resets_at=T0 + 60)
    store.clear_rate_limit("g", GenerationState.RUNNING, "reset", cleared)
    gen = store.get_generation("g")
    assert (gen.state, gen.rate_limited_until) == (GenerationState.RUNNING, None)
    # Paused by a person while an agent met the limit: the pause stands, the time is kept.
    store.set_generation_state("g", GenerationState.PAUSED, "pause requested")
    assert store.set_rate_limited("g", limited) is None
    gen = store.get_generation("g")
    assert (gen.state, gen.rate_limited_until) == (GenerationState.PAUSED, T0 + 60)
    store.clear_rate_limit("g", GenerationState.RUNNING, "reset", cleared)
    gen = store.get_generation("g")
    assert (gen.state, gen.rate_limited_until) == (GenerationState.PAUSED, None)
    kinds = [e.kind for _, e in store.events_after(0)]
    assert kinds.count("rate_limited") == 2 and kinds.count("rate_limit_cleared") == 2


async def test_a_pause_ends_the_wait_and_the_next_run_waits_for_the_same_reset(
    fast_tmp: Path,
) -> None:
    reset = T0 + 600
    project = limited_project(
        fast_tmp,
        [refused_once(reset)],
        max_retries=0,
    )
    clock = project.clock
    assert isinstance(clock, ManualClock)
    engine = Engine(project)
    run = asyncio.create_task(engine.run(cycles=1))
    await asyncio.wait_for(clock.waiting_until(reset), 120)
    engine.pause()  # the dashboard's `p`
    await asyncio.wait_for(run, 120)
    gen = project.store.get_generation("g")
    assert (gen.state, gen.rate_limited_until) == (GenerationState.PAUSED, reset)
    (waiting,) = project.store.list_tasks("g")
    assert waiting.state == TaskState.READY
    again = ManualClock(T0 + 100)  # a later run, before the reset
    project.clock = again
    resumed = asyncio.create_task(Engine(project).run(cycles=1))
    await asyncio.wait_for(again.waiting_until(reset), 120)
    assert project.store.get_generation("g").state == GenerationState.RATE_LIMITED
    assert len(project.store.runs(task_id=waiting.id)) == 1
    again.advance(500)
    await asyncio.wait_for(resumed, 120)
    assert project.store.get_task(waiting.id).state == TaskState.DONE
