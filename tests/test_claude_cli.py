"""The top tier: the real claude CLI (installed from the npm registry by ./dev) does the work,
offline, against the loopback mock of the Messages API in tests/mock_api.py."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from agents import BEAT_GRACE_SEC, new_token, processes_with_token
from clock import ManualClock
from conftest import REPO_ROOT
from mock_api import MockApi, Turn, mock_api, text, tool
from projects import make_project
from shoemaker.agents.streamjson import summarize_file
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.engine.selection import Selection
from shoemaker.events import AgentStarted, Event
from shoemaker.model import GenerationState, TaskState, Usage
from shoemaker.store import NewTask

CLAUDE = Path(
    os.environ.get("SHOEMAKER_CLAUDE_BIN", REPO_ROOT / ".tools/claude/node_modules/.bin/claude")
)


@pytest.fixture
def api() -> Any:
    if not CLAUDE.exists():
        pytest.fail(
            f"the claude CLI is not installed at {CLAUDE}: run ./dev test, which installs it"
        )
    with mock_api() as served:
        yield served


def claude_project(tmp: Path, api: MockApi, **settings: Any) -> Project:
    home = tmp / "home"
    home.mkdir()
    agent = {
        "command": str(CLAUDE),
        "model": "claude-sonnet-4-5",
        "env": {
            "ANTHROPIC_BASE_URL": api.url,
            "ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_MAX_RETRIES": "1",
            "CLAUDE_CODE_DISABLE_BACKGROUND_TASKS": "1",
            "HOME": str(home),
            "IS_SANDBOX": "1",  # as root, --dangerously-skip-permissions needs it
        },
        "max_time_sec": 120,
        "idle_timeout_sec": 60,
        "kill_grace_sec": 5,
        **settings.pop("agent", {}),
    }
    project = make_project(tmp, [], agent=agent, **settings)
    start_generation(project, "g")
    return project


def add_task(project: Project, title: str = "Write hello") -> int:
    (task,), _ = project.store.add_tasks("g", [NewTask(title, f"{title}.")], 1, "test")
    return task.id


T0 = 1_900_000_000.0
"""Where a test's clock starts, for reset times."""

WRITE_HELLO = [
    Turn([tool("Write", file_path="{cwd}/hello.py", content="HELLO = 1\n")]),
    Turn([text("Wrote hello.py.")]),
]


async def stitch_all(project: Project) -> None:
    await Engine(project).run(cycles=1, selection=Selection())  # no measure: the tasks are given


async def test_a_file_the_real_cli_writes_lands_with_its_tokens_and_cost(
    fast_tmp: Path, api: MockApi
) -> None:
    project = claude_project(fast_tmp, api)
    task_id = add_task(project)
    api.script(*WRITE_HELLO)
    await stitch_all(project)
    task = project.store.get_task(task_id)
    assert task.state == TaskState.DONE, task.reason
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    (run,) = project.store.runs(task_id=task_id)
    transcript = fast_tmp / "t.jsonl"
    transcript.write_bytes(project.store.transcript(run.id))
    summary = summarize_file(transcript)
    assert summary.cost_usd is not None and run.cost_usd == pytest.approx(summary.cost_usd)
    assert run.cost_usd > 0 and run.num_turns == 2
    # Two main-loop replies of 120 input and 40 output tokens each, as the result line says.
    assert (run.usage.input_tokens, run.usage.output_tokens) == (240, 80)
    assert len([r for r in api.requests if r.get("tools")]) == 2


async def test_an_api_error_is_not_merged_and_is_retried(fast_tmp: Path, api: MockApi) -> None:
    project = claude_project(fast_tmp, api, max_retries=1)
    task_id = add_task(project)
    api.script(Turn(status=529), Turn(status=529), *WRITE_HELLO)
    await stitch_all(project)
    first, second = project.store.runs(task_id=task_id)
    assert first.ok is False and "529" in (first.reason + (first.result_text or ""))
    assert second.ok is True
    task = project.store.get_task(task_id)
    assert task.state == TaskState.DONE and task.attempts == 2
    landed = project.git.log(f"{project.store.get_generation('g').start_commit}..generation-g")
    assert [c.trailers.get("Shoemaker-Task") for c in landed] == [str(task_id)]


async def test_max_turns_ends_the_attempt_unmerged(fast_tmp: Path, api: MockApi) -> None:
    project = claude_project(fast_tmp, api, agent={"max_turns": 1}, max_retries=0)
    task_id = add_task(project)
    api.script(*WRITE_HELLO)
    await stitch_all(project)
    task = project.store.get_task(task_id)
    assert task.state == TaskState.FAILED and "max" in task.reason.lower()
    (run,) = project.store.runs(task_id=task_id)
    assert run.subtype == "error_max_turns" and run.exit_code == 1
    assert not (project.root / "hello.py").exists()


async def test_sigterm_during_a_run_stops_the_real_cli(
    fast_tmp: Path, api: MockApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    # The interrupted CLI must exit by itself within the grace, however busy the machine.
    project = claude_project(fast_tmp, api, agent={"kill_grace_sec": BEAT_GRACE_SEC})
    task_id = add_task(project)
    hold = asyncio.Event()
    release = threading.Event()
    api.script(Turn([text("never sent")], hold=release))

    def started(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id == task_id:
            hold.set()

    project.bus.add_listener(started)
    run = asyncio.create_task(stitch_all(project))
    await hold.wait()
    # The CLI has asked the API and waits for the held reply.
    await asyncio.to_thread(api.wait_for, bool)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    release.set()
    (record,) = project.store.runs(task_id=task_id)
    assert record.ok is False and record.reason == "cancelled: stopped by shoemaker"
    # Interrupted first: the real CLI exits by itself (0), not killed by SIGTERM or SIGKILL.
    # Timing decides whether it prints a last result line first (most often it does, and then
    # its cost is the reported one); on a loaded machine it may exit without one.
    assert record.exit_code == 0
    if record.subtype is not None:
        assert record.subtype == "error_during_execution" and not record.cost_estimated
    assert b'"subtype":"init"' in project.store.transcript(record.id)  # it had started
    task = project.store.get_task(task_id)
    assert task.state == TaskState.READY and task.reason == "interrupted"
    assert processes_with_token(token) == []


async def test_measure_takes_its_proposals_from_the_real_cli(fast_tmp: Path, api: MockApi) -> None:
    project = claude_project(fast_tmp, api)
    proposals = [
        {"index": 0, "title": "Parse dates", "description": "Add dates.py.", "dependency": -1},
        {"index": 1, "title": "Format dates", "description": "Add fmt.py.", "dependency": 0},
    ]
    api.script(
        Turn(
            [
                tool(
                    "Write",
                    file_path="{cwd}/shoemaker-proposals.json",
                    content=json.dumps(proposals),
                )
            ]
        ),
        Turn([text("Proposed two tasks.")]),
    )
    tasks = await Engine(project).measure_once()
    assert [(t.title, t.state) for t in tasks] == [
        ("Parse dates", TaskState.READY),
        ("Format dates", TaskState.PROPOSED),
    ]
    assert tasks[1].depends_on == [tasks[0].id]


async def test_an_interrupted_run_is_charged_for_the_messages_the_api_billed(
    fast_tmp: Path, api: MockApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    # The run is cancelled by the test, never ended by a watchdog: their clocks are far off,
    # however long a loaded machine takes to notice the second request.
    # And the interrupted CLI prints its last lines and exits by itself: node's writes to a
    # pipe wait in its own buffer, and a kill at the end of a short grace would lose them.
    agent = {"idle_timeout_sec": 900, "max_time_sec": 1800, "kill_grace_sec": BEAT_GRACE_SEC}
    project = claude_project(fast_tmp, api, agent=agent)
    task_id = add_task(project)
    release = threading.Event()
    api.script(WRITE_HELLO[0], Turn([text("never sent")], hold=release))
    run = asyncio.create_task(stitch_all(project))
    # The first reply is billed: the CLI asks again.
    await asyncio.to_thread(
        api.wait_for, lambda asked: sum(1 for r in asked if r.get("tools")) >= 2
    )
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    release.set()
    (record,) = project.store.runs(task_id=task_id)
    # However the CLI answers SIGINT (timing decides: a result line that says what the reply
    # cost, one that reports nothing, or none at all), the billed reply is charged: its 120
    # input tokens, and its output (a placeholder of 1 when only the message says so).
    assert record.ok is False and record.reason == "cancelled: stopped by shoemaker"
    assert record.usage.input_tokens == 120 and record.usage.output_tokens in (1, 40)
    assert record.cost_usd > 0
    if record.cost_estimated:
        _, price = project.config.price(None)
        assert record.cost_usd == pytest.approx(price.cost(Usage(120, 1)))
    assert project.store.spend(task_id=task_id).usd == pytest.approx(record.cost_usd)
    assert processes_with_token(token) == []


@pytest.mark.parametrize(
    ("retry_after", "refusals", "waits"),
    # The CLI waits out a short retry-after once, then gives up; a long one it does not wait
    # for (no api_retry line): then the generation waits rate_limits.wait_sec.
    [("2", 2, 2.0), ("3600", 1, 900.0)],
    ids=["short-retry-after", "long-retry-after"],
)
async def test_a_429_from_the_api_pauses_the_generation_until_its_reset(
    fast_tmp: Path, api: MockApi, retry_after: str, refusals: int, waits: float
) -> None:
    project = claude_project(fast_tmp, api, max_retries=0, rate_limits={"wait_sec": 900})
    clock = ManualClock(T0)
    project.clock = clock
    task_id = add_task(project)
    api.script(*[Turn(status=429, retry_after=retry_after)] * refusals, *WRITE_HELLO)
    run = asyncio.create_task(stitch_all(project))
    await asyncio.wait_for(clock.waiting_until(T0 + waits), 120)
    gen = project.store.get_generation("g")
    assert gen.state == GenerationState.RATE_LIMITED and gen.rate_limited_until == T0 + waits
    (refused,) = project.store.runs(task_id=task_id)
    assert refused.ok is False and refused.exit_code == 1
    assert refused.reason.startswith("rate limited until") and "429" in refused.reason
    transcript = project.store.transcript(refused.id)
    assert b'"api_error_status":429' in transcript
    assert (b'"retry_delay_ms":2000' in transcript) == (retry_after == "2")
    task = project.store.get_task(task_id)
    assert task.state == TaskState.READY and task.interruptions == 1
    clock.advance(waits)
    await asyncio.wait_for(run, 120)
    task = project.store.get_task(task_id)
    assert task.state == TaskState.DONE, task.reason
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    assert project.store.get_generation("g").rate_limited_until is None
