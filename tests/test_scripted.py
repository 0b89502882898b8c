"""The scripted runner ends a run as the real rehearsal agent under the process runner does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agents import (
    BEAT_GRACE_SEC,
    REHEARSAL,
    START_SEC,
    STREAM_ARGS,
    agent_env,
    new_token,
    processes_with_token,
    stitch_prompt,
)
from scripted import MEASURE, ScriptedRunner, no_pid
from shoemaker.agents.runner import AgentCancelled, ProcessRunner, RunResult, RunSpec
from shoemaker.agents.streamjson import StreamEvent, parse_line


def spec_in(cwd: Path, prompt: str, idle: float = 60, max_time: float = 60) -> RunSpec:
    cwd.mkdir(parents=True, exist_ok=True)
    return RunSpec(
        argv=[*REHEARSAL, *STREAM_ARGS],
        cwd=cwd,
        env=agent_env(new_token()),
        prompt=prompt,
        transcript_path=cwd.parent / f"{cwd.name}.jsonl",
        max_time_sec=max_time,
        idle_timeout_sec=idle,
        kill_grace_sec=BEAT_GRACE_SEC,  # an agent answers the interrupt within it
    )


def shape(result: RunResult) -> tuple[Any, ...]:
    s = result.summary
    return (
        result.ok,
        result.exit_code,
        result.killed,
        result.reason,
        s.ended,
        s.subtype,
        s.is_error,
        s.tool_uses,
        (s.input_tokens, s.output_tokens, s.cost_usd),
        result.lines,
        "TypeError" in result.stderr_tail,
    )


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


FILES = {"a.py": "A = 1\n", "b/c.txt": "c\n", "d.txt": "d\n"}


@pytest.mark.parametrize(
    "directives",
    [
        {"files": FILES, "tokens": {"input": 10, "output": 5}, "cost_usd": 0.25},
        {"files": FILES, "append": {"a.py": "B = 2\n"}, "delete": ["gone.txt"]},
        {"files": FILES, "outcome": "crash"},
        {"files": FILES, "outcome": "sigterm"},
        {"files": FILES, "outcome": "max_turns"},
        {"outcome": "api_error", "api_error_status": 429},
        {"outcome": "malformed"},
        {"outcome": "success", "exit_code": 3},
        {},
        {"files": FILES, "rate_limit": {"status": "rejected", "resets_at": 1_900_000_000}},
        {"files": FILES, "rate_limit": {"status": "allowed_warning"}},
    ],
    ids=[
        "ok",
        "edits",
        "crash",
        "sigterm",
        "max_turns",
        "api_error",
        "malformed",
        "exit3",
        "none",
        "rate_limit_rejected",
        "rate_limit_warning",
    ],
)
async def test_each_ending_matches_the_real_agent(fast_tmp: Path, directives: Any) -> None:
    prompt = stitch_prompt(task=7, attempt=1, **directives)
    real_spec = spec_in(fast_tmp / "real", prompt)
    real_events: list[StreamEvent] = []
    real = await ProcessRunner().run(
        real_spec, on_lines=lambda b: real_events.extend(e for e in map(parse_line, b) if e)
    )
    double_spec = spec_in(fast_tmp / "double", prompt)
    double_events: list[StreamEvent] = []
    runner = ScriptedRunner()
    double = await runner.run(
        double_spec, on_lines=lambda b: double_events.extend(e for e in map(parse_line, b) if e)
    )
    assert shape(double) == shape(real)
    assert [e.label for e in double_events] == [e.label for e in real_events]
    assert tree(double_spec.cwd) == tree(real_spec.cwd)
    assert len(double_spec.transcript_path.read_bytes().splitlines()) == real.lines
    assert double.pid == no_pid() and [c.key for c in runner.calls] == [(7, 1)]


async def test_a_script_given_for_a_task_and_attempt_wins_over_the_prompt(fast_tmp: Path) -> None:
    runner = ScriptedRunner({(2, 2): {"outcome": "max_turns"}, MEASURE: {"propose": []}})
    first = await runner.run(spec_in(fast_tmp / "1", stitch_prompt(task=2, attempt=1)))
    second = await runner.run(spec_in(fast_tmp / "2", stitch_prompt(task=2, attempt=2)))
    assert first.ok and not second.ok and second.summary.subtype == "error_max_turns"
    assert [c.key for c in runner.calls] == [(2, 1), (2, 2)]


async def test_a_hang_ends_by_the_idle_clock_as_an_interrupted_real_agent_does(
    fast_tmp: Path,
) -> None:
    # The real agent needs an idle clock well above interpreter start-up on a busy machine.
    prompt = stitch_prompt(outcome="hang")
    real = await ProcessRunner().run(spec_in(fast_tmp / "real", prompt, idle=START_SEC))
    double = await ScriptedRunner().run(spec_in(fast_tmp / "double", prompt, idle=0.2))
    assert shape(double)[:1] + shape(double)[4:] == shape(real)[:1] + shape(real)[4:]
    assert (double.killed, double.exit_code) == (real.killed, real.exit_code) == ("idle", 0)
    assert double.reason == "idle: no output for 0.2s, killed (agent.idle_timeout_sec)"
    beating = stitch_prompt(outcome="hang", heartbeat=0.05)
    timed_out = await ScriptedRunner().run(
        spec_in(fast_tmp / "beat", beating, idle=1, max_time=0.2)
    )
    assert timed_out.killed == "timeout" and timed_out.summary.ended == "result"


async def test_cancelling_a_hang_raises_with_how_it_ended(fast_tmp: Path) -> None:
    runner = ScriptedRunner()
    spec = spec_in(fast_tmp / "c", stitch_prompt(outcome="hang"))
    run = asyncio.create_task(runner.run(spec))
    await runner.started.wait()
    run.cancel()
    with pytest.raises(AgentCancelled) as raised:
        await run
    result = raised.value.result
    assert (result.killed, result.exit_code, result.summary.ended) == ("cancelled", 0, "result")
    assert result.reason.startswith("cancelled")
    last = json.loads(spec.transcript_path.read_text().splitlines()[-1])
    assert last["subtype"] == "error_during_execution"
    assert processes_with_token(spec.env["SHOEMAKER_TEST_TOKEN"]) == []
