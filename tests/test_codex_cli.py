"""The real codex CLI (installed from the npm registry by ./dev) does the work, offline, against
the loopback mock of the OpenAI Responses API in src/shoemaker/mocks/responses.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from agents import BEAT_GRACE_SEC, CODEX, new_token, processes_with_token
from projects import make_project
from shoemaker.agents.adapters import adapter_for
from shoemaker.agents.codex import CodexAdapter
from shoemaker.agents.codex_stream import CodexSummaryBuilder, summarize_codex_file
from shoemaker.agents.runner import ProcessRunner, RunSpec, agent_environment
from shoemaker.config import AgentConfig
from shoemaker.engine.engine import Engine
from shoemaker.engine.estimate import estimate_tasks
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.engine.selection import Selection
from shoemaker.engine.task_detail import load_task_detail
from shoemaker.engine.views import LiveUsage
from shoemaker.events import AgentOutput, AgentStarted, BudgetCrossed, Event
from shoemaker.mocks.responses import MockResponses, Turn, add_file, message, mock_responses
from shoemaker.model import GenerationState, TaskState, Usage
from shoemaker.store import NewTask

#: A model codex knows (an unknown one gets fallback metadata and no apply_patch tool).
MODEL = "gpt-5.5"
PRICE = {"input": 1.25, "output": 10.0, "cache_read": 0.125, "cache_write": 0.0}


@pytest.fixture
def api() -> Any:
    if not CODEX.exists():
        pytest.fail(f"the codex CLI is not installed at {CODEX}: run ./dev test, which installs it")
    with mock_responses() as served:
        yield served


def codex_env(tmp: Path, api: MockResponses) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return {
        "OPENAI_BASE_URL": api.url,
        "OPENAI_API_KEY": "sk-test-not-a-real-key-0000",
        "HOME": str(home),
    }


def codex_project(tmp: Path, api: MockResponses, **settings: Any) -> Project:
    agent = {
        "kind": "codex",
        "command": str(CODEX),
        "model": MODEL,
        "env": codex_env(tmp, api),
        "max_time_sec": 120,
        "idle_timeout_sec": 60,
        "kill_grace_sec": 5,
        **settings.pop("agent", {}),
    }
    project = make_project(tmp, [], agent=agent, prices={MODEL: PRICE}, **settings)
    # make_project's rehearsal args are claude's: codex takes its own defaults.
    assert project.config.agent.args[:2] == ["exec", "--json"]
    start_generation(project, "g")
    return project


def add_task(project: Project, title: str = "Write hello") -> int:
    (task,), _ = project.store.add_tasks("g", [NewTask(title, f"{title}.")], 1, "test")
    return task.id


WRITE_HELLO = [Turn([add_file("hello.py", "HELLO = 1")]), Turn([message("Wrote hello.py.")])]


async def stitch_all(project: Project) -> None:
    await Engine(project).run(cycles=1, selection=Selection())


async def test_a_file_codex_writes_with_its_own_tool_lands_with_its_tokens_and_cost(
    fast_tmp: Path, api: MockResponses
) -> None:
    project = codex_project(fast_tmp, api)
    task_id = add_task(project)
    api.script(*WRITE_HELLO)
    shown: list[str] = []
    project.bus.add_listener(
        lambda e: shown.extend(e.texts) if isinstance(e, AgentOutput) else None
    )
    await stitch_all(project)
    task = project.store.get_task(task_id)
    assert task.state == TaskState.DONE, task.reason
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    (run,) = project.store.runs(task_id=task_id)
    assert run.ok and run.exit_code == 0 and run.subtype == "success"
    # The live output is codex's events condensed: its edit and its reply, one line each.
    assert "[edit: add hello.py]" in shown and "Wrote hello.py." in shown
    # Two replies of 1200 input tokens (200 of them cached) and 40 output each.
    assert run.usage == Usage(2000, 80, 0, 400)
    price = project.config.price(MODEL)[1]
    assert run.cost_estimated and run.cost_usd == pytest.approx(price.cost(run.usage))
    transcript = fast_tmp / "t.jsonl"
    transcript.write_bytes(project.store.transcript(run.id))
    summary = summarize_codex_file(transcript)
    assert summary.session_id == run.session_id and run.session_id
    assert summary.tool_uses == {"file_change": 1}
    assert summary.result_text == "Wrote hello.py."
    # The run asked with the configured model, through the provider the adapter wrote.
    assert {r["model"] for r in api.requests} == {MODEL}
    landed = project.git.log(f"{project.store.get_generation('g').start_commit}..generation-g")
    assert [c.trailers.get("Shoemaker-Task") for c in landed] == [str(task_id)]
    # Only the agent's work lands: codex keeps its own state in its CODEX_HOME, not the tree.
    files = subprocess.run(
        ["git", "-C", str(project.root), "show", "--name-only", "--format=", "generation-g"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert files == ["hello.py"]
    # The task screen condenses codex's events; the dashboard's live spend reads its usage.
    log = load_task_detail(project, task_id).log
    assert "[edit: add hello.py]" in log and "Wrote hello.py." in log
    (project.runs_dir / f"{run.id}.jsonl").write_bytes(transcript.read_bytes())
    live = LiveUsage(project.runs_dir, project.config).read([run])
    assert live[task_id].usage == run.usage
    assert live[task_id].cost_usd == pytest.approx(run.cost_usd)
    # The next task's estimate learns from this run, priced at codex's model.
    later = project.store.get_task(add_task(project, "Write later"))
    estimate = estimate_tasks(project, project.store.get_generation("g"), [later])
    (guess,) = estimate.tasks
    assert guess.basis == "history" and run.cost_usd > 0
    assert guess.usd == pytest.approx(run.cost_usd)


async def test_a_codex_run_that_crosses_a_tiny_budget_pauses_the_generation(
    fast_tmp: Path, api: Any
) -> None:
    project = codex_project(fast_tmp, api, budgets={"generation": {"usd": 0.000001}})
    first = add_task(project)
    second = add_task(project, "Write later")
    api.script(*WRITE_HELLO)
    report = await Engine(project).run(cycles=2, selection=Selection())
    assert report.stopped_because.startswith("paused: generation budget"), report
    assert project.store.get_generation("g").state == GenerationState.PAUSED
    (run,) = project.store.runs(generation="g")
    assert run.task_id == first and run.cost_usd > 0.000001
    # Priced from codex's own usage, the one result crossed the limit: nothing else launched.
    assert project.store.get_task(second).state == TaskState.READY
    (event,) = project.store.events_of_kind("g", ["budget_crossed"])
    assert isinstance(event, BudgetCrossed)
    assert (event.scope, event.metric, event.limit) == ("generation", "usd", 0.000001)


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
async def test_codex_in_bwrap_writes_its_worktree_and_keeps_its_home_in_the_runs(
    fast_tmp: Path, api: MockResponses
) -> None:
    project = codex_project(fast_tmp, api, sandbox="bwrap")
    task_id = add_task(project)
    api.script(*WRITE_HELLO)
    await stitch_all(project)
    task = project.store.get_task(task_id)
    assert task.state == TaskState.DONE, task.reason
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    (run,) = project.store.runs(task_id=task_id)
    assert run.argv[0] == "bwrap" and run.usage == Usage(2000, 80, 0, 400)
    assert "CODEX_HOME" in run.env_names


async def test_measure_takes_its_proposals_from_codex(fast_tmp: Path, api: MockResponses) -> None:
    project = codex_project(fast_tmp, api)
    proposals = [
        {"index": 0, "title": "Parse dates", "description": "Add dates.py.", "dependency": -1},
        {"index": 1, "title": "Format dates", "description": "Add fmt.py.", "dependency": 0},
    ]
    api.script(
        Turn([add_file("shoemaker-proposals.json", json.dumps(proposals))]),
        Turn([message("Proposed two tasks.")]),
    )
    tasks = await Engine(project).measure_once()
    assert [(t.title, t.state) for t in tasks] == [
        ("Parse dates", TaskState.READY),
        ("Format dates", TaskState.PROPOSED),
    ]
    # The measure prompt went to codex unchanged, on stdin.
    assert "shoemaker-proposals.json" in json.dumps(api.requests[0]["input"])


async def test_an_api_error_fails_the_attempt_with_the_apis_message(
    fast_tmp: Path, api: MockResponses
) -> None:
    project = codex_project(fast_tmp, api, max_retries=1)
    task_id = add_task(project)
    api.script(Turn(status=400), *WRITE_HELLO)
    await stitch_all(project)
    first, second = project.store.runs(task_id=task_id)
    assert first.ok is False and first.exit_code == 1 and first.subtype == "turn_failed"
    assert "400" in first.reason and "mock error 400" in first.reason
    # The retry's prompt carries the failure, and codex sent it to the model.
    assert "mock error 400" in second.prompt
    assert "mock error 400" in json.dumps(api.requests[1]["input"])
    assert second.ok is True
    assert project.store.get_task(task_id).state == TaskState.DONE


async def test_a_command_line_codex_refuses_is_named_as_such(
    fast_tmp: Path, api: MockResponses
) -> None:
    # --full-auto was removed from codex exec: a usage error, exit 2, nothing on stdout.
    args = ["exec", "--json", "--full-auto"]
    project = codex_project(fast_tmp, api, max_retries=0, agent={"args": args})
    task_id = add_task(project)
    await stitch_all(project)
    (run,) = project.store.runs(task_id=task_id)
    assert run.ok is False and run.exit_code == 2 and api.requests == []
    assert run.reason.startswith("exit code 2: codex refused its command line")
    assert "unexpected argument '--full-auto'" in run.stderr_tail


async def test_a_401_fails_the_run_and_names_the_status(fast_tmp: Path, api: MockResponses) -> None:
    project = codex_project(fast_tmp, api, max_retries=0)
    task_id = add_task(project)
    # codex retries a 401 five times, saying so in non-fatal error events, then fails the turn.
    api.script(*[Turn(status=401)] * 6)
    await stitch_all(project)
    (run,) = project.store.runs(task_id=task_id)
    assert run.ok is False and run.exit_code == 1 and run.subtype == "turn_failed"
    assert "401" in run.reason and "Reconnecting" not in run.reason
    assert len(api.requests) == 6
    assert project.store.get_task(task_id).state == TaskState.FAILED
    assert not (project.root / "hello.py").exists()


async def test_an_error_event_codex_recovers_from_is_a_notice_not_a_failure(
    fast_tmp: Path, api: MockResponses
) -> None:
    project = codex_project(fast_tmp, api, max_retries=0)
    task_id = add_task(project)
    # One 401, retried by codex with a top-level error event, then the work.
    api.script(Turn(status=401), *WRITE_HELLO)
    await stitch_all(project)
    (run,) = project.store.runs(task_id=task_id)
    assert run.ok is True, run.reason
    assert b"Reconnecting... 1/5" in project.store.transcript(run.id)
    assert project.store.get_task(task_id).state == TaskState.DONE


async def _until_the_api_is_asked(project: Project, api: MockResponses, task_id: int) -> None:
    started = asyncio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id == task_id:
            started.set()

    project.bus.add_listener(on_event)
    await started.wait()
    await asyncio.to_thread(api.wait_for, bool)


async def test_a_cancelled_run_interrupts_codex_and_leaves_no_process(
    fast_tmp: Path, api: MockResponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    # The interrupted CLI must exit by itself within the grace, however busy the machine.
    project = codex_project(fast_tmp, api, agent={"kill_grace_sec": BEAT_GRACE_SEC})
    task_id = add_task(project)
    release = threading.Event()
    api.script(Turn([message("never sent")], hold=release))
    run = asyncio.create_task(stitch_all(project))
    await _until_the_api_is_asked(project, api, task_id)
    run.cancel()  # what SIGINT or SIGTERM to shoemaker does: SIGINT to the agent's group
    with pytest.raises(asyncio.CancelledError):
        await run
    release.set()
    (record,) = project.store.runs(task_id=task_id)
    assert record.ok is False and record.reason == "cancelled: stopped by shoemaker"
    # codex answers SIGINT by exiting 1 with no final line.
    assert record.exit_code == 1 and record.subtype is None
    assert b'"thread.started"' in project.store.transcript(record.id)
    task = project.store.get_task(task_id)
    assert task.state == TaskState.READY and task.reason == "interrupted"
    assert processes_with_token(token) == []


async def test_an_interrupted_run_is_charged_for_the_responses_codex_counted(
    fast_tmp: Path, api: MockResponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    project = codex_project(fast_tmp, api)
    task_id = add_task(project)
    release = threading.Event()
    api.script(WRITE_HELLO[0], Turn([message("never sent")], hold=release))
    run = asyncio.create_task(stitch_all(project))
    # The first reply was billed: codex asks again with the tool's output.
    await asyncio.to_thread(api.wait_for, lambda asked: len(asked) >= 2)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    release.set()
    (record,) = project.store.runs(task_id=task_id)
    assert record.ok is False and record.reason == "cancelled: stopped by shoemaker"
    # No turn.completed in the stream: the tokens come from codex's session file.
    assert b"turn.completed" not in project.store.transcript(record.id)
    assert record.usage == Usage(1000, 40, 0, 200)
    price = project.config.price(MODEL)[1]
    assert record.cost_estimated and record.cost_usd == pytest.approx(price.cost(record.usage))
    assert project.store.spend(task_id=task_id).usd == pytest.approx(record.cost_usd)
    assert processes_with_token(token) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_to_shoemaker_run_mid_turn_cancels_the_codex_run_and_leaves_no_process(
    fast_tmp: Path, api: Any, sig: signal.Signals
) -> None:
    token = new_token()
    env = {**os.environ, "SHOEMAKER_TEST_TOKEN": token}
    project = codex_project(fast_tmp, api, measure="off")
    task_id = add_task(project)
    release = threading.Event()
    api.script(Turn([message("never sent")], hold=release))
    run = subprocess.Popen(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), "run", "--events", "none"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.to_thread(api.wait_for, bool)  # codex is at work, waiting on the model
        run.send_signal(sig)  # as a person's Ctrl-C, or a service manager's stop
        _, err = await asyncio.to_thread(run.communicate, timeout=120)
    finally:
        release.set()
        if run.poll() is None:
            run.kill()
    assert run.returncode == 128 + sig, err
    assert f"interrupted by {sig.name}; agents stopped" in err
    reopened = Project.open(project.root)
    (record,) = reopened.store.runs(task_id=task_id)
    assert record.ok is False and record.reason == "cancelled: stopped by shoemaker"
    task = reopened.store.get_task(task_id)
    assert task.state == TaskState.READY and task.reason == "interrupted"
    assert processes_with_token(token) == []


async def test_after_shoemaker_is_killed_resume_stops_codex_and_lands_the_task(
    fast_tmp: Path, api: MockResponses
) -> None:
    token = new_token()
    env = {**os.environ, "SHOEMAKER_TEST_TOKEN": token}
    project = codex_project(fast_tmp, api, measure="off")
    task_id = add_task(project)
    release = threading.Event()
    api.script(Turn([message("never sent")], hold=release))
    command = [sys.executable, "-m", "shoemaker", "-C", str(project.root)]
    run = subprocess.Popen(
        [*command, "run", "--events", "none"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await asyncio.to_thread(api.wait_for, bool)  # codex is at work, waiting on the model
    run.kill()
    run.wait(30)
    # codex runs in a session of its own: it outlived shoemaker.
    assert processes_with_token(token) != []
    api.script(*WRITE_HELLO)
    resumed = subprocess.run(
        [*command, "resume", "--events", "none"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    release.set()
    assert resumed.returncode == 0, resumed.stderr
    reopened = Project.open(project.root)
    task = reopened.store.get_task(task_id)
    assert task.state == TaskState.DONE, task.reason
    first, second = reopened.store.runs(task_id=task_id)
    assert first.reason == "interrupted: shoemaker stopped while it ran" and second.ok
    assert (reopened.root / "hello.py").read_text() == "HELLO = 1\n"
    assert processes_with_token(token) == []
    # The killed shoemaker's codex home (its sessions) went with the recovery; the resumed
    # run removed its own.
    assert list((reopened.state_dir / "agent-homes").iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_to_codex_mid_run_ends_the_run_not_ok(
    fast_tmp: Path, api: MockResponses, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    project = codex_project(fast_tmp, api, max_retries=0)
    task_id = add_task(project)
    release = threading.Event()
    api.script(Turn([message("never sent")], hold=release))
    pids: list[int | None] = []
    project.bus.add_listener(lambda e: pids.append(e.pid) if isinstance(e, AgentStarted) else None)
    run = asyncio.create_task(stitch_all(project))
    await _until_the_api_is_asked(project, api, task_id)
    assert pids[0] is not None
    os.killpg(pids[0], sig)  # as a person's kill of the agent's group would
    await run
    release.set()
    (record,) = project.store.runs(task_id=task_id)
    assert record.ok is False and record.subtype is None and record.ended == "no_result"
    if sig == signal.SIGINT:
        assert record.exit_code == 1 and "no result line" in record.reason
    else:
        assert (record.exit_code in (-15, 143) and "SIGTERM" in record.reason) or "143" in (
            record.reason
        )
    assert project.store.get_task(task_id).state == TaskState.FAILED
    assert processes_with_token(token) == []


async def test_a_resumed_thread_is_charged_for_its_own_turns_only(
    fast_tmp: Path, api: MockResponses
) -> None:
    adapter = adapter_for("codex")
    assert isinstance(adapter, CodexAdapter)
    agent = AgentConfig(kind="codex", command=str(CODEX), model=MODEL)
    env = agent_environment(os.environ, codex_env(fast_tmp, api))
    work = fast_tmp / "work"
    work.mkdir()
    first_launch = adapter.launch(agent, env, None, "Say hello.", fast_tmp / "scratch")
    try:
        env.update(first_launch.env)  # the second run resumes in the same codex home
        runner = ProcessRunner()

        def spec(argv: list[str], name: str, builder: CodexSummaryBuilder) -> RunSpec:
            return RunSpec(
                argv=argv,
                cwd=work,
                env=env,
                prompt="Go on.",
                transcript_path=fast_tmp / name,
                max_time_sec=120,
                idle_timeout_sec=60,
                builder=lambda: builder,
            )

        api.script(Turn([message("hello")], input_tokens=1000, cached_tokens=0, output_tokens=30))
        first_builder = CodexSummaryBuilder(MODEL)
        first = await runner.run(spec(first_launch.argv, "1.jsonl", first_builder))
        assert first.ok, first.reason
        thread = first.summary.session_id
        assert thread
        prior, reasoning = first_builder.thread_total()
        api.script(Turn([message("again")], input_tokens=1500, cached_tokens=500, output_tokens=20))
        resumed = [*first_launch.argv, "resume", thread]
        second_builder = CodexSummaryBuilder(MODEL, prior, reasoning)
        second = await runner.run(spec(resumed, "2.jsonl", second_builder))
        assert second.ok, second.reason
        assert second.summary.session_id == thread
        # The stream reports the thread's total; the run is charged for its own turn.
        assert second_builder.thread_total()[0] == Usage(2000, 50, 0, 500)
        assert second.summary.accounted_usage() == Usage(1000, 20, 0, 500)
        # Without what the thread had before, the same transcript counts both runs.
        assert summarize_codex_file(fast_tmp / "2.jsonl").accounted_usage().total == 2550
    finally:
        for directory in first_launch.cleanup:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
