"""Furnishing a task worktree so that it behaves like the person's checkout: copies of their
untracked local files (``worktree_copy``), an exclude file of its own that keeps those (and
what setup installs) out of every commit, a block of ports (``SHOEMAKER_PORT_BASE``), and the
``worktree_setup`` commands, run once per worktree.

Everything shoemaker records about a worktree lives in the worktree's own git directory
(``.git/worktrees/NAME``), so it goes with the worktree: the exclude file, the port block, the
paths setup left (kept when a pooled worktree is cleaned for its next task) and the mark that
setup ran (with a digest of the commands: changing them runs them again).

The exclude file is made the worktree's ``core.excludesFile`` through per-worktree
configuration (``extensions.worktreeConfig``): ``info/exclude`` is shared by every worktree,
the person's checkout included, and stays as it is. The file starts with the lines of the
ignore file git would read otherwise (``core.excludesFile`` or ``~/.config/git/ignore``), so
the person's own global ignores still hold there.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shoemaker.config import GateConfig
from shoemaker.copied_files import copied_files, refuse_tracked
from shoemaker.engine.gates import Failure, GateBox, GateOutcome, fingerprint, run_gate
from shoemaker.engine.ports import port_base
from shoemaker.engine.worktrees import KEEP_FILE
from shoemaker.errors import Failed
from shoemaker.events import GateResult
from shoemaker.git import literal_pattern

if TYPE_CHECKING:
    from shoemaker.engine.project import Project
    from shoemaker.model import Task

PORT_ENV = "SHOEMAKER_PORT_BASE"
EXCLUDE_FILE = "shoemaker-exclude"
SETUP_MARK = "shoemaker-setup"
#: How much of a failed setup's output its task's reason carries (the log has more).
REASON_OUTPUT = 2000


@dataclass(frozen=True, slots=True)
class Furnished:
    """A furnished worktree: the variables its setup, agent and gates get, and the setup's
    failure (None: ready for an agent)."""

    env: dict[str, str]
    failure: Failure | None = None


def _admin(project: Project, worktree: Path) -> Path:
    admin = project.git.admin_dir(worktree)
    if admin is None:
        raise Failed(f"{worktree} is not a worktree of {project.root} any more")
    return admin


def check_copies(project: Project) -> dict[str, tuple[Path, str]]:
    """The files ``worktree_copy`` names, refused (:class:`CopyError`) when git tracks one
    or one lies outside the repository."""
    config = project.config
    if not config.worktree_copy:
        return {}
    found = copied_files(project.root, config.worktree_copy, (config.state_dir.strip("/"),))
    refuse_tracked(project.git.tracked_among(list(found)), found)
    return found


def _write_excludes(project: Project, worktree: Path, admin: Path, paths: list[str]) -> None:
    """The worktree's own exclude file: the person's global ignores, then ``paths``."""
    lines: list[str] = []
    own = project.git.excludes_file()
    if own is not None:
        try:
            lines = own.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
    lines.append("# shoemaker: worktree_copy and worktree_setup (never committed)")
    lines += ["/" + literal_pattern(p) for p in paths]
    (admin / EXCLUDE_FILE).write_text("\n".join(lines) + "\n")
    project.git.set_worktree_excludes_file(worktree, admin / EXCLUDE_FILE)


def _kept(admin: Path) -> list[str]:
    try:
        return (admin / KEEP_FILE).read_text().splitlines()
    except OSError:
        return []


def copy_into(project: Project, worktree: Path) -> dict[str, str]:
    """Copy the ``worktree_copy`` files into ``worktree`` (fresh copies at every task: the
    person may have edited them), exclude them there, and return its variables (blocking)."""
    config = project.config
    admin = _admin(project, worktree)
    found = check_copies(project)
    inside = worktree.resolve()
    for rel, (source, _) in found.items():
        dest = worktree / rel
        if not dest.parent.resolve().is_relative_to(inside):
            # A directory the task's branch made a link out of the worktree: the copy would
            # land wherever the link points.
            raise Failed(f"{worktree}: {rel} leads outside the worktree; not copied there")
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        shutil.copymode(source, dest)
    if found or config.worktree_setup:
        _write_excludes(project, worktree, admin, [*found, *_kept(admin)])
    base = port_base(admin, config.port_base_start, config.port_block_size)
    return {PORT_ENV: str(base)}


def _setup_digest(commands: list[list[str]]) -> str:
    return hashlib.sha256(json.dumps(commands).encode()).hexdigest()[:16]


def setup_log(project: Project, worktree: Path) -> Path:
    """Where the output of a worktree's setup is kept."""
    return project.state_dir / "setup" / f"{worktree.name}.log"


async def set_up(
    project: Project, worktree: Path, task: Task, env: dict[str, str]
) -> Failure | None:
    """Run ``worktree_setup`` in ``worktree`` unless it ran there already (with the same
    commands); each command is recorded like a gate (``setup``) and its output kept in
    :func:`setup_log`. Returns the failure, with the output, or None."""
    config, git = project.config, project.git
    commands = config.worktree_setup
    if not commands:
        return None
    admin = _admin(project, worktree)
    digest = _setup_digest(commands)
    try:
        if (admin / SETUP_MARK).read_text().strip() == digest:
            return None
    except OSError:
        pass
    before = set(await asyncio.to_thread(git.untracked_entries, worktree))
    box = GateBox(config, git.common_dir)
    log = setup_log(project, worktree)
    log.parent.mkdir(parents=True, exist_ok=True)
    kept: list[str] = []
    with log.open("w", encoding="utf-8") as out:
        out.write(f"# worktree setup of {worktree.name} for task {task.id}, {time.ctime()}\n")
        for argv in commands:
            shown = " ".join(argv)
            gate = GateConfig(
                name="setup", command=list(argv), timeout_sec=config.worktree_setup_timeout_sec
            )
            outcome = await run_gate(gate, worktree, box, env)
            output = project.redactor.text(outcome.output_tail)
            out.write(f"$ {shown}\n{output}")
            out.write(f"{'' if output.endswith(chr(10)) or not output else chr(10)}")
            out.write(f"# exit {outcome.exit_code}, {outcome.duration_s:.1f}s\n")
            out.flush()
            await _record(project, task, shown, outcome, output)
            if not outcome.passed:
                what = outcome.reason.replace("gate 'setup'", f"worktree setup `{shown}`")
                rel = log.relative_to(project.root) if log.is_relative_to(project.root) else log
                reason = f"{what}; its output (kept in {rel}):\n{output[-REASON_OUTPUT:]}"
                return Failure(reason, fingerprint("setup", f"{shown}\n{output}"))
        after = await asyncio.to_thread(git.untracked_entries, worktree)
        kept = [p for p in after if p not in before]
    (admin / KEEP_FILE).write_text("".join(f"{p}\n" for p in kept))
    # What setup left is never committed either, and survives the cleaning between tasks.
    copies = list(check_copies(project))
    await asyncio.to_thread(_write_excludes, project, worktree, admin, [*copies, *kept])
    (admin / SETUP_MARK).write_text(digest + "\n")
    return None


async def _record(
    project: Project, task: Task, shown: str, outcome: GateOutcome, output: str
) -> None:
    """Recorded and announced like a gate, so the task screen lists it with its output."""
    passed, exit_code, duration_s = outcome.passed, outcome.exit_code, outcome.duration_s
    name = f"setup: {shown}"[:120]
    await asyncio.to_thread(
        project.store.record_gate,
        task_id=task.id,
        run_id=None,
        name=name,
        location="setup",
        passed=passed,
        exit_code=exit_code,
        duration_s=duration_s,
        output_tail=output,
    )
    project.bus.emit(
        GateResult(
            generation=task.generation,
            task_id=task.id,
            name=name,
            where="setup",
            passed=passed,
            exit_code=exit_code,
            duration_s=duration_s,
            output_tail=output[-2000:],
            reason=outcome.reason,
        )
    )


async def furnish(project: Project, worktree: Path, task: Task) -> Furnished:
    """Copies, exclude file and port block, then setup when the worktree has not had it.
    A ``worktree_copy`` glob that matches a tracked file or leads outside the repository
    raises :class:`~shoemaker.copied_files.CopyError`."""
    env = await asyncio.to_thread(copy_into, project, worktree)
    return Furnished(env, await set_up(project, worktree, task, env))
