"""The real gemini CLI (installed from the npm registry by ./dev) does the work, offline, against
the loopback mock of the Gemini API in src/shoemaker/mocks/gemini.py."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from agents import BEAT_GRACE_SEC, GEMINI, new_token, processes_with_token
from projects import make_project
from shoemaker.agents.adapters import adapter_for
from shoemaker.agents.gemini_stream import GeminiSummaryBuilder, summarize_gemini_file
from shoemaker.agents.runner import ProcessRunner, RunSpec, agent_environment
from shoemaker.config import AgentConfig
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.engine.selection import Selection
from shoemaker.engine.task_detail import load_task_detail
from shoemaker.engine.views import LiveUsage
from shoemaker.events import AgentOutput, AgentStarted, BudgetCrossed, Event
from shoemaker.mocks.gemini import MockGemini, Turn, mock_gemini, text, write_file
from shoemaker.model import GenerationState, TaskState, Usage
from shoemaker.store import NewTask

MODEL = "gemini-2.5-flash"
PRICE = {"input": 0.3, "output": 2.5, "cache_read": 0.075, "cache_write": 0.0}


@pytest.fixture
def api() -> Any:
    if not GEMINI.exists():
        pytest.fail(
            f"the gemini CLI is not installed at {GEMINI}: run ./dev test, which installs it"
        )
    with mock_gemini() as served:
        yield served


def gemini_env(tmp: Path, api: MockGemini) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return {
        "GOOGLE_GEMINI_BASE_URL": api.url,
        "GEMINI_API_KEY": "AIza-test-not-a-real-key-0000",
        "HOME": str(home),
    }


def gemini_project(tmp: Path, api: MockGemini, **settings: Any) -> Project:
    agent = {
        "kind": "gemini",
        "command": str(GEMINI),
        "model": MODEL,
        "env": gemini_env(tmp, api),
        "max_time_sec": 120,
        "idle_timeout_sec": 60,
        "kill_grace_sec": 5,
        **settings.pop("agent", {}),
    }
    project = make_project(tmp, [], agent=agent, prices={MODEL: PRICE}, **settings)
    # make_project's rehearsal args are claude's: gemini takes its own defaults.
    assert project.config.agent.args[:4] == ["-p", "", "-o", "stream-json"]
    start_generation(project, "g")
    return project


def add_task(project: Project, title: str = "Write hello") -> int:
    (task,), _ = project.store.add_tasks("g", [NewTask(title, f"{title}.")], 1, "test")
    return task.id


WRITE_HELLO = [Turn([write_file("hello.py", "HELLO = 1\n")]), Turn([text("Wrote hello.py.")])]


async def stitch_all(project: Project) -> None:
    await Engine(project).run(cycles=1, selection=Selection())


async def test_a_file_gemini_writes_with_its_own_tool_lands_with_its_tokens_and_cost(
    fast_tmp: Path, api: MockGemini
) -> None:
    project = gemini_project(fast_tmp, api)
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
    # The live output shows the reply whole, though gemini printed it in two chunks.
    assert "Wrote hello.py." in shown and "[write_file: hello.py]" in shown
    # Two replies of 1200 prompt tokens (200 of them cached) and 40 output each.
    assert run.usage == Usage(2000, 80, 0, 400)
    price = project.config.price(MODEL)[1]
    assert run.cost_estimated and run.cost_usd == pytest.approx(price.cost(run.usage))
    transcript = fast_tmp / "t.jsonl"
    transcript.write_bytes(project.store.transcript(run.id))
    summary = summarize_gemini_file(transcript)
    assert summary.session_id == run.session_id and run.session_id
    assert summary.tool_uses == {"write_file": 1}
    # The mock sends the text in two chunks; the deltas are joined.
    assert summary.result_text == "Wrote hello.py." == run.result_text
    assert {r["model"] for r in api.requests} == {MODEL}
    # The prompt went on stdin; -p "" added nothing to it.
    assert "Write hello." in json.dumps(api.requests[0]["contents"])
    files = subprocess.run(
        ["git", "-C", str(project.root), "show", "--name-only", "--format=", "generation-g"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert files == ["hello.py"]  # gemini keeps its state in its own home, not the tree
    log = load_task_detail(project, task_id).log
    assert "[write_file: hello.py]" in log and "Wrote hello.py." in log
    # The dashboard's live spend reads gemini's result line, whose usage is under "stats".
    (project.runs_dir / f"{run.id}.jsonl").write_bytes(transcript.read_bytes())
    live = LiveUsage(project.runs_dir, project.config).read([run])
    assert live[task_id].usage == run.usage
    assert live[task_id].cost_usd == pytest.approx(run.cost_usd)


async def test_a_gemini_run_that_crosses_a_tiny_budget_pauses_the_generation(
    fast_tmp: Path, api: Any
) -> None:
    project = gemini_project(fast_tmp, api, budgets={"generation": {"usd": 0.000001}})
    first = add_task(project)
    second = add_task(project, "Write later")
    api.script(*WRITE_HELLO)
    report = await Engine(project).run(cycles=2, selection=Selection())
    assert report.stopped_because.startswith("paused: generation budget"), report
    assert project.store.get_generation("g").state == GenerationState.PAUSED
    (run,) = project.store.runs(generation="g")
    assert run.task_id == first and run.cost_usd > 0.000001
    # Priced from gemini's own usage, the one result crossed the limit: nothing else launched.
    assert project.store.get_task(second).state == TaskState.READY
    (event,) = project.store.events_of_kind("g", ["budget_crossed"])
    assert isinstance(event, BudgetCrossed)
    assert (event.scope, event.metric, event.limit) == ("generation", "usd", 0.000001)


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
async def test_gemini_in_bwrap_writes_its_worktree_with_its_home_in_the_sandbox(
    fast_tmp: Path, api: MockGemini
) -> None:
    project = gemini_project(fast_tmp, api, sandbox="bwrap")
    task_id = add_task(project)
    api.script(*WRITE_HELLO)
    await stitch_all(project)
    task = project.store.get_task(task_id)
    assert task.state == TaskState.DONE, task.reason
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    (run,) = project.store.runs(task_id=task_id)
    assert run.argv[0] == "bwrap" and run.usage == Usage(2000, 80, 0, 400)
    assert {"GEMINI_CLI_HOME", "GEMINI_CLI_NO_RELAUNCH"} <= set(run.env_names)


async def test_measure_takes_its_proposals_from_gemini(fast_tmp: Path, api: MockGemini) -> None:
    project = gemini_project(fast_tmp, api)
    proposals = [
        {"index": 0, "title": "Parse dates", "description": "Add dates.py.", "dependency": -1},
        {"index": 1, "title": "Format dates", "description": "Add fmt.py.", "dependency": 0},
    ]
    api.script(
        Turn([write_file("shoemaker-proposals.json", json.dumps(proposals))]),
        Turn([text("Proposed two tasks.")]),
    )
    tasks = await Engine(project).measure_once()
    assert [(t.title, t.state) for t in tasks] == [
        ("Parse dates", TaskState.READY),
        ("Format dates", TaskState.PROPOSED),
    ]
    assert "shoemaker-proposals.json" in json.dumps(api.requests[0]["contents"])


async def test_an_api_error_fails_the_attempt_with_its_status_and_the_retry_carries_it(
    fast_tmp: Path, api: MockGemini
) -> None:
    project = gemini_project(fast_tmp, api, max_retries=1)
    task_id = add_task(project)
    api.script(Turn(status=400), *WRITE_HELLO)
    await stitch_all(project)
    first, second = project.store.runs(task_id=task_id)
    # gemini exits with the HTTP status modulo 256 after its result line says why.
    assert first.ok is False and first.exit_code == 400 % 256 and first.subtype == "error"
    assert "mock error 400" in first.reason
    assert "mock error 400" in second.prompt
    assert second.ok is True
    assert project.store.get_task(task_id).state == TaskState.DONE


async def test_a_401_fails_the_run_and_nothing_lands(fast_tmp: Path, api: MockGemini) -> None:
    project = gemini_project(fast_tmp, api, max_retries=0)
    task_id = add_task(project)
    api.script(*[Turn(status=401)] * 3)
    await stitch_all(project)
    (run,) = project.store.runs(task_id=task_id)
    assert run.ok is False and run.exit_code == 401 % 256, (run.reason, run.stderr_tail)
    assert "401" in run.reason or "mock error 401" in run.reason
    assert project.store.get_task(task_id).state == TaskState.FAILED
    assert not (project.root / "hello.py").exists()


async def test_without_an_api_key_gemini_exits_41_and_the_reason_says_what_to_set(
    fast_tmp: Path, api: MockGemini
) -> None:
    # Preflight refuses to start such a run (doctor's credentials check); the runner still
    # names the code when gemini is run without one.
    adapter = adapter_for("gemini")
    agent = AgentConfig(kind="gemini", command=str(GEMINI), model=MODEL)
    base = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env = agent_environment(base, gemini_env(fast_tmp, api))
    del env["GEMINI_API_KEY"]
    launch = adapter.launch(agent, env, None, "Say hello.", fast_tmp / "scratch")
    try:
        result = await ProcessRunner().run(
            RunSpec(
                argv=launch.argv,
                cwd=fast_tmp,
                env={**env, **launch.env},
                prompt=launch.stdin,
                transcript_path=fast_tmp / "t.jsonl",
                max_time_sec=120,
                idle_timeout_sec=60,
                builder=lambda: adapter.builder(agent),
            )
        )
    finally:
        for directory in launch.cleanup:
            shutil.rmtree(directory, ignore_errors=True)
    assert result.ok is False and result.exit_code == 41 and api.requests == []
    assert result.reason.startswith(
        "exit code 41: gemini could not authenticate: set GEMINI_API_KEY"
    ), (result.reason, result.stderr_tail)


async def _until_the_api_is_asked(project: Project, api: MockGemini, task_id: int) -> None:
    started = asyncio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.task_id == task_id:
            started.set()

    project.bus.add_listener(on_event)
    await started.wait()
    await asyncio.to_thread(api.wait_for, bool)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_to_gemini_mid_run_ends_it_interrupted_not_ok(
    fast_tmp: Path, api: MockGemini, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    project = gemini_project(fast_tmp, api, max_retries=0)
    task_id = add_task(project)
    release = threading.Event()
    api.script(Turn([text("never sent")], hold=release))
    pids: list[int | None] = []
    project.bus.add_listener(lambda e: pids.append(e.pid) if isinstance(e, AgentStarted) else None)
    run = asyncio.create_task(stitch_all(project))
    await _until_the_api_is_asked(project, api, task_id)
    assert pids[0] is not None
    os.killpg(pids[0], sig)  # as a person's kill of the agent's group would
    await run
    release.set()
    (record,) = project.store.runs(task_id=task_id)
    # gemini answers a signal to its group by exiting 0 without a result line.
    assert record.ok is False and record.subtype is None and record.ended == "no_result"
    assert record.exit_code == 0
    assert record.reason.startswith("interrupted: gemini exited without a result line")
    assert project.store.get_task(task_id).state == TaskState.FAILED
    assert processes_with_token(token) == []


async def test_a_cancelled_run_stops_gemini_and_leaves_no_process(
    fast_tmp: Path, api: MockGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    # The interrupted CLI must exit by itself within the grace, however busy the machine.
    project = gemini_project(fast_tmp, api, agent={"kill_grace_sec": BEAT_GRACE_SEC})
    task_id = add_task(project)
    release = threading.Event()
    api.script(Turn([text("never sent")], hold=release))
    run = asyncio.create_task(stitch_all(project))
    await _until_the_api_is_asked(project, api, task_id)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    release.set()
    (record,) = project.store.runs(task_id=task_id)
    assert record.ok is False and record.reason == "cancelled: stopped by shoemaker"
    assert record.exit_code == 0 and record.subtype is None
    assert b'"type":"init"' in project.store.transcript(record.id)
    task = project.store.get_task(task_id)
    assert task.state == TaskState.READY and task.reason == "interrupted"
    assert processes_with_token(token) == []
    # The run's gemini home (its session) went with the run.
    assert list((project.state_dir / "agent-homes").iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_to_shoemaker_run_mid_turn_cancels_the_gemini_run_and_leaves_no_process(
    fast_tmp: Path, api: Any, sig: signal.Signals
) -> None:
    token = new_token()
    env = {**os.environ, "SHOEMAKER_TEST_TOKEN": token}
    project = gemini_project(fast_tmp, api, measure="off")
    task_id = add_task(project)
    release = threading.Event()
    api.script(Turn([text("never sent")], hold=release))
    run = subprocess.Popen(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), "run", "--events", "none"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.to_thread(api.wait_for, bool)  # gemini is at work, waiting on the model
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


async def test_after_shoemaker_is_killed_resume_stops_gemini_and_lands_the_task(
    fast_tmp: Path, api: MockGemini
) -> None:
    token = new_token()
    env = {**os.environ, "SHOEMAKER_TEST_TOKEN": token}
    project = gemini_project(fast_tmp, api, measure="off")
    task_id = add_task(project)
    release = threading.Event()
    api.script(Turn([text("never sent")], hold=release))
    command = [sys.executable, "-m", "shoemaker", "-C", str(project.root)]
    run = subprocess.Popen(
        [*command, "run", "--events", "none"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await asyncio.to_thread(api.wait_for, bool)  # gemini is at work, waiting on the model
    run.kill()
    run.wait(30)
    assert processes_with_token(token) != []  # in a session of its own, it outlived shoemaker
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
    assert list((reopened.state_dir / "agent-homes").iterdir()) == []


async def test_a_resumed_session_is_charged_for_its_own_run_only(
    fast_tmp: Path, api: MockGemini
) -> None:
    adapter = adapter_for("gemini")
    agent = AgentConfig(kind="gemini", command=str(GEMINI), model=MODEL)
    env = agent_environment(os.environ, gemini_env(fast_tmp, api))
    work = fast_tmp / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    launch = adapter.launch(agent, env, None, "Say hello.", fast_tmp / "scratch")
    try:
        env.update(launch.env)  # the second run resumes in the same gemini home
        runner = ProcessRunner()

        def spec(argv: list[str], name: str, prompt: str) -> RunSpec:
            return RunSpec(
                argv=argv,
                cwd=work,
                env=env,
                prompt=prompt,
                transcript_path=fast_tmp / name,
                max_time_sec=120,
                idle_timeout_sec=60,
                builder=lambda: GeminiSummaryBuilder(MODEL),
            )

        api.script(Turn([text("hello")], prompt_tokens=1000, cached_tokens=0, output_tokens=30))
        first = await runner.run(spec(launch.argv, "1.jsonl", "Say hello."))
        assert first.ok, (first.reason, first.stderr_tail)
        session = first.summary.session_id
        assert session
        api.script(Turn([text("again")], prompt_tokens=1500, cached_tokens=500, output_tokens=20))
        second = await runner.run(spec([*launch.argv, "--resume", "latest"], "2.jsonl", "Go on."))
        assert second.ok, (second.reason, second.stderr_tail)
        assert second.summary.session_id == session
        # The resumed request carried the first exchange...
        assert "hello" in json.dumps(api.requests[-1]["contents"])
        # ...and its stats are its own: no double counting.
        assert first.summary.accounted_usage() == Usage(1000, 30, 0, 0)
        assert second.summary.accounted_usage() == Usage(1000, 20, 0, 500)
    finally:
        for directory in launch.cleanup:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.skipif(not Path("/usr/bin/podman").exists(), reason="podman: .ci/run installs it")
async def test_a_real_podman_run_of_gemini_writes_its_worktree_with_its_home_inside(
    fast_tmp: Path, api: MockGemini
) -> None:
    from test_sandbox import HOST_FLAGS, HOST_GLOBAL, IMAGE, _image

    _image()
    # node and gemini's bundle from the host, read-only; its mock on loopback, reached
    # through the host network the container shares.
    cli_root = GEMINI.resolve().parents[3]  # its node_modules, wherever it is installed
    mounts = []
    for path in {Path("/usr"), Path("/lib"), Path("/lib64"), Path("/bin"), cli_root}:
        if path.exists():
            mounts += ["-v", f"{path}:{path}:ro"]
    env = {k: v for k, v in gemini_env(fast_tmp, api).items() if k != "HOME"}
    project = gemini_project(
        fast_tmp,
        api,
        agent={"command": str(GEMINI.resolve()), "env": env},
        sandbox="podman",
        podman_image=IMAGE,
        podman_args=[*HOST_FLAGS, *mounts],
        podman_global_args=HOST_GLOBAL,
    )
    task_id = add_task(project)
    api.script(*WRITE_HELLO)
    await stitch_all(project)
    task = project.store.get_task(task_id)
    assert task.state == TaskState.DONE, task.reason
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    (run,) = project.store.runs(task_id=task_id)
    argv = " ".join(run.argv)
    assert run.argv[0] == "podman" and IMAGE in run.argv and "--network=host" in run.argv
    # gemini's settings home is in the run's home inside the container, named by environment.
    assert "-e GEMINI_CLI_HOME" in argv and "-e GEMINI_API_KEY" in argv
    assert env["GEMINI_API_KEY"] not in argv
    assert run.ok and run.usage == Usage(2000, 80, 0, 400)
