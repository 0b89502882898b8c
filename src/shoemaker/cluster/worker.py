"""The worker function: one attempt, from a git bundle to a git bundle, wherever it runs.

In a temporary directory: a clone from the bundle, on the task branch at the base (or at the
earlier work it continues, carried over onto the base at home); the agent's config home, when
its kind keeps one (codex, gemini), with the login that travelled sealed; the agent (its own
process group, dying with this process when the spec asks), and what it left in that home read
back into its summary; what it left committed; the task's gates run there; a bundle of the task
branch relative to the base. The temporary directory is removed whatever happens. Output
lines travel in batches, every ``batch_sec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shoemaker.agents.adapters import adapter_for
from shoemaker.agents.done_signal import FILE_NAME, signal_command, signal_environment
from shoemaker.agents.runner import DROPPED_ENV, LineBatch, ProcessRunner, RunSpec
from shoemaker.agents.sandbox import CREDENTIALS_IN_HOME, SandboxPaths, wrap
from shoemaker.cluster.attempt import (
    AttemptResult,
    AttemptSpec,
    EventSink,
    GateRun,
    Lines,
    RunnerFailure,
    Started,
)
from shoemaker.config import Config
from shoemaker.engine.gates import GateBox, run_gate
from shoemaker.git import Git
from shoemaker.globs import matches_any

#: The worker's commit of what the agent left; the orchestrator recommits it with trailers.
WORKER_SUBJECT = "Work of attempt {attempt} of task #{task}"


class _Batcher:
    """Lines read from the agent, sent on every ``period`` seconds (and at the end)."""

    def __init__(self, send: EventSink, period: float) -> None:
        self.send, self.period = send, period
        self.pending: list[tuple[float, tuple[bytes, ...]]] = []

    def add(self, batch: LineBatch) -> None:
        self.pending.append((time.time(), tuple(batch)))

    def flush(self) -> None:
        if self.pending:
            reads, self.pending = tuple(self.pending), []
            self.send(Lines(reads))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.flush()


T = TypeVar("T")


class _Steps:
    """An attempt's blocking steps (git, the adapter's settling), each in a thread.

    A cancelled attempt stops awaiting a step but cannot stop its thread: the clean-up waits
    for every step still running, or it would remove the directory while git still writes in
    it, and what git wrote after would be left behind."""

    def __init__(self) -> None:
        self.running: set[asyncio.Future[Any]] = set()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        step = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self.running.add(step)
        step.add_done_callback(self.running.discard)
        return await asyncio.shield(step)

    async def settle(self) -> None:
        """Wait for the steps still running; what they raised is moot: the attempt ended."""
        if self.running:
            ended, _ = await asyncio.wait(self.running)
            for step in ended:
                if not step.cancelled():
                    step.exception()


def _git(cwd: Path, *args: str) -> str:
    return Git._run_in(cwd, list(args)).stdout


def _clone(spec: AttemptSpec, where: Path) -> tuple[Git, Path]:
    """A checkout of ``spec.base`` on the task branch, from the bundle. Its repository is
    ``where/git``, outside the tree: in a sandbox the agent cannot write it (hooks, an
    fsmonitor) for the git commands this worker runs after it."""
    bundle = where / "base.bundle"
    bundle.write_bytes(spec.bundle)
    clone = where / "clone"
    clone.mkdir()
    _git(where, "init", "-q", "-b", "shoemaker-base", f"--separate-git-dir={where}/git", "clone")
    git = Git(clone)
    _git(clone, "fetch", "-q", str(bundle), "+refs/*:refs/base/*")
    _git(clone, "checkout", "-q", "-b", spec.branch, spec.start or spec.base)
    bundle.unlink()
    return git, clone


def _box(spec: AttemptSpec) -> Config | None:
    """The sandbox's settings for :func:`wrap` (None: no sandbox)."""
    if spec.sandbox.kind == "none":
        return None
    return Config(sandbox=spec.sandbox.kind, sandbox_network=spec.sandbox.network)


def _environment(spec: AttemptSpec, signal_dir: Path, command: Path) -> dict[str, str]:
    """This machine's environment, then what the run brings (agent env, secrets, marker)."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(spec.env)
    if spec.signal:
        env.update(signal_environment(spec.task_id, signal_dir, command))
    return env


def _sandboxed(
    spec: AttemptSpec, box: Config | None, where: Path, clone: Path, read_only: tuple[Path, ...]
) -> list[str]:
    """The agent's argv in the sandbox, as on the orchestrator's machine: the clone writable,
    ``where/home`` its HOME, this worker's own claude login mounted read-only if it has one."""
    if box is None:
        return list(spec.argv)
    token = Path.home() / CREDENTIALS_IN_HOME
    credentials = token if token.is_file() else None
    paths = SandboxPaths(clone, where / "home", credentials, where / "git", read_only)
    return wrap(box, list(spec.argv), [], paths)


async def _gates(
    spec: AttemptSpec, clone: Path, changed: list[str], box: GateBox | None, janitor: _Janitor
) -> list[GateRun]:
    ran: list[GateRun] = []
    for gate in spec.gates:
        if gate.paths and not any(matches_any(path, gate.paths) for path in changed):
            continue
        try:
            outcome = await run_gate(gate, clone, box, None, spec.die_with_worker, janitor.watch)
        finally:
            janitor.watch(None)
        ran.append(GateRun(gate, outcome))
        if not outcome.passed and gate.severity != "warn":
            break
    return ran


#: The start of a temporary clone's name.
CLONE_PREFIX = "shoemaker-attempt-"


#: The janitor: reads its stdin, a pipe whose only writer is this process. A line on it means
#: stand down (the attempt ended here and cleaned up after itself); its end without one means
#: this process died, even by SIGKILL: then it kills the process group it watches (the agent's
#: or a gate's, whose children ``PR_SET_PDEATHSIG`` does not reach), and removes the clone. A
#: shell starts in a few milliseconds where an interpreter takes a hundred; the directory
#: (``$1``) and the group (``$2``, empty for none) are arguments of shoemaker's own making,
#: never text in the script.
_JANITOR = 'read -r _ && exit 0; [ -z "$2" ] || kill -s KILL -- "-$2"; exec rm -rf -- "$1"'


class _Janitor:
    """The process that cleans up after this one if it dies mid-attempt: it removes ``where``
    and kills the process group it is told of (one at a time: the agent's, then each gate's)."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.proc = self._start(None)

    def _start(self, pgid: int | None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["/bin/sh", "-c", _JANITOR, "shoemaker-janitor", str(self.where), str(pgid or "")],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a signal to this process's group leaves it be
        )

    def watch(self, pgid: int | None) -> None:
        """From now on, kill ``pgid`` (a group leader's pid; None: no group) if this process
        dies: a janitor for it starts before the one before stands down."""
        old, self.proc = self.proc, self._start(pgid)
        _stand_down(old)

    def dismiss(self) -> None:
        _stand_down(self.proc)


def _stand_down(janitor: subprocess.Popen[bytes]) -> None:
    assert janitor.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        janitor.stdin.write(b"\n")
    with contextlib.suppress(BrokenPipeError):
        janitor.stdin.close()
    janitor.wait()


async def execute(spec: AttemptSpec, send: EventSink, worker: str) -> AttemptResult:
    """Run one attempt here; events go to ``send`` as they happen."""
    where = Path(tempfile.mkdtemp(prefix=CLONE_PREFIX))
    janitor = _Janitor(where)
    steps = _Steps()
    try:
        git, clone = await steps.run(_clone, spec, where)
        box = _box(spec)
        # The signal goes where the sandbox lets the agent write: its HOME (with a TMPDIR).
        signal_dir = where / ("signal" if box is None else "home")
        (signal_dir / "tmp").mkdir(parents=True)
        command = signal_command(spec.sandbox.kind, signal_dir)
        read_only = (command,) if command.is_relative_to(signal_dir) else ()
        adapter = adapter_for(spec.agent.kind)
        agent = spec.agent
        env = _environment(spec, signal_dir, command)
        # The agent's config home (codex's, gemini's) is made here, in this attempt's
        # directory: the sandbox's HOME, or beside the clone (home made none).
        home = where / "home" if box is not None else None
        login = dict(spec.login) if spec.login else None
        launch = adapter.launch(agent, env, home, spec.prompt, where, login)
        env.update(launch.env)
        run_spec = RunSpec(
            argv=_sandboxed(spec, box, where, clone, read_only),
            cwd=clone,
            env=env,
            prompt=spec.prompt,
            transcript_path=where / "transcript.jsonl",
            max_time_sec=spec.max_time_sec,
            idle_timeout_sec=spec.idle_timeout_sec,
            kill_grace_sec=spec.kill_grace_sec,
            builder=lambda: adapter.builder(agent),
            die_with_parent=spec.die_with_worker,
        )
        batcher = _Batcher(send, spec.batch_sec)
        pump = asyncio.create_task(batcher.run())

        def on_pid(pid: int) -> None:
            janitor.watch(pid)  # its own session: the pid is its group's
            send(Started(worker, pid, os.getpid(), "none" if box is None else box.sandbox))

        try:
            run = await ProcessRunner().run(run_spec, on_lines=batcher.add, on_pid=on_pid)
        finally:
            janitor.watch(None)  # the group is gone: its pid may be another's soon
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            batcher.flush()
        # What the agent left in its config home (codex's session file: the tokens of a run
        # stopped mid-turn) is read here, before the directory goes.
        await steps.run(adapter.settle, launch, run.summary)
        result = AttemptResult(run, worker=worker)
        signal_file = signal_dir / FILE_NAME
        if signal_file.is_file():
            result.signal = signal_file.read_bytes()[: 64 * 1024]
        subject = WORKER_SUBJECT.format(attempt=spec.attempt, task=spec.task_id)
        committed = await steps.run(git.commit_all, clone, subject)
        # Work carried over goes home even when the agent added nothing to it.
        carried = spec.start if spec.start not in ("", spec.base) else None
        result.commit = committed or carried
        if result.commit is None:
            return result
        if run.ok:
            names = await steps.run(
                _git, clone, "diff", "--name-only", "--no-renames", "-z", spec.base, result.commit
            )
            changed = [n for n in names.split("\0") if n]
            gate_box = None if box is None else GateBox(box, where / "git")
            result.gates = await _gates(spec, clone, changed, gate_box, janitor)
        out = where / "task.bundle"
        await steps.run(
            _git, clone, "bundle", "create", "-q", str(out), spec.branch, f"^{spec.base}"
        )
        result.bundle = out.read_bytes()
        return result
    finally:
        await steps.settle()
        await asyncio.to_thread(shutil.rmtree, where, True)
        await asyncio.to_thread(janitor.dismiss)


class LocalRunner:
    """The worker function itself, in this process: the same steps a cluster's worker takes."""

    name = "local"

    async def run(self, spec: AttemptSpec, on_event: EventSink) -> AttemptResult:
        try:
            return await execute(spec, on_event, self.name)
        except Exception as exc:  # as a cluster would report it: the attempt never finished
            raise RunnerFailure("error", f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        return None


__all__ = [
    "CLONE_PREFIX",
    "WORKER_SUBJECT",
    "LocalRunner",
    "execute",
]
