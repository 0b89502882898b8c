"""What every plan format is read into: planned tasks with their ids, dependencies and the
file line they come from, and the problems found on the way."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoemaker.errors import BadInput
from shoemaker.model import PlanGate

#: The formats ``shoemaker tasks import`` and ``shoemaker plan check`` read.
FORMATS = ("epics", "phases", "beads", "measure")

#: The largest plan file read (a plan is text a person writes, not a data dump).
MAX_PLAN_BYTES = 5_000_000


#: Status words that mean finished, in every format's own spelling.
DONE_WORDS = frozenset({"complete", "completed", "done", "closed", "merged", "finished"})
#: Marks people put beside (or instead of) a status word for finished.
DONE_MARKS = ("🟢", "✅", "✔", "☑")


def says_done(status: object) -> bool:
    """Whether a status as people write it means finished: ``complete``, ``Completed.``,
    ``✅ Complete``, ``🟢``, ``done (2026-01-12)``; never ``in_progress``, ``not complete``."""
    text = str(status).strip().lower()
    if any(mark in text for mark in DONE_MARKS):
        return True
    words = re.findall(r"[a-z_]+", text)
    return bool(words) and words[0] in DONE_WORDS


class PlanError(BadInput):
    """A plan that cannot be imported; the message names the file, the line and the problem."""


@dataclass(frozen=True, slots=True)
class PlannedTask:
    """One task as a plan file states it. ``depends_on`` holds external ids (of this file, of
    another file of the same import, or of tasks the generation already has)."""

    format: str
    path: str
    """The file, relative to the repository when inside it."""
    line: int
    external_id: str
    title: str
    description: str
    depends_on: tuple[str, ...] = ()
    priority: int = 0
    """shoemaker's scale: higher starts first, 0 is the default (epics' medium, beads' P2)."""
    needs_review: bool = False
    done: bool = False
    gates: tuple[PlanGate, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)
    """Kept and shown: ``github_issue``, beads comments, the epic's module."""
    dep_lines: dict[str, int] = field(default_factory=dict)
    """The line that names each dependency (and ``gate:NAME``, each gate), for the problems
    that concern it."""

    def where(self, dep: str | None = None) -> str:
        line = self.dep_lines.get(dep, self.line) if dep else self.line
        return f"{self.path}:{line}"


def agent_kind(value: Any) -> str | None:
    """A plan's ``agent:`` field: the agent kind its task runs with (None: the configured
    one); raises ValueError naming the kinds for anything else."""
    from shoemaker.config.agents import AGENT_KINDS

    if value is None or value == "":
        return None
    if value not in AGENT_KINDS:
        raise ValueError(f"agent {value!r}: use one of {', '.join(AGENT_KINDS)}")
    return str(value)


def task_resources(value: Any) -> dict[str, float]:
    """A plan's ``resources:`` field: what one attempt of its task holds on a cluster's worker
    (``{gpu: 1}``); raises ValueError saying what is expected for anything else."""
    from shoemaker.config.cluster import task_resources as checked

    return checked(value)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in a plan file, at a line of it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(slots=True)
class Parsed:
    """The planned tasks of some files, and what is wrong with them."""

    tasks: list[PlannedTask] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)
    """(format, path) of each file read, for the summary."""

    def extend(self, other: Parsed) -> None:
        self.tasks.extend(other.tasks)
        self.problems.extend(other.problems)
        self.files.extend(other.files)


def shown_path(root: Path, path: Path) -> str:
    """``path`` relative to the repository ``root`` when inside it, else absolute."""
    real, real_root = path.resolve(), root.resolve()
    if real.is_relative_to(real_root):
        return real.relative_to(real_root).as_posix()
    return str(real)


def read_plan_file(root: Path, path: Path) -> str:
    """The text of a plan file. Inside the repository it is read without following a link
    out of it (what the plan says goes into prompts and the store)."""
    from shoemaker.confined import Refused, read_bytes

    shown = shown_path(root, path)
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            raise PlanError(f"{shown}: larger than {MAX_PLAN_BYTES:,} bytes; is it a plan file?")
        inside = path.absolute().is_relative_to(root.absolute())
        data = read_bytes(root if inside else path.parent, path, shown)
    except Refused as exc:
        raise PlanError(f"{exc}; plan files are read only inside the repository") from None
    except OSError as exc:
        raise PlanError(f"{shown}: cannot read it: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PlanError(f"{shown}:{line}: not UTF-8 text") from None
