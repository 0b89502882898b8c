"""One agent invocation, end to end: record it, run it, publish its lines, store its outcome.

measure and stitch both go through :func:`call_agent`, so every run has the same evidence: the
prompt, argv, environment *names*, the raw transcript (compressed) and the summary of its last
result line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shoemaker.agents.adapters import adapter_for, condenser_for
from shoemaker.agents.done_signal import (
    FILE_NAME,
    SIGNAL_ENV,
    BadSignal,
    DoneSignal,
    read_signal,
    signal_command,
    signal_environment,
)
from shoemaker.agents.leftovers import RUN_MARKER as RUN_MARKER
from shoemaker.agents.protocol import LineBuilder
from shoemaker.agents.ratelimit import RateLimit, claude_rate_limit, rate_limit_of
from shoemaker.agents.run_dirs import scratch_dir
from shoemaker.agents.runner import (
    CANCELLED,
    AgentCancelled,
    AgentRunner,
    LineBatch,
    RunResult,
    RunSpec,
    agent_environment,
)
from shoemaker.agents.sandbox import SandboxPaths, podman_args, wrap
from shoemaker.agents.streamjson import ReadLines, TranscriptSummary, parse_line
from shoemaker.clock import utc
from shoemaker.config import AgentConfig
from shoemaker.engine.project import Project
from shoemaker.events import AgentFinished, AgentOutput, AgentStarted
from shoemaker.model import Phase
from shoemaker.secrets import is_secret_name, token_file
from shoemaker.store import RunRecord


@dataclass(frozen=True, slots=True)
class AgentCall:
    """What to run: the phase, for which task, where, and with which prompt."""

    phase: Phase
    generation: str
    task_id: int | None
    attempt: int
    prompt: str
    cwd: Path
    agent: AgentConfig | None = None
    """How to launch the agent (a task that names its kind); None: ``agent`` of the config."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The worktree's own variables (``SHOEMAKER_PORT_BASE``), passed into any sandbox."""
    on_rate_limit: Callable[[RateLimit, int], object] | None = None
    """Told, with the run's id, each rate-limit warning or rejection the stream states while
    the agent runs (claude's ``rate_limit_event`` lines)."""


@dataclass(slots=True)
class DoneChannel:
    """A stitch run's completion signal (``agents/done_signal.py``): what its agent said, or
    why what it wrote is not a signal. Neither set: it said nothing."""

    task_id: int
    signal: DoneSignal | None = None
    error: str = ""

    def take(self, path: Path) -> None:
        """Read the file the agent may have left at ``path``."""
        try:
            self.signal = read_signal(path, self.task_id)
        except BadSignal as exc:
            self.error = str(exc)


def run_marker(project: Project, run_id: int) -> str:
    """The value of ``SHOEMAKER_RUN`` in run ``run_id``'s processes: project and run."""
    return f"{project.state_dir}#{run_id}"


def _run_home() -> Path:
    """A fresh HOME (with a TMPDIR inside) for one sandboxed run; removed when it ends."""
    home = Path(tempfile.mkdtemp(prefix="shoemaker-home-"))
    (home / "tmp").mkdir()
    return home


def _sandboxed(
    project: Project,
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    home: Path | None,
    read_only: tuple[Path, ...] = (),
    passed: tuple[str, ...] = (),
    agent: AgentConfig | None = None,
) -> list[str]:
    """The agent's argv in the configured sandbox; ``home`` is the run's fresh HOME; ``agent``
    the run's agent settings (default: ``agent`` of the config)."""
    config = project.config
    agent = agent or config.agent
    if home is None:
        return argv
    if config.sandbox in ("podman", "docker"):
        argv = [agent.command, *argv[1:]]  # the image's CLI, not this host's path
        env["HOME"] = str(home)
        env.update(podman_args(config)[1])  # `-e NAME=VALUE` there: the value travels here
    token = token_file(project.root, config)
    names = [
        n
        for n in env
        if n in agent.env
        or is_secret_name(n)
        or n in (RUN_MARKER, "IS_SANDBOX", *SIGNAL_ENV, *passed)
    ]
    credentials = token if token.is_file() else None
    paths = SandboxPaths(cwd, home, credentials, project.git.common_dir, read_only)
    return wrap(config, argv, names, paths)


async def call_agent(
    project: Project,
    call: AgentCall,
    done: DoneChannel | None = None,
    runner: AgentRunner | None = None,
) -> tuple[RunRecord, RunResult]:
    """Run the configured agent once; returns the run as stored and how it ended. With
    ``done``, the agent may signal how its task ended, and ``done`` holds what it said.
    ``runner``: where the process runs (default: this machine's ``project.runner``; a
    cluster's, ``engine/remote.py``, names its worker as ``where``)."""
    runner = runner or project.runner
    cfg = call.agent or project.config.agent
    # A runner that sandboxes where it runs (a cluster's worker) gets the bare command line.
    sandbox = "none" if getattr(runner, "sandboxes_there", False) else project.config.sandbox
    env = agent_environment(os.environ, cfg.env)
    env[RUN_MARKER] = ""
    env.update(call.env)
    home = _run_home() if sandbox != "none" else None
    # The signal goes in a directory of the run's own that every sandbox leaves writable:
    # its HOME, or (no sandbox) a fresh temporary directory; removed when the run ends.
    signal_dir = None
    read_only: tuple[Path, ...] = ()
    if done is not None:
        signal_dir = home or Path(tempfile.mkdtemp(prefix="shoemaker-signal-"))
        command = signal_command(sandbox, signal_dir)
        read_only = (command,) if command.is_relative_to(signal_dir) else ()
        env.update(signal_environment(done.task_id, signal_dir, command))
    adapter = adapter_for(cfg.kind)
    # A runner that launches where it runs makes the run's config home there, not here.
    scratch = None if getattr(runner, "launches_there", False) else scratch_dir(project.state_dir)
    launch = adapter.launch(cfg, env, home, call.prompt, scratch)
    env.update(launch.env)
    passed = (*launch.env, *call.env)
    argv = _sandboxed(project, launch.argv, env, call.cwd, home, read_only, passed, cfg)
    run_id = await asyncio.to_thread(
        project.store.start_run,
        generation=call.generation,
        task_id=call.task_id,
        phase=call.phase,
        attempt=call.attempt,
        prompt=call.prompt,
        argv=argv,
        env_names=env.keys(),
        cwd=str(call.cwd),
        agent_kind=cfg.kind,
        model=cfg.model,
    )
    # Every process of the run inherits the marker, so recovery can find them all even when
    # shoemaker died before it stored the pid, or a child left the agent's process group.
    env[RUN_MARKER] = run_marker(project, run_id)
    transcript = project.runs_dir / f"{run_id}.jsonl"
    # The parser this process's runner feeds (none when a cluster's worker runs the agent):
    # what the agent spent so far is read from it as each batch is published.
    parsers: list[LineBuilder] = []

    def new_parser() -> LineBuilder:
        parsers.append(adapter.builder(cfg))
        return parsers[-1]

    spec = RunSpec(
        argv=argv,
        cwd=call.cwd,
        env=env,
        prompt=launch.stdin,
        transcript_path=transcript,
        max_time_sec=cfg.max_time_sec,
        idle_timeout_sec=cfg.idle_timeout_sec,
        kill_grace_sec=cfg.kill_grace_sec,
        redact=project.redactor.data if project.redactor.active else None,
        builder=new_parser,
    )
    bus = project.bus
    so_far = project.spent_so_far

    # Paths in tool uses are shown relative to the agent's working directory.
    cwd = str(call.cwd)

    clean = project.redactor.text if project.redactor.active else None
    condense = condenser_for(cfg.kind)
    # A read that ends inside a reply printed in chunks (gemini's deltas) waits for the next,
    # so that the reply is condensed whole, into one line, where it is shown.
    held: list[LineBatch] = []

    def emit(batch: LineBatch) -> None:
        # One event per read, and nothing condensed here: the event names the batch's bytes
        # in the transcript and keeps the lines for this process's listeners, which condense
        # what they show when they show it (secrets out: the lines in memory are the agent's
        # own, before the redactor).
        shown = ReadLines(batch, cwd, clean, condense)
        span = (batch.start, batch.end)
        if parsers:
            summary = parsers[-1].summary()
            so_far[run_id] = (summary.model, summary.message_usage)
        bus.emit(AgentOutput.of(call.generation, run_id, call.task_id, span, len(batch), shown))

    watch = call.on_rate_limit if cfg.kind == "claude" else None

    def on_lines(batch: LineBatch) -> None:
        if watch is not None:
            for line in batch:
                # Live, only a rate_limit_event says more than the run's end will (a warning,
                # a rejection while the CLI still retries). A byte search per line; only the
                # rare line that names it is parsed again.
                if b"rate_limit_event" in line and (event := parse_line(line)) is not None:
                    fact = claude_rate_limit(event)
                    if fact is not None and fact.status != "allowed":
                        watch(fact, run_id)
        if held:
            first = held.pop()
            batch = LineBatch([*first, *batch], first.start, batch.end)
        if batch and b'"delta":true' in batch[-1]:
            held.append(batch)
            return
        emit(batch)

    def flush_held() -> None:
        if held:
            emit(held.pop())

    def on_pid(pid: int) -> None:
        project.store.set_run_pid(
            run_id,
            pid,
            AgentStarted(
                generation=call.generation,
                run_id=run_id,
                task_id=call.task_id,
                phase=call.phase,
                attempt=call.attempt,
                argv=argv,
                cwd=str(call.cwd),
                pid=pid,
                worker=getattr(runner, "where", ""),
                sandbox=getattr(runner, "ran_in", ""),
            ),
        )

    try:
        result = await runner.run(spec, on_lines=on_lines, on_pid=on_pid)
        flush_held()
        adapter.settle(launch, result.summary)
        if done is not None and signal_dir is not None:
            await asyncio.to_thread(done.take, signal_dir / FILE_NAME)
    except AgentCancelled as cancelled:
        flush_held()
        adapter.settle(launch, cancelled.result.summary)
        await asyncio.shield(_conclude(project, call, run_id, cancelled.result, transcript))
        raise
    except asyncio.CancelledError:
        # Cancelled before the process ran: nothing printed, nothing spent.
        nothing = RunResult(None, TranscriptSummary(), False, CANCELLED, killed="cancelled")
        await asyncio.shield(_conclude(project, call, run_id, nothing, transcript))
        raise
    finally:
        for directory in {d for d in (home, signal_dir, *launch.cleanup) if d is not None}:
            shutil.rmtree(directory, ignore_errors=True)
    return await _conclude(project, call, run_id, result, transcript), result


async def _conclude(
    project: Project, call: AgentCall, run_id: int, result: RunResult, transcript: Path
) -> RunRecord:
    """Store how the run ended, announced in the same transaction; the run as stored."""
    try:
        return await _store_end(project, call, run_id, result, transcript)
    finally:
        # Only now: until its end is stored the run is live, and its spend is read here.
        project.spent_so_far.pop(run_id, None)


async def _store_end(
    project: Project, call: AgentCall, run_id: int, result: RunResult, transcript: Path
) -> RunRecord:
    limit = rate_limit_of(result.summary)
    if limit is not None and limit.status == "rejected" and not result.ok:
        # The run's record says why its attempt does not count: the provider refused it.
        wait = project.config.rate_limits.wait_sec
        until = limit.reset_time(project.clock.now(), wait)
        result.reason = f"rate limited until {utc(until)}: {result.reason}"
    cost, estimated = spent(project, result.summary)
    finished = _finished(call, run_id, result, cost, estimated)
    return await asyncio.to_thread(
        _store_result, project, run_id, result, transcript, (cost, estimated), finished
    )


def spent(project: Project, summary: TranscriptSummary) -> tuple[float, bool]:
    """A run's cost in dollars, and whether it is an estimate: what its result line says, or
    for a run that printed none (killed, crashed) or one that reports nothing although its
    messages reported usage (interrupted), its messages' tokens at the configured price of
    the model it used."""
    if summary.message_usage is None or (
        summary.cost_usd is not None and not summary.result_undercounts
    ):
        return summary.cost_usd or 0.0, False
    _, price = project.config.price(summary.model)
    return price.cost(summary.accounted_usage()), True


def _store_result(
    project: Project,
    run_id: int,
    result: RunResult,
    transcript: Path,
    spent: tuple[float, bool],
    finished: AgentFinished,
) -> RunRecord:
    s, (cost, estimated) = result.summary, spent
    record = project.store.finish_run(
        run_id,
        transcript=transcript,
        exit_code=result.exit_code,
        ended=s.ended,
        subtype=s.subtype,
        is_error=s.is_error,
        ok=result.ok,
        reason=result.reason,
        usage=s.accounted_usage(),
        cost_usd=cost,
        cost_estimated=estimated,
        num_turns=s.num_turns,
        session_id=s.session_id,
        duration_ms=s.duration_ms,
        duration_api_ms=s.duration_api_ms,
        wall_s=result.wall_s,
        model_usage=s.model_usage,
        result_text=s.result_text,
        stderr_tail=result.stderr_tail,
        transcript_lines=result.lines,
        **({"model": s.model} if s.model else {}),
        announce=finished,
    )
    # The compressed copy in the store is now the evidence; the plain file was only a buffer.
    with contextlib.suppress(FileNotFoundError):
        transcript.unlink()
    return record


def _finished(
    call: AgentCall, run_id: int, result: RunResult, cost: float, estimated: bool
) -> AgentFinished:
    s = result.summary
    return AgentFinished(
        generation=call.generation,
        run_id=run_id,
        task_id=call.task_id,
        phase=call.phase,
        ok=result.ok,
        exit_code=result.exit_code,
        ended=s.ended,
        subtype=s.subtype,
        is_error=s.is_error,
        reason=result.reason,
        **asdict(s.accounted_usage()),
        cost_usd=cost,
        cost_estimated=estimated,
        wall_s=result.wall_s,
    )
