"""Running an agent process: the runner protocol and its one implementation. What the process
prints is parsed by the parser its kind's adapter gives (``RunSpec.builder``; claude's by default).

The process gets the prompt on stdin, runs in its own process group, and is watched by two
clocks: a hard limit on wall time and an idle watchdog (no stdout for N seconds). Stopping it
escalates: SIGINT to the whole group first (the CLI answers with a last result line, so the
run's cost is known) while stdout is still read, then SIGTERM, then SIGKILL, each after a grace
period, so nothing it spawned outlives it; what left the group (``setsid -f``) is found by the
run's cgroup or environment marker (``agents/leftovers.py``) and killed too. Every stdout byte
goes to the transcript file as it arrives, and lines of any size (stream-json lines reach
megabytes) are split by hand instead of with ``readline``'s limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from shoemaker.agents.leftovers import RUN_MARKER, Leftovers
from shoemaker.agents.leftovers import exited as _exited
from shoemaker.agents.process_group import (
    LIVE_GROUPS,
    chain,
    die_with_parent,
    group_alive,
    signal_group,
)
from shoemaker.agents.protocol import AgentSummary, LineBuilder
from shoemaker.agents.protocol import LineBatch as LineBatch
from shoemaker.agents.streamjson import SummaryBuilder, TranscriptSummary

#: Environment variables never passed to an agent: CLAUDECODE makes a nested claude CLI believe
#: it runs inside another one and refuse or change behaviour.
DROPPED_ENV = ("CLAUDECODE",)
STDERR_TAIL_BYTES = 16_384
CANCELLED = "cancelled: stopped by shoemaker"
READ_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything needed to launch one agent run."""

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    prompt: str
    transcript_path: Path
    max_time_sec: float = 3600.0
    idle_timeout_sec: float = 600.0
    kill_grace_sec: float = 5.0
    redact: Callable[[bytes], bytes] | None = None
    """Applied to each line before it is written to the transcript (secret values out)."""
    builder: Callable[[], LineBuilder] = SummaryBuilder
    """Makes the parser of the CLI's stream (its adapter's; default: claude's stream-json)."""
    die_with_parent: bool = False
    """The agent dies with this process (a cluster worker's run: see ``cluster/worker.py``)."""


@dataclass(slots=True)
class RunResult:
    """How a run ended. ``ok`` only when a result line said no error and the exit code was 0."""

    exit_code: int | None
    summary: TranscriptSummary
    ok: bool
    reason: str
    """Empty when ok; otherwise why not (killed by a clock, crashed, an error result…)."""
    killed: str | None = None
    """``timeout``, ``idle`` or ``cancelled`` when shoemaker stopped the process."""
    stderr_tail: str = ""
    wall_s: float = 0.0
    pid: int | None = None
    lines: int = 0


class AgentCancelled(asyncio.CancelledError):
    """The task running the agent was cancelled: the process was stopped, and ``result`` is
    how it ended (exit code, stderr, what it printed and the tokens that reported)."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.reason)
        self.result = result


#: Called with each batch of lines read from stdout.
LineSink = Callable[[LineBatch], Awaitable[None] | None]
#: Called once the process is running, with its pid (to record it before anything else).
PidSink = Callable[[int], Awaitable[None] | None]


class AgentRunner(Protocol):
    """Runs one agent invocation to its end."""

    async def run(
        self, spec: RunSpec, on_lines: LineSink | None = None, on_pid: PidSink | None = None
    ) -> RunResult: ...


def agent_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ``base`` plus ``extra``, without the variables in DROPPED_ENV."""
    env = {k: v for k, v in base.items() if k not in DROPPED_ENV}
    env.update(extra)
    for name in DROPPED_ENV:
        env.pop(name, None)
    return env


async def _call(sink: Callable[..., Awaitable[None] | None] | None, *args: object) -> None:
    if sink is None:
        return
    maybe = sink(*args)
    if maybe is not None:
        await maybe


@dataclass
class _Watch:
    """Mutable bookkeeping of one run, shared by its reader tasks."""

    started: float
    last_output: float
    lines: int = 0
    stderr: deque[bytes] = field(default_factory=lambda: deque())
    stderr_size: int = 0
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    pending: bytearray = field(default_factory=bytearray)
    """The start of a stdout line whose end has not arrived yet."""
    written: int = 0
    """Bytes written to the transcript so far."""


class ProcessRunner:
    """An :class:`AgentRunner` for any executable that behaves like ``claude -p`` stream-json."""

    async def run(
        self, spec: RunSpec, on_lines: LineSink | None = None, on_pid: PidSink | None = None
    ) -> RunResult:
        started = time.monotonic()
        builder = spec.builder()
        # What leaves the process group (setsid, a double fork) is found by cgroup or marker.
        leftovers = Leftovers(spec.env.get(RUN_MARKER))
        dies = spec.die_with_parent  # its preexec_fn forks anyway: it enters its cgroup there
        try:
            # No preexec_fn (it makes Python fork all of shoemaker): the feeder moves it instead.
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                cwd=spec.cwd,
                env=dict(spec.env),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, killed as a whole
                preexec_fn=chain(leftovers.preexec, die_with_parent()) if dies else None,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            leftovers.close()
            reason = f"cannot start agent {spec.argv[0]!r}: {exc.strerror or exc}"
            if isinstance(exc, FileNotFoundError):
                reason += " (is it installed? set agent.command in configuration.yaml)"
            return RunResult(None, builder.summary(None), False, reason, wall_s=0.0)

        pgid = proc.pid  # start_new_session makes the child the leader of a new group
        LIVE_GROUPS.add(pgid)
        watch = _Watch(started=started, last_output=started)
        killed: str | None = None
        try:
            await _call(on_pid, proc.pid)
            spec.transcript_path.parent.mkdir(parents=True, exist_ok=True)
            with spec.transcript_path.open("wb") as transcript:
                feeder = asyncio.create_task(self._feed_stdin(proc, spec.prompt, leftovers))
                errs = asyncio.create_task(self._drain_stderr(proc, watch))
                orphans = asyncio.create_task(
                    self._kill_orphans(proc, pgid, watch, spec, leftovers)
                )
                try:
                    killed = await self._pump_stdout(
                        proc, spec, watch, builder, transcript, on_lines
                    )
                except asyncio.CancelledError:
                    # Stopped below like any killed run; raised again once the run's record
                    # (exit code, tokens so far) is complete.
                    killed = "cancelled"
                finally:
                    if killed:
                        try:
                            await asyncio.shield(
                                self._interrupt(
                                    proc,
                                    pgid,
                                    spec,
                                    watch,
                                    builder,
                                    transcript,
                                    on_lines,
                                    leftovers,
                                )
                            )
                        finally:
                            await asyncio.shield(self._stop(proc, pgid, spec.kill_grace_sec))
                    for helper in (feeder, orphans):
                        helper.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await helper
                    # The main process may be gone while children it spawned linger, holding
                    # stderr open: they die with their group.
                    await asyncio.shield(self._reap_group(proc, pgid, spec.kill_grace_sec))
                    # And what left the group: a process the agent detached dies with its run.
                    await asyncio.shield(leftovers.reap())
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await asyncio.wait_for(errs, spec.kill_grace_sec)
        finally:
            LIVE_GROUPS.discard(pgid)
            leftovers.close()

        exit_code = proc.returncode
        summary = builder.summary(exit_code)
        wall = time.monotonic() - started
        reason = _explain(summary, exit_code, killed, spec)
        result = RunResult(
            exit_code=exit_code,
            summary=summary,
            ok=summary.ok and killed is None,
            reason=reason,
            killed=killed,
            stderr_tail=b"".join(watch.stderr).decode("utf-8", "replace")[-STDERR_TAIL_BYTES:],
            wall_s=wall,
            pid=proc.pid,
            lines=watch.lines,
        )
        if killed == "cancelled":
            raise AgentCancelled(result)
        return result

    @staticmethod
    async def _feed_stdin(proc: asyncio.subprocess.Process, prompt: str, into: Leftovers) -> None:
        assert proc.stdin is not None
        # Into its cgroup before its prompt, in a thread: a move waits for an RCU grace period.
        await asyncio.to_thread(into.adopt, proc.pid)
        try:
            proc.stdin.write(prompt.encode("utf-8"))
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the agent exited before reading its prompt; its exit says why
        finally:
            with contextlib.suppress(Exception):
                proc.stdin.close()

    @staticmethod
    async def _drain_stderr(proc: asyncio.subprocess.Process, watch: _Watch) -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(READ_CHUNK):
            watch.stderr.append(chunk)
            watch.stderr_size += len(chunk)
            while watch.stderr_size - len(watch.stderr[0]) >= STDERR_TAIL_BYTES:
                watch.stderr_size -= len(watch.stderr.popleft())

    @staticmethod
    async def _pump_stdout(
        proc: asyncio.subprocess.Process,
        spec: RunSpec,
        watch: _Watch,
        builder: LineBuilder,
        transcript: BinaryIO,
        on_lines: LineSink | None,
        clocks: bool = True,
    ) -> str | None:
        """Read stdout to EOF; returns ``timeout``/``idle`` if a clock ran out first (unless
        ``clocks`` is false: then the caller bounds the wait)."""
        assert proc.stdout is not None
        deadline = watch.started + spec.max_time_sec
        pending = watch.pending
        while True:
            now = time.monotonic()
            idle_left = watch.last_output + spec.idle_timeout_sec - now
            hard_left = deadline - now
            if clocks and hard_left <= 0:
                return "timeout"
            if clocks and idle_left <= 0:
                return "idle"
            try:
                chunk = await asyncio.wait_for(
                    proc.stdout.read(READ_CHUNK),
                    timeout=min(idle_left, hard_left) if clocks else None,
                )
            except TimeoutError:
                continue  # the loop decides which clock ran out
            if not chunk:
                watch.eof.set()
                break
            watch.last_output = time.monotonic()
            written = watch.written
            if spec.redact is None:
                transcript.write(chunk)  # the bytes as read
                watch.written += len(chunk)
            end = chunk.rfind(b"\n")
            if end < 0:
                pending += chunk
                continue  # a long line still arriving; avoid rescanning the buffer
            # The read's whole lines as one bytes object, split once (no copy per line).
            span = (written - len(pending), written + end + 1)
            if pending:
                pending += chunk[:end]
                block = bytes(pending)
                pending.clear()
            else:
                block = chunk[:end]
            pending += chunk[end + 1 :]
            if spec.redact is not None:
                # Whole lines only, so that a secret split across reads is still found.
                clean = spec.redact(block + b"\n")
                transcript.write(clean)
                watch.written += len(clean)
                span = (written, watch.written)
            # Whole lines reach the file now: the dashboard reads a live run's usage there.
            transcript.flush()
            batch = ProcessRunner._parse(block.split(b"\n"), builder, watch, span)
            if batch:
                await _call(on_lines, batch)
        span = (watch.written - len(pending), watch.written)
        if pending and spec.redact is not None:
            clean = spec.redact(bytes(pending))
            transcript.write(clean)
            span = (watch.written, watch.written + len(clean))
            watch.written += len(clean)
        transcript.flush()  # before the batch that names these bytes is published
        if pending and not pending.isspace():
            batch = ProcessRunner._parse([bytes(pending)], builder, watch, span)
            if batch:
                await _call(on_lines, batch)
        return None

    @staticmethod
    def _parse(
        raw_lines: list[bytes], builder: LineBuilder, watch: _Watch, span: tuple[int, int]
    ) -> LineBatch:
        feed = builder.feed
        batch = LineBatch((), *span)
        for raw in raw_lines:
            line = raw.rstrip(b"\r")  # the same object when there is nothing to strip
            if not line or line.isspace():
                continue
            feed(line)
            batch.append(line)
        watch.lines += len(batch)
        return batch

    @staticmethod
    async def _kill_orphans(
        proc: asyncio.subprocess.Process,
        pgid: int,
        watch: _Watch,
        spec: RunSpec,
        leftovers: Leftovers,
    ) -> None:
        """A child the agent left behind can hold stdout open after the agent exited: kill it,
        in the agent's group or out of it."""
        await _exited(proc.pid)
        try:
            await asyncio.wait_for(watch.eof.wait(), spec.kill_grace_sec)
        except TimeoutError:
            signal_group(pgid, signal.SIGKILL)
            await leftovers.reap()

    @staticmethod
    async def _interrupt(
        proc: asyncio.subprocess.Process,
        pgid: int,
        spec: RunSpec,
        watch: _Watch,
        builder: LineBuilder,
        transcript: BinaryIO,
        on_lines: LineSink | None,
        leftovers: Leftovers,
    ) -> None:
        """Interrupt the run as Ctrl-C would, and read what it prints for up to the grace
        period: the CLI answers SIGINT with a last result line that says what the run cost.
        Under bwrap the agent has a session of its own and bwrap dies of SIGINT: the agent
        is signalled where it is instead."""
        if watch.eof.is_set():
            return
        if spec.argv and Path(spec.argv[0]).name == "bwrap":
            await asyncio.to_thread(leftovers.interrupt_inside, "bwrap")
        else:
            signal_group(pgid, signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                ProcessRunner._pump_stdout(
                    proc, spec, watch, builder, transcript, on_lines, clocks=False
                ),
                spec.kill_grace_sec,
            )

    @staticmethod
    async def _stop(proc: asyncio.subprocess.Process, pgid: int, grace: float) -> None:
        """SIGTERM the whole group, then SIGKILL it if it has not exited within ``grace``."""
        if proc.returncode is None:
            signal_group(pgid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                signal_group(pgid, signal.SIGKILL)
                await proc.wait()
        signal_group(pgid, signal.SIGKILL)

    @staticmethod
    async def _reap_group(proc: asyncio.subprocess.Process, pgid: int, grace: float) -> None:
        """Wait for the main process, then make sure nothing of its group is left."""
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            signal_group(pgid, signal.SIGKILL)
            await proc.wait()
        if group_alive(pgid):
            signal_group(pgid, signal.SIGTERM)
            signal_group(pgid, signal.SIGKILL)


def _explain(
    summary: TranscriptSummary, exit_code: int | None, killed: str | None, spec: RunSpec
) -> str:
    if killed == "timeout":
        return (
            f"timeout: killed after the hard limit of {spec.max_time_sec:g}s (agent.max_time_sec)"
        )
    if killed == "idle":
        return f"idle: no output for {spec.idle_timeout_sec:g}s, killed (agent.idle_timeout_sec)"
    if killed == "cancelled":
        return CANCELLED
    if summary.ok:
        return ""
    if exit_code is not None and exit_code < 0:
        return f"killed by signal {signal.Signals(-exit_code).name}" + (
            "" if summary.ended == "result" else " (no result line)"
        )
    text = summary.error_text
    if isinstance(summary, AgentSummary) and summary.exit_meaning:
        return summary.exit_meaning  # the CLI's own code, mapped by its adapter
    if exit_code not in (0, None) and summary.ended != "result":
        return f"exit code {exit_code}, no result line (crashed or killed)"
    if exit_code not in (0, None) and not text:
        return f"exit code {exit_code}"
    return text or f"exit code {exit_code}"
