"""Gates: the checks shoemaker runs itself, because an agent's word that "tests pass" is not proof.

A gate is an argv list, or a shell line that a person wrote in ``configuration.yaml`` (never text
from an agent). It runs in its own process group with a timeout; its output tail is kept so that
a retry can show the agent what failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import os
import re
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shoemaker.agents.runner import DROPPED_ENV
from shoemaker.config import GateConfig
from shoemaker.git import matches_any

OUTPUT_TAIL = 8_000


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


def gates_for_title(gates: Sequence[GateConfig], title: str) -> list[GateConfig]:
    """Global gates and those whose ``tasks`` globs match the task's title."""
    return [
        g
        for g in gates
        if not g.tasks or any(fnmatch.fnmatchcase(title, pattern) for pattern in g.tasks)
    ]


def gates_for(gates: Sequence[GateConfig], title: str, changed: Sequence[str]) -> list[GateConfig]:
    """The gates that apply to a task's change: :func:`gates_for_title`, and of those with
    ``paths``, only the ones whose paths the change touches."""
    return [
        g
        for g in gates_for_title(gates, title)
        if not g.paths or any(matches_any(path, g.paths) for path in changed)
    ]


def gate_problems(gates: Sequence[GateConfig], root: Path) -> list[str]:
    """Why a configured gate cannot run here (empty: all can). A gate that names nothing
    runnable is a configuration error, never a silent pass."""
    problems = []
    for index, gate in enumerate(gates):
        program = gate_argv(gate)[0]
        where = f"configuration.yaml: gates[{index}] ({gate.name})"
        if "/" in program:
            path = Path(program) if Path(program).is_absolute() else root / gate.cwd / program
            if not (path.is_file() and os.access(path, os.X_OK)):
                problems.append(f"{where}: {program} is not an executable file")
        elif shutil.which(program) is None:
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


async def run_gate(gate: GateConfig, worktree: Path) -> GateOutcome:
    """Run one gate in ``worktree`` and judge it by its exit code."""
    started = time.monotonic()
    cwd = worktree / gate.cwd
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    # Bytecode caches would otherwise appear as untracked files in the worktree.
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    try:
        proc = await asyncio.create_subprocess_exec(
            *gate_argv(gate),
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return GateOutcome(
            gate.name,
            False,
            None,
            time.monotonic() - started,
            "",
            f"gate {gate.name!r} cannot run {gate_argv(gate)[0]!r}: {exc.strerror or exc}; "
            "fix its command in configuration.yaml",
        )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), gate.timeout_sec)
        timed_out = False
    except TimeoutError:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.shield(proc.wait())
        raise
    finally:
        # Whatever the gate started in the background goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    duration = time.monotonic() - started
    tail = out.decode("utf-8", "replace")[-OUTPUT_TAIL:]
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
