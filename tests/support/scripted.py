"""A scripted :class:`AgentRunner`: an agent run acted out in the test's own process.

The engine gets its runner from ``Project.runner``; a test that only checks engine logic
(retries, blocked dependents, budgets, selection…) sets it to a :class:`ScriptedRunner` and no
agent process starts. A script is a rehearsal block (``files``, ``append``, ``delete``, ``run``,
``text``, ``tokens``, ``cost_usd``, ``outcome``, ``exit_code``, ``api_error_status``,
``heartbeat``, ``duration``, ``rate_limit``, ``propose``…, see ``shoemaker.agents.rehearsal``):
given per task and attempt, or for measure, or else read from the prompt as the rehearsal agent
would. The lines come from the rehearsal agent's own :class:`Emitter`, files are written into
the run's working directory, and the :class:`RunResult` is built the way :class:`ProcessRunner`
builds it, so the store, the bus and the engine see a run as they would see the real agent's.

How a run ends follows its ``outcome``: ``success``; ``max_turns`` and ``api_error`` (an error
result); ``crash`` (half the work, a stack trace, no result line); ``sigterm`` (exit 143, no
result line); ``malformed`` (lines that are not JSON); ``hang`` (waits until cancelled, or
until the idle clock — the hard limit when ``heartbeat`` keeps it alive — runs out; either way
it answers the interrupt with an error result, as the CLI does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shoemaker.agents.rehearsal.actions import act, plan_steps
from shoemaker.agents.rehearsal.args import Args, parse_args
from shoemaker.agents.rehearsal.directives import (
    measure_proposals,
    read_blocks,
    stitch_directives,
)
from shoemaker.agents.rehearsal.emitter import Emitter
from shoemaker.agents.rehearsal.outcomes import _default_stitch, emit_api_error, emit_interrupted
from shoemaker.agents.runner import (
    AgentCancelled,
    LineBatch,
    LineSink,
    PidSink,
    RunResult,
    RunSpec,
    _explain,
)
from shoemaker.agents.streamjson import SummaryBuilder

_MEASURE = re.compile(r"<!--\s*shoemaker:measure\s+output=(\S+)\s+max=(\d+)\s*-->")
_STITCH = re.compile(r"<!--\s*shoemaker:stitch\s+task=(\S+)\s+attempt=(\d+)\s*-->")
_CRASH = (
    "TypeError: Cannot read properties of undefined (reading 'input_tokens')\n"
    "    at processResult (file:///rehearsal/cli.js:1:1)\n"
)
_JUNK = (
    "Loading configuration…",
    '{"type": "assistant", "message": {"id": "msg_tr',
    "[object Object]",
    "\x1b[31mwarning\x1b[0m: unexpected token",
)

#: Where scripts are looked up: ``(task_id, attempt)`` for a stitch, ``MEASURE`` for measure.
MEASURE = "measure"
Key = tuple[int, int] | str


def no_pid() -> int:
    """A pid no process can have (pids are below ``pid_max``): what a scripted run reports,
    so that nothing ever signals or matches a real process by it."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 4_194_304


class _Recorder(Emitter):
    """The rehearsal emitter, keeping its lines instead of printing them."""

    def __init__(self, args: Args, cwd: Path, session_id: str) -> None:
        super().__init__(args, cwd, session_id)
        self.out: list[str] = []

    def line(self, obj: dict[str, Any], delay: bool = True) -> None:
        self.out.append(json.dumps(obj, ensure_ascii=False))


@dataclass(frozen=True, slots=True)
class Call:
    """One run the double acted out: what it was asked and how it ended."""

    key: Key | None
    spec: RunSpec
    result: RunResult


@dataclass
class ScriptedRunner:
    """An :class:`AgentRunner` that acts out scripts without starting a process."""

    scripts: Mapping[Key, Mapping[str, Any]] = field(default_factory=dict)
    """Scripts by ``(task_id, attempt)`` or ``MEASURE``; others come from the prompt."""
    calls: list[Call] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once any run has begun (its pid reported)."""

    async def run(
        self, spec: RunSpec, on_lines: LineSink | None = None, on_pid: PidSink | None = None
    ) -> RunResult:
        began = time.monotonic()
        act_out = _Act(self, spec, on_lines, began)
        if on_pid is not None:
            maybe = on_pid(act_out.pid)
            if maybe is not None:
                await maybe
        self.started.set()
        try:
            result = await act_out.play()
        except AgentCancelled as cancelled:
            self.calls.append(Call(act_out.key, spec, cancelled.result))
            raise
        self.calls.append(Call(act_out.key, spec, result))
        return result

    def script_for(self, key: Key | None, prompt: str, attempt: int) -> dict[str, Any]:
        """The script of one run: given for its key, else the prompt's rehearsal blocks."""
        if key is not None and key in self.scripts:
            return dict(self.scripts[key])
        return stitch_directives(read_blocks(prompt), attempt)


class _Act:
    """One scripted run: its lines go to the sink, the transcript and the summary as they are
    made, the way the process runner passes on what it reads."""

    def __init__(
        self, runner: ScriptedRunner, spec: RunSpec, on_lines: LineSink | None, began: float
    ) -> None:
        self.runner = runner
        self.spec = spec
        self.on_lines = on_lines
        self.began = began
        self.pid = no_pid()
        self.builder = SummaryBuilder()
        self.count = 0
        self.written = 0
        self.stderr = ""
        self.measure = _MEASURE.search(spec.prompt)
        self.stitch = _STITCH.search(spec.prompt)
        self.attempt = int(self.stitch.group(2)) if self.stitch else 1
        self.key: Key | None = (
            MEASURE
            if self.measure
            else (int(self.stitch.group(1)), self.attempt)
            if self.stitch and self.stitch.group(1).isdigit()
            else None
        )
        args = parse_args(list(spec.argv[1:]))
        self.em = _Recorder(args, spec.cwd, args.session_id or str(uuid.uuid4()))
        spec.transcript_path.parent.mkdir(parents=True, exist_ok=True)
        self.transcript = spec.transcript_path.open("wb")

    async def play(self) -> RunResult:
        try:
            return await self._play()
        except asyncio.CancelledError:
            # Stopped at any point: the CLI answers the interrupt, as the process runner's is.
            self._interrupted()
            result = await asyncio.shield(self._end(0, "cancelled"))
            raise AgentCancelled(result) from None
        finally:
            self.transcript.close()

    async def _play(self) -> RunResult:
        prompt = self.spec.prompt
        d = self.runner.script_for(self.key, prompt, self.attempt)
        if self.measure:
            steps, final = self._measure_steps(d)
        else:
            steps = plan_steps(d)
            final = d.get("text") or _default_stitch(d, steps, prompt, self.stitch)
        outcome = d.get("outcome", "success")
        total = len(steps) * 2 + 2
        delay = float(d.get("duration", 0)) / total if total else 0.0
        em = self.em
        em.init()
        limit = d.get("rate_limit")
        if limit is not None:
            em.rate_limit_event(limit.get("status", "rejected"), limit.get("resets_at"))
            if limit.get("status", "rejected") == "rejected":
                self._api_error({**d, "api_error_status": 429}, prompt)
                return await self._end(int(d.get("exit_code", 1)))
        await self._flush()
        if outcome == "malformed":
            em.out.extend(_JUNK)
            return await self._end(int(d.get("exit_code", 0)))
        if outcome == "hang":
            return await self._hang(d)
        if outcome == "api_error":
            self._api_error(d, prompt)
            return await self._end(int(d.get("exit_code", 1)))
        half = outcome in ("crash", "sigterm")
        await self._work(steps[: len(steps) // 2] if half else steps, delay)
        if outcome == "crash":
            self.stderr = _CRASH
            return await self._end(int(d.get("exit_code", 1)))
        if outcome == "sigterm":
            return await self._end(143)
        em.text(final)
        if outcome == "max_turns":
            limit = em.args.max_turns or 1
            em.result(
                d,
                prompt,
                final,
                subtype="error_max_turns",
                is_error=True,
                errors=[f"Reached maximum number of turns ({limit})"],
                terminal="max_turns",
            )
            return await self._end(int(d.get("exit_code", 1)))
        em.result(d, prompt, final)
        return await self._end(int(d.get("exit_code", 0)))

    def _measure_steps(self, d: dict[str, Any]) -> tuple[list[tuple[str, str, Any]], str]:
        assert self.measure is not None
        proposals, via = measure_proposals(
            read_blocks(self.spec.prompt) if MEASURE not in self.runner.scripts else [d],
            self.spec.prompt,
            int(self.measure.group(2)),
        )
        out = Path(self.measure.group(1))
        out = out if out.is_absolute() else self.spec.cwd / out
        steps: list[tuple[str, str, Any]] = []
        if via == "file":
            steps = [("proposals", str(out), json.dumps(proposals, indent=2))]
        final = d.get("text") or f"Proposed {len(proposals)} tasks."
        if via == "text":
            final += "\n\n```yaml\n" + yaml.safe_dump(proposals, sort_keys=False) + "```\n"
        return steps, str(final)

    async def _work(self, steps: list[tuple[str, str, Any]], delay: float) -> None:
        em = self.em
        em.text(
            "Reading the task and the repository."
            if not self.measure
            else "Reading the documents and the existing tasks."
        )
        await self._flush()
        for kind, target, payload in steps:
            if delay:
                await asyncio.sleep(delay)
            if kind == "proposals":
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                Path(target).write_text(payload, encoding="utf-8")
                em.tool(
                    "Write",
                    {"file_path": target, "content": payload},
                    f"File created successfully at: {target}",
                    False,
                )
            elif kind in ("run", "detach", "signal"):
                await asyncio.to_thread(act, em, kind, target, payload, self.spec.env)
            else:
                act(em, kind, target, payload)
            await self._flush()

    def _api_error(self, d: dict[str, Any], prompt: str) -> None:
        emit_api_error(self.em, d, prompt)

    async def _hang(self, d: dict[str, Any]) -> RunResult:
        """Wait for the clock that would stop the real agent first (or to be cancelled)."""
        spec = self.spec
        heartbeat = float(d.get("heartbeat", 0))
        alive = 0 < heartbeat < spec.idle_timeout_sec
        clock = spec.max_time_sec if alive else min(spec.idle_timeout_sec, spec.max_time_sec)
        killed = "timeout" if alive or spec.max_time_sec <= spec.idle_timeout_sec else "idle"
        left = clock - (time.monotonic() - self.began)
        try:
            await asyncio.wait_for(asyncio.Event().wait(), max(left, 0.0))
        except TimeoutError:
            self._interrupted()
            return await self._end(0, killed)
        raise AssertionError("unreachable: the wait only ends by its clock or cancellation")

    def _interrupted(self) -> None:
        """What the CLI prints when it is interrupted: a note and an error result."""
        emit_interrupted(self.em, self.spec.prompt)

    async def _flush(self) -> None:
        """Pass on the lines made so far, then let other tasks run, as reading a pipe would."""
        em = self.em
        if em.out:
            raw = [line.encode("utf-8") for line in em.out]
            em.out.clear()
            data = b"".join(line + b"\n" for line in raw)
            redact = self.spec.redact
            written = redact(data) if redact is not None else data
            batch = LineBatch((), self.written, self.written + len(written))
            self.transcript.write(written)
            self.written += len(written)
            for line in raw:
                self.count += 1
                self.builder.feed(line)
                batch.append(line)
            if self.on_lines is not None:
                maybe = self.on_lines(batch)
                if maybe is not None:
                    await maybe
        await asyncio.sleep(0)

    async def _end(self, exit_code: int, killed: str | None = None) -> RunResult:
        await self._flush()
        with contextlib.suppress(Exception):
            self.transcript.flush()
        summary = self.builder.summary(exit_code)
        return RunResult(
            exit_code=exit_code,
            summary=summary,
            ok=summary.ok and killed is None,
            reason=_explain(summary, exit_code, killed, self.spec),
            killed=killed,
            stderr_tail=self.stderr,
            wall_s=time.monotonic() - self.began,
            pid=self.pid,
            lines=self.count,
        )
