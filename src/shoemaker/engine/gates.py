"""Gates: the checks shoemaker runs itself, because an agent's word that "tests pass" is not proof.

A gate is an argv list, or a shell line that a person wrote in ``configuration.yaml`` (never text
from an agent). It runs in its own process group with a timeout, in the agent's sandbox when
one is configured (a gate executes the agent's work: its tests, a conftest.py); its output tail
is kept so that a retry can show the agent what failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import shlex
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shoemaker.agents.leftovers import RUN_MARKER, Leftovers, exited
from shoemaker.agents.process_group import chain, die_with_parent
from shoemaker.agents.runner import DROPPED_ENV
from shoemaker.agents.sandbox import SandboxPaths, podman_args, wrap
from shoemaker.config import Config, GateConfig
from shoemaker.events import GateResult, Notice
from shoemaker.globs import matches_any

if TYPE_CHECKING:
    from shoemaker.engine.project import Project
    from shoemaker.model import Task

OUTPUT_TAIL = 8_000
_DRAIN_SEC = 5.0


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """What one gate run showed."""

    name: str
    passed: bool
    exit_code: int | None
    duration_s: float
    output_tail: str
    reason: str
    """Empty when passed; else why not (exit code, timeout, nothing runnable)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt was not merged, how alike failures are recognised, and what comes next:
    ``retry`` (a fresh attempt) or ``fix`` (the next attempt keeps this work)."""

    reason: str
    fingerprint: str
    remediation: str = "retry"


def gates_for_title(gates: Sequence[GateConfig], title: str) -> list[GateConfig]:
    """Global gates and those whose ``tasks`` globs match the task's title."""
    return [g for g in gates if g.is_for_title(title)]


def gates_for(gates: Sequence[GateConfig], title: str, changed: Sequence[str]) -> list[GateConfig]:
    """The gates that apply to a task's change: :func:`gates_for_title`, and of those with
    ``paths``, only the ones whose paths the change touches."""
    return [
        g
        for g in gates_for_title(gates, title)
        if not g.paths or any(matches_any(path, g.paths) for path in changed)
    ]


def gates_at(
    config: Config, title: str, changed: Sequence[str], where: Literal["worktree", "merged"]
) -> list[GateConfig]:
    """The gates of a task's change that run ``where``: all of them in its worktree, those
    marked ``after_merge`` on the merge commit."""
    gates = gates_for(config.gates, title, changed)
    return [g for g in gates if g.after_merge] if where == "merged" else gates


def plan_gates(task: Task) -> list[GateConfig]:
    """The gates a task's plan file names, as gates shoemaker runs: each command split like a
    shell would split it and run without one (the plan is a file in the repository)."""
    return [
        GateConfig(name=g.name, command=shlex.split(g.command))
        for g in task.plan_gates
        if g.command.strip()
    ]


def task_gates(
    config: Config, task: Task, changed: Sequence[str], where: Literal["worktree", "merged"]
) -> list[GateConfig]:
    """:func:`gates_at` for the task, then the gates of its plan file."""
    return [*gates_at(config, task.title, changed, where), *plan_gates(task)]


def gate_problems(gates: Sequence[GateConfig], root: Path) -> list[str]:
    """Why a configured gate cannot run here (empty: all can). A gate that names nothing
    runnable is a configuration error, never a silent pass."""
    problems = []
    for index, gate in enumerate(gates):
        program = gate_argv(gate)[0]
        where = f"configuration.yaml: gates[{index}] ({gate.name})"
        if _not_found(program, root / gate.cwd, os.environ) is None:
            continue
        if "/" in program:
            problems.append(f"{where}: {program} is not an executable file")
        else:
            problems.append(f"{where}: {program!r} is not on PATH; install it or fix the command")
    return problems


_NOISE = [
    (re.compile(r"\b\d+(\.\d+)?\s*(s|ms|sec|seconds)\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,40}\b"), "<hex>"),
    (re.compile(r"/[\w./-]*/(?:worktrees|shoemaker-[\w-]+)/[\w.-]+"), "<worktree>"),
    (re.compile(r"\s+"), " "),
]


def fingerprint(kind: str, text: str) -> str:
    """A short digest of a failure that ignores what changes between identical failures
    (timings, addresses, commit ids, worktree paths)."""
    for pattern, placeholder in _NOISE:
        text = pattern.sub(placeholder, text)
    return hashlib.sha256(f"{kind}\0{text.strip()}".encode()).hexdigest()[:16]


def gate_argv(gate: GateConfig) -> list[str]:
    if isinstance(gate.command, str):
        # A line the user wrote in the configuration file, so a shell is what they asked for.
        return ["/bin/sh", "-c", gate.command]
    return list(gate.command)


def describe_command(gate: GateConfig) -> str:
    return gate.command if isinstance(gate.command, str) else " ".join(gate.command)


@dataclass(frozen=True, slots=True)
class GateBox:
    """Where gates run: in the agent's sandbox when one is configured, since what they execute
    (tests, a conftest.py, build scripts) is the agent's work as much as its code is."""

    config: Config
    git_dir: Path | None = None
    """The repository's common git directory, readable inside (a worktree's .git points there)."""

    @property
    def sandboxed(self) -> bool:
        return self.config.sandbox != "none"


def _boxed(
    box: GateBox,
    argv: list[str],
    env: dict[str, str],
    worktree: Path,
    cwd: Path,
    home: Path,
    passed: Sequence[str] = (),
) -> list[str]:
    """``argv`` as it runs in the sandbox: the worktree writable, ``home`` its HOME."""
    config = box.config
    if cwd != worktree:
        argv = ["env", "-C", str(cwd), *argv]  # the sandbox starts in the worktree itself
    if config.sandbox in ("podman", "docker"):
        env["HOME"] = str(home)
        env.update(podman_args(config)[1])
    names = [RUN_MARKER, "PYTHONDONTWRITEBYTECODE", *passed]
    return wrap(config, argv, names, SandboxPaths(worktree, home, None, box.git_dir))


async def run_gate(
    gate: GateConfig,
    worktree: Path,
    box: GateBox | None = None,
    extra_env: Mapping[str, str] | None = None,
    die_with_parent: bool = False,
    on_pid: Callable[[int], None] | None = None,
) -> GateOutcome:
    """Run one gate in ``worktree`` (in the sandbox of ``box``, if any) and judge it by its
    exit code; ``extra_env``: the worktree's own variables (``SHOEMAKER_PORT_BASE``).
    Whatever it leaves running, in its process group or not, is killed when its main process
    ends (and with ``die_with_parent``, when this process dies). ``on_pid``: told the pid of
    its main process, the leader of its group, once it runs."""
    started = time.monotonic()
    cwd = worktree / gate.cwd
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(extra_env or {})
    # Bytecode caches would otherwise appear as untracked files in the worktree.
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    env[RUN_MARKER] = f"gate-{uuid.uuid4().hex}"
    if box is None or not box.sandboxed:
        return await _run(gate, gate_argv(gate), cwd, env, started, die_with_parent, on_pid)
    # A HOME of its own (with TMPDIR inside), like an agent's sandboxed run.
    home = Path(tempfile.mkdtemp(prefix="shoemaker-gate-home-"))
    (home / "tmp").mkdir()
    try:
        argv = _boxed(box, gate_argv(gate), env, worktree, cwd, home, tuple(extra_env or ()))
        return await _run(gate, argv, cwd, env, started, die_with_parent, on_pid)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _run(
    gate: GateConfig,
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    started: float,
    die: bool = False,
    on_pid: Callable[[int], None] | None = None,
) -> GateOutcome:
    if die:
        # The gate waits until ``on_pid`` is told (on a cluster's worker, the janitor that
        # kills its group if the worker dies is then in place): what it starts before that
        # could outlive the worker. A worker that dies first closes the pipe: nothing runs.
        # The shell's exec would say a missing program only as exit 127: it is looked for
        # here, as exec would, to say it as a gate started directly does.
        missing = _not_found(argv[0], cwd, env)
        if missing is not None:
            return _cannot_run(gate, os.strerror(missing), started)
        argv = ["/bin/sh", "-c", 'read -r _ && exec "$@"', "shoemaker-gate", *argv]
    leftovers = Leftovers(env[RUN_MARKER])
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if die else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=chain(leftovers.preexec, die_with_parent() if die else None),
        )
    except OSError as exc:
        leftovers.close()
        return _cannot_run(gate, exc.strerror or str(exc), started)
    if on_pid is not None:
        on_pid(proc.pid)
    if proc.stdin is not None:
        proc.stdin.write(b"go\n")  # whole in the pipe's buffer: no drain needed
        proc.stdin.close()
    output = bytearray()
    reader = asyncio.create_task(_read_all(proc, output))
    timed_out = False
    try:
        # The main process decides; what it left (in its group, detached, holding the
        # output pipe open) is killed as soon as it ends, so a gate never waits on it.
        await asyncio.wait_for(exited(proc.pid), gate.timeout_sec)
    except TimeoutError:
        timed_out = True
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.shield(leftovers.reap())
        # Every writer is dead, so the pipe ends at once; the bound is for a runtime whose
        # processes are beyond reach (a container's).
        with contextlib.suppress(TimeoutError):
            await asyncio.shield(asyncio.wait_for(reader, _DRAIN_SEC))
        reader.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.shield(asyncio.wait_for(proc.wait(), _DRAIN_SEC))
        leftovers.close()  # again: the main process is reaped now
    duration = time.monotonic() - started
    tail = output[-OUTPUT_TAIL * 4 :].decode("utf-8", "replace")[-OUTPUT_TAIL:]
    if timed_out:
        return GateOutcome(
            gate.name,
            False,
            None,
            duration,
            tail,
            f"gate {gate.name!r} timed out after {gate.timeout_sec:g}s",
        )
    passed = proc.returncode == gate.expected_exit
    reason = (
        ""
        if passed
        else (f"gate {gate.name!r} exited {proc.returncode} (expected {gate.expected_exit})")
    )
    return GateOutcome(gate.name, passed, proc.returncode, duration, tail, reason)


def _not_found(program: str, cwd: Path, env: Mapping[str, str]) -> int | None:
    """Why exec would not start ``program`` from ``cwd`` with ``env``'s PATH (an errno);
    None: it would."""
    if "/" in program:
        path = cwd / program  # an absolute program stays itself
        if not path.is_file():
            return errno.ENOENT
        return None if os.access(path, os.X_OK) else errno.EACCES
    # Relative entries of PATH (an empty one is the directory itself) are the gate's cwd's.
    dirs = [str(cwd / d) for d in env.get("PATH", os.defpath).split(os.pathsep)]
    found = shutil.which(program, path=os.pathsep.join(dirs))
    return None if found is not None else errno.ENOENT


def _cannot_run(gate: GateConfig, why: str, started: float) -> GateOutcome:
    return GateOutcome(
        gate.name,
        False,
        None,
        time.monotonic() - started,
        "",
        f"gate {gate.name!r} cannot run {gate_argv(gate)[0]!r}: {why}; "
        "fix its command in configuration.yaml",
    )


async def _read_all(proc: asyncio.subprocess.Process, into: bytearray) -> None:
    assert proc.stdout is not None
    while chunk := await proc.stdout.read(1 << 16):
        into += chunk


async def run_gates(
    project: Project,
    task: Task,
    cwd: Path,
    run_id: int | None,
    changed: Sequence[str],
    where: Literal["worktree", "merged"],
    env: Mapping[str, str] | None = None,
) -> Failure | None:
    """Run the task's gates in ``cwd`` (its worktree, or a detached worktree of the merge
    commit), in the agent's sandbox if one is configured, with the worktree's ``env``, each
    recorded and announced; the first failure that is not a warning, or None."""
    box = GateBox(project.config, project.git.common_dir)
    for gate in task_gates(project.config, task, changed, where):
        outcome = await run_gate(gate, cwd, box, env)
        failure = await judge_gate(project, task, run_id, where, gate, outcome)
        if failure is not None:
            return failure
    return None


async def judge_gate(
    project: Project,
    task: Task,
    run_id: int | None,
    where: Literal["worktree", "merged"],
    gate: GateConfig,
    outcome: GateOutcome,
) -> Failure | None:
    """Record and announce one gate's outcome (run here or on a cluster's worker); the
    failure it means, or None (passed, or a warning)."""
    await asyncio.to_thread(
        project.store.record_gate,
        task_id=task.id,
        run_id=run_id,
        name=gate.name,
        location=where,
        passed=outcome.passed,
        exit_code=outcome.exit_code,
        duration_s=outcome.duration_s,
        output_tail=outcome.output_tail,
    )
    project.bus.emit(
        GateResult(
            generation=task.generation,
            task_id=task.id,
            name=gate.name,
            where=where,
            passed=outcome.passed,
            exit_code=outcome.exit_code,
            expected_exit=gate.expected_exit,
            duration_s=outcome.duration_s,
            output_tail=outcome.output_tail[-2000:],
            reason=outcome.reason,
        )
    )
    if outcome.passed:
        return None
    if gate.severity == "warn":
        message = f"warning: {outcome.reason} (severity warn)"
        project.bus.emit(
            Notice(generation=task.generation, task_id=task.id, level="warning", message=message)
        )
        return None
    place = " after the merge" if where == "merged" else ""
    return Failure(
        f"{outcome.reason}{place}",
        fingerprint(f"gate:{gate.name}", outcome.output_tail or outcome.reason),
        gate.severity,
    )
