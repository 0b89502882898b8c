"""The process runner against real processes: the rehearsal agent and small scripted agents."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agents import (
    BEAT_GRACE_SEC,
    REHEARSAL,
    START_SEC,
    STREAM_ARGS,
    agent_env,
    new_token,
    processes_with_token,
    sleepers,
    stitch_prompt,
)
from projects import make_project, task
from shoemaker.agents.leftovers import RUN_MARKER, Leftovers, RunCgroup
from shoemaker.agents.runner import (
    AgentCancelled,
    LineBatch,
    ProcessRunner,
    RunResult,
    RunSpec,
    agent_environment,
)
from shoemaker.agents.streamjson import (
    ReadLines,
    StreamEvent,
    condense_data,
    condense_raw,
    parse_line,
)
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.model import TaskState, Usage
from shoemaker.secrets import Redactor


async def run(
    cwd: Path,
    prompt: str,
    argv: list[str] | None = None,
    *,
    token: str | None = None,
    max_time: float = 60,
    idle: float = 60,
    grace: float = 2,
    collect: list[StreamEvent] | None = None,
) -> RunResult:
    token = token or new_token()
    spec = RunSpec(
        argv=argv or [*REHEARSAL, *STREAM_ARGS],
        cwd=cwd,
        env=agent_env(token),
        prompt=prompt,
        transcript_path=cwd / "transcript.jsonl",
        max_time_sec=max_time,
        idle_timeout_sec=idle,
        kill_grace_sec=grace,
    )

    def on_lines(batch: LineBatch) -> None:
        if collect is not None:
            collect.extend(e for e in map(parse_line, batch) if e is not None)

    result = await ProcessRunner().run(spec, on_lines=on_lines)
    assert processes_with_token(token) == [], "a process of the run outlived it"
    return result


async def test_success(fast_tmp: Path) -> None:
    events: list[StreamEvent] = []
    prompt = stitch_prompt(
        files={"a.txt": "hello\n"}, tokens={"input": 10, "output": 5}, cost_usd=0.25
    )
    result = await run(fast_tmp, prompt, collect=events)
    assert (result.exit_code, result.ok, result.reason, result.killed) == (0, True, "", None)
    s = result.summary
    assert (s.input_tokens, s.output_tokens, s.cost_usd, s.tool_uses) == (10, 5, 0.25, {"Write": 1})
    assert (fast_tmp / "a.txt").read_text() == "hello\n"
    assert events[0].label == "system/init" and events[-1].type == "result"
    raw = (fast_tmp / "transcript.jsonl").read_bytes().splitlines()
    assert len(raw) == result.lines == len(events)


@pytest.mark.parametrize(
    ("outcome", "exit_code", "reason"),
    [
        ("crash", 1, "no result line"),
        ("malformed", 0, "no result line (crashed or killed)"),
        ("max_turns", 1, "Reached maximum number of turns (1)"),
        ("api_error", 1, "API error 529"),
        ("sigterm", 143, "no result line"),
    ],
)
async def test_failure_outcomes(fast_tmp: Path, outcome: str, exit_code: int, reason: str) -> None:
    result = await run(fast_tmp, stitch_prompt(outcome=outcome, files={"a": "1", "b": "2"}))
    assert result.exit_code == exit_code
    assert not result.ok and result.killed is None
    assert reason in result.reason
    if outcome == "crash":
        assert "TypeError" in result.stderr_tail
    if outcome == "malformed":
        assert result.summary.bad_lines >= 3


async def test_idle_watchdog_kills_a_silent_agent(fast_tmp: Path) -> None:
    # The agent must answer the interrupt within the grace: one it beats, however busy.
    prompt = stitch_prompt(outcome="hang")
    result = await run(fast_tmp, prompt, idle=START_SEC, grace=BEAT_GRACE_SEC)
    assert result.killed == "idle" and not result.ok
    assert f"no output for {START_SEC:g}s" in result.reason
    # Interrupted first, as Ctrl-C would: like the CLI, the agent then prints a last result
    # that says what the run cost, and exits 0.
    s = result.summary
    assert result.exit_code == 0 and s.subtype == "error_during_execution" and s.is_error
    assert s.cost_usd is not None and s.cost_usd > 0 and s.input_tokens


async def stopped_once_it_speaks(
    cwd: Path, argv: list[str], lines: int = 1, grace: float = 0.3
) -> RunResult:
    """Run ``argv`` and stop the run (as a cancelled task, the way a clock running out does)
    once ``lines`` lines arrived: by then the agent has set its signal handlers."""
    token = new_token()
    spoke = asyncio.Event()
    seen: list[bytes] = []

    def on_lines(batch: LineBatch) -> None:
        seen.extend(batch)
        if len(seen) >= lines:
            spoke.set()

    spec = RunSpec(
        argv=argv,
        cwd=cwd,
        env=agent_env(token),
        prompt="",
        transcript_path=cwd / "transcript.jsonl",
        kill_grace_sec=grace,
    )
    run = asyncio.create_task(ProcessRunner().run(spec, on_lines=on_lines))
    await spoke.wait()
    run.cancel()
    with pytest.raises(AgentCancelled) as raised:
        await run
    assert processes_with_token(token) == [], "a process of the run outlived it"
    return raised.value.result


async def test_an_agent_deaf_to_the_interrupt_gets_sigterm(fast_tmp: Path) -> None:
    argv = script(
        fast_tmp,
        """
        import json, signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(json.dumps({"type": "system", "subtype": "init"}), flush=True)
        time.sleep(60)
    """,
    )
    result = await stopped_once_it_speaks(fast_tmp, argv)
    assert result.killed == "cancelled" and result.exit_code == -15
    assert result.summary.ended == "no_result"


async def test_hard_timeout_kills_a_chatty_agent(fast_tmp: Path) -> None:
    prompt = stitch_prompt(outcome="hang", heartbeat=0.05)
    # The idle clock outlasts start-up; the heartbeat keeps it from running out after that.
    result = await run(fast_tmp, prompt, max_time=START_SEC, idle=START_SEC)
    assert result.killed == "timeout"
    assert result.summary.lines > 3  # it was talking all along
    assert f"hard limit of {START_SEC:g}s" in result.reason


def script(tmp: Path, body: str) -> list[str]:
    path = tmp / "agent.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


async def test_stubborn_agent_is_killed_after_the_grace_period(fast_tmp: Path) -> None:
    argv = script(
        fast_tmp,
        """
        import json, signal, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(json.dumps({"type": "system", "subtype": "init"}), flush=True)
        while True:
            time.sleep(1)
    """,
    )
    result = await stopped_once_it_speaks(fast_tmp, argv)
    assert result.killed == "cancelled" and result.exit_code == -9


async def test_children_left_behind_are_killed(fast_tmp: Path) -> None:
    # The agent starts a grandchild that keeps stdout open, then exits without a result.
    argv = script(
        fast_tmp,
        """
        import json, subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        print(json.dumps({"type": "system", "subtype": "init"}), flush=True)
    """,
    )
    result = await run(fast_tmp, "", argv, grace=0.3)
    assert result.exit_code == 0 and result.killed is None
    assert not result.ok and "no result line" in result.reason


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup", "marker"])
async def test_a_process_the_agent_detaches_dies_with_its_run(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch, cgroup: bool
) -> None:
    # The agent is `setsid -f` itself: its child leaves the process group and keeps stdout
    # open. Found by the run's cgroup, or (a machine without one) by the run's marker.
    if not cgroup:
        monkeypatch.setattr(RunCgroup, "create", classmethod(lambda cls: None))
    elif (probe := RunCgroup.create()) is None:
        pytest.skip("this machine does not let shoemaker make a cgroup v2")
    else:
        probe.remove()
    token = new_token()
    spec = RunSpec(
        argv=["setsid", "-f", "sleep", "300"],
        cwd=fast_tmp,
        env={**agent_env(token), RUN_MARKER: f"test#{token}"},
        prompt="",
        transcript_path=fast_tmp / "transcript.jsonl",
        max_time_sec=60,
        idle_timeout_sec=60,
        kill_grace_sec=0.3,
    )
    result = await ProcessRunner().run(spec)
    assert result.exit_code == 0 and not result.ok and result.killed is None
    assert sleepers(token) == [] and processes_with_token(token) == []


async def test_the_agent_is_started_without_a_fork_and_runs_in_its_runs_cgroup(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A preexec_fn makes Python fork() shoemaker's whole process instead of vfork(): the run's
    # process is moved into its cgroup once started instead. The script reads its prompt to
    # the end before it looks: the prompt is written only once the process was moved.
    if (probe := RunCgroup.create()) is None:
        pytest.skip("this machine does not let shoemaker make a cgroup v2")
    probe.remove()
    hooks: list[object] = []
    spawn = asyncio.create_subprocess_exec

    async def recorded(*args: object, **kwargs: object) -> asyncio.subprocess.Process:
        hooks.append(kwargs.get("preexec_fn"))
        return await spawn(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recorded)
    # The move waits for the kernel (an RCU grace period): never on the event loop's thread.
    movers: list[str] = []
    adopt = Leftovers.adopt

    def adopted(self: Leftovers, pid: int) -> None:
        movers.append(threading.current_thread().name)
        adopt(self, pid)

    monkeypatch.setattr(Leftovers, "adopt", adopted)
    argv = script(
        fast_tmp,
        """
        import json, sys
        sys.stdin.read()
        with open("/proc/self/cgroup") as f:
            cgroup = f.read()
        print(json.dumps({"type": "system", "subtype": "init", "cgroup": cgroup}), flush=True)
    """,
    )
    events: list[StreamEvent] = []
    await run(fast_tmp, "the prompt", argv, collect=events)
    assert hooks == [None]
    assert len(movers) == 1 and movers[0] != threading.main_thread().name
    (init,) = events
    assert f"/shoemaker-{os.getpid()}-" in init.data["cgroup"]


async def test_a_detach_directive_of_the_rehearsal_agent_is_reaped(fast_tmp: Path) -> None:
    token = new_token()
    prompt = stitch_prompt(detach=["setsid -f sleep 300"], files={"a.txt": "x"})
    result = await run(fast_tmp, prompt, token=token)  # asserts that nothing of it is left
    assert result.ok, result.reason
    assert result.summary.tool_uses == {"Write": 1, "Bash": 1}


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
async def test_what_an_agent_detaches_in_a_task_is_gone_when_its_run_ends(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch, sandbox: str
) -> None:
    if sandbox == "bwrap" and not Path("/usr/bin/bwrap").exists():
        pytest.skip("bubblewrap: .ci/run installs it")
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    project = make_project(
        fast_tmp,
        [task("Detaches", detach=["setsid -f sleep 300"], files={"d.py": "D = 1\n"})],
        sandbox=sandbox,
    )
    start_generation(project, "g")
    seen: list[list[int]] = []
    # When the agent's run is over (its AgentFinished), nothing of it may be left.
    project.bus.add_listener(
        lambda e: seen.append(sleepers(token)) if e.kind == "agent_finished" else None
    )
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.DONE, t.reason
    assert seen == [[], []]  # measure, then the task's run
    (run,) = project.store.runs(task_id=t.id)
    assert "Started in the background (exit code 0)" in project.store.transcript(run.id).decode()
    assert processes_with_token(token) == []


async def test_lines_of_sixteen_megabytes_and_more(fast_tmp: Path) -> None:
    argv = script(
        fast_tmp,
        """
        import json, sys
        big = "x" * (17 * 1024 * 1024)
        sys.stdout.write(json.dumps({"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t", "content": big}]}}) + "\\n")
        sys.stdout.write(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                                     "total_cost_usd": 0.01}) + "\\n")
    """,
    )
    events: list[StreamEvent] = []
    result = await run(fast_tmp, "", argv, collect=events)
    assert result.ok and result.summary.bad_lines == 0 and result.lines == 2
    assert len(events[0].data["message"]["content"][0]["content"]) == 17 * 1024 * 1024


@pytest.mark.parametrize("secret", [False, True])
async def test_each_read_gives_its_whole_lines_and_the_transcript_keeps_the_bytes(
    fast_tmp: Path, secret: bool
) -> None:
    # Pieces flushed apart, a line longer than one read, CRLF, blank lines, a line that is
    # not JSON and a last line without its newline: however the reads fall, the batches hold
    # every non-blank line once, in order, and the transcript is what the agent printed. Each
    # batch names its bytes in the transcript: condensed from there, its lines are what
    # condensing the parsed lines gives (redacted, with a secret configured).
    argv = script(
        fast_tmp,
        """
        import json, sys
        init = json.dumps({"type": "system", "subtype": "init"})
        long = json.dumps({"type": "assistant", "message": {"content": [
            {"type": "text", "text": "sesame-42 " + "y" * 200_000}]}})
        done = json.dumps({"type": "result", "subtype": "success", "is_error": False})
        out = sys.stdout.buffer
        for piece in (init.encode() + b"\\r\\n\\n  \\n", long[:70_000].encode(),
                      long[70_000:].encode() + b"\\nnot json sesame-42\\n", done.encode()):
            out.write(piece)
            out.flush()
    """,
    )
    redactor = Redactor({"sesame-42": "PASSWORD"} if secret else {})
    batches: list[LineBatch] = []
    spec = RunSpec(
        argv=argv,
        cwd=fast_tmp,
        env=agent_env(new_token()),
        prompt="",
        transcript_path=fast_tmp / "transcript.jsonl",
        redact=redactor.data if secret else None,
    )
    result = await ProcessRunner().run(spec, on_lines=batches.append)
    lines = [line for batch in batches for line in batch]
    assert lines, (result.reason, result.stderr_tail)
    assert [line[:30] for line in lines] == [
        b'{"type": "system", "subtype": ',
        b'{"type": "assistant", "message',
        b"not json sesame-42",
        b'{"type": "result", "subtype": ',
    ]
    assert len(lines[1]) > 200_000 and not lines[0].endswith(b"\r")
    assert result.ok and result.lines == 4 and result.summary.bad_lines == 1
    printed = (fast_tmp / "transcript.jsonl").read_bytes()
    assert printed.count(b"\n") == 5
    assert (b"sesame-42" in printed) is not secret
    if not secret:
        assert printed.startswith(lines[0] + b"\r\n\n  \n") and printed.endswith(lines[3])
    assert batches[0].start == 0 and batches[-1].end == len(printed)
    for before, after in itertools.pairwise(batches):
        assert before.end <= after.start
    clean = redactor.text if secret else None
    for batch in batches:
        from_transcript = condense_data(printed[batch.start : batch.end])
        in_memory = ReadLines(batch, clean=clean)(None)
        assert [label for label, _ in from_transcript] == [label for label, _ in in_memory]
        for raw, there, here in zip(batch, from_transcript, in_memory, strict=True):
            if b"sesame-42" in raw and secret:
                # Redacted before condensing or after: the excerpt may end elsewhere.
                assert "[redacted PASSWORD]" in there[1] and "[redacted PASSWORD]" in here[1]
            else:
                assert there == here
        assert condense_data(printed[batch.start : batch.end], most=1) == from_transcript[-1:]
    shown = [text for batch in batches for _, text in ReadLines(batch, clean=clean)(None)]
    assert any("sesame-42" in text for text in shown) is not secret
    assert sum(len(condense_raw(b)) for b in batches) == 4
    assert ReadLines(batches[-1])(1) == condense_raw(batches[-1])[-1:]


async def test_prompt_on_stdin_and_claudecode_removed(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = script(
        fast_tmp,
        """
        import json, os, sys
        prompt = sys.stdin.read()
        print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                          "result": json.dumps([prompt, os.environ.get("CLAUDECODE"),
                                                os.environ.get("EXTRA")])}))
    """,
    )
    monkeypatch.setenv("CLAUDECODE", "1")
    token = new_token()
    env = agent_environment({**agent_env(token), "CLAUDECODE": "1"}, {"EXTRA": "yes"})
    spec = RunSpec(argv, fast_tmp, env, "the prompt ✓", fast_tmp / "t.jsonl")
    result = await ProcessRunner().run(spec)
    assert json.loads(result.summary.result_text or "") == ["the prompt ✓", None, "yes"]


async def test_cancelling_a_run_kills_its_group(fast_tmp: Path) -> None:
    token = new_token()
    started = asyncio.Event()

    def on_lines(batch: LineBatch) -> None:
        started.set()

    spec = RunSpec(
        [*REHEARSAL, *STREAM_ARGS],
        fast_tmp,
        agent_env(token),
        stitch_prompt(outcome="hang"),
        fast_tmp / "t.jsonl",
        kill_grace_sec=2,
    )
    task = asyncio.create_task(ProcessRunner().run(spec, on_lines=on_lines))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert processes_with_token(token) == []


async def test_a_cancelled_run_says_how_it_ended(fast_tmp: Path) -> None:
    first_message = asyncio.Event()

    def on_lines(batch: LineBatch) -> None:
        if any(e is not None and e.type == "assistant" for e in map(parse_line, batch)):
            first_message.set()

    files = {f"f{n}.py": "x = 1\n" for n in range(20)}
    spec = RunSpec(
        [*REHEARSAL, *STREAM_ARGS],
        fast_tmp,
        agent_env(new_token()),
        stitch_prompt(files=files, duration=60),
        fast_tmp / "t.jsonl",
        kill_grace_sec=BEAT_GRACE_SEC,  # the interrupt's result must come within it
    )
    task = asyncio.create_task(ProcessRunner().run(spec, on_lines=on_lines))
    await first_message.wait()
    task.cancel()
    with pytest.raises(AgentCancelled) as raised:
        await task
    result = raised.value.result
    assert result.killed == "cancelled" and not result.ok
    lines = [json.loads(line) for line in spec.transcript_path.read_text().splitlines()]
    assert result.lines == len(lines) and result.wall_s > 0
    # The interrupt's last result line is in the transcript and the summary: the cost is known.
    assert lines[-1]["type"] == "result" and result.exit_code == 0
    assert result.summary.cost_usd == lines[-1]["total_cost_usd"] > 0


async def test_a_run_killed_without_a_result_is_charged_for_its_messages(fast_tmp: Path) -> None:
    # Two API messages, the first reported on two lines; then deaf to SIGINT, so no result.
    argv = script(
        fast_tmp,
        """
        import json, signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        def say(mid, usage):
            message = {"id": mid, "model": "m", "content": [], "usage": usage}
            print(json.dumps({"type": "assistant", "message": message}), flush=True)
        say("a", {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 100})
        say("a", {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 100})
        say("b", {"input_tokens": 20, "output_tokens": 1, "cache_creation_input_tokens": 7})
        time.sleep(60)
    """,
    )
    result = await stopped_once_it_speaks(fast_tmp, argv, lines=3)
    assert result.exit_code == -15 and result.summary.ended == "no_result"
    assert result.summary.message_usage == Usage(30, 2, 7, 100)


async def test_missing_executable_is_a_clear_failure(fast_tmp: Path) -> None:
    spec = RunSpec(["no-such-agent-xyz"], fast_tmp, agent_env(new_token()), "", fast_tmp / "t")
    result = await ProcessRunner().run(spec)
    assert result.exit_code is None and not result.ok
    assert "cannot start agent 'no-such-agent-xyz'" in result.reason
    assert "agent.command" in result.reason
