"""A master plan with phase files: the master plan (an H1 ``… - Master Plan`` and a table
``| Phase | Title | Focus | Risk | Status |`` whose titles link the phase files; phase ids may
be decimals like ``3.1``) and one markdown file per phase.

A phase file says ``**Status:**``, ``**Depends On:** Phase 1, Phase 2`` (or N/A; absent: the
phase before it in the table), its ``## Gates`` (``- name: `command: …` - requirement``,
which shoemaker runs itself; a gate without a command is a problem ``plan check`` reports),
its ``## Tasks`` checklist (ticked when the phase merges) and its ``## Process Wrapper``
(a required ``**AGENT:name**`` subagent, a notes file to write; kept in the task's extras).
``**Agent:** codex`` among its fields names the agent kind the phase runs with.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from shoemaker.model import PlanGate
from shoemaker.sources.model import (
    Parsed,
    PlannedTask,
    Problem,
    agent_kind,
    read_plan_file,
    says_done,
    shown_path,
)

FORMAT = "phases"

_MASTER_TITLE = re.compile(r"^#\s+(?P<title>.+?)\s*[-–—]\s*Master Plan\s*$", re.IGNORECASE)
_LINK = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
_PHASE_REF = re.compile(r"Phase\s+(?P<id>\d+(?:\.\d+)*)", re.IGNORECASE)
_BARE_ID = re.compile(r"(?<![\w.])(?P<id>\d+(?:\.\d+)*)(?![\w.])")
_FIELD = re.compile(r"^\*\*(?P<name>[^*:]+):\*\*\s*(?P<value>.*)$")
_GATE = re.compile(r"^\s*[-*]\s+(?P<name>[^:`]+?)\s*:\s*(?P<rest>.*)$")
_GATE_COMMAND = re.compile(r"`(?:command:\s*)?(?P<command>[^`]+)`")
_AGENT = re.compile(r"\*\*AGENT:(?P<name>[\w.-]+)\*\*", re.IGNORECASE)
_NOTES = re.compile(r"notes to:?\s*`(?P<path>[^`]+)`", re.IGNORECASE)
_UNCHECKED = re.compile(r"^(?P<lead>\s*[-*]\s+)\[ \]")


def is_master_plan(text: str) -> bool:
    return any(_MASTER_TITLE.match(line) for line in text.split("\n")[:40])


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def canonical(pid: str) -> str:
    """A phase id without leading zeros: the table's ``01.1`` is the ``Phase 1.1`` a phase
    file depends on."""
    return ".".join(str(int(part)) for part in pid.split("."))


def _phase_id(cell: str) -> str | None:
    m = re.fullmatch(r"(?:Phase\s+)?(?P<id>\d+(?:\.\d+)*)", cell.strip(), re.IGNORECASE)
    return canonical(m["id"]) if m else None


def table_rows(text: str) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """The phases table's columns (lower-cased names → index) and its rows with their line."""
    lines = text.split("\n")
    for n, line in enumerate(lines):
        if not line.lstrip().startswith("|"):
            continue
        header = [c.lower() for c in _cells(line)]
        if "phase" in header and "title" in header:
            columns = {name: i for i, name in enumerate(header)}
            rows = []
            for m, row in enumerate(lines[n + 1 :], start=n + 2):
                if not row.lstrip().startswith("|"):
                    break
                cells = _cells(row)
                if all(set(c) <= set("-: ") for c in cells):
                    continue  # the separator
                rows.append((m, cells))
            return columns, rows
    return {}, []


def master_plans(directory: Path) -> list[Path]:
    """The master plans among a directory's markdown files (every level below it)."""
    found = []
    for file in sorted(directory.rglob("*.md")):
        # Only regular files: a pipe would block the read, a link may lead anywhere.
        if file.is_symlink() or not file.is_file():
            continue
        try:
            with file.open(encoding="utf-8", errors="replace") as f:
                if is_master_plan(f.read(8192)):
                    found.append(file)
        except OSError:
            continue
    return found


def parse(root: Path, path: Path) -> Parsed:
    """The phases of a master plan, or of every master plan under a directory."""
    if path.is_dir():
        parsed = Parsed()
        plans = master_plans(path)
        if not plans:
            parsed.problems.append(
                Problem(
                    shown_path(root, path),
                    1,
                    "no master plan under it (a markdown file whose title is "
                    "`# <name> - Master Plan`); name the master plan file",
                )
            )
        for plan in plans:
            parsed.extend(parse(root, plan))
        return parsed
    shown = shown_path(root, path)
    parsed = Parsed(files=[(FORMAT, shown)])
    text = read_plan_file(root, path)
    if not is_master_plan(text):
        parsed.problems.append(Problem(shown, 1, "no `# <name> - Master Plan` heading"))
        return parsed
    columns, rows = table_rows(text)
    if not rows:
        parsed.problems.append(
            Problem(shown, 1, "no phases table (| Phase | Title | Focus | Risk | Status |)")
        )
        return parsed
    stem = path.stem
    previous: str | None = None
    for line, cells in rows:
        cell = dict(zip(columns, cells, strict=False))
        pid = _phase_id(cell.get("phase", ""))
        if pid is None:
            parsed.problems.append(Problem(shown, line, f"phase {cell.get('phase')!r} is no id"))
            continue
        external_id = f"{stem}/P{pid}"
        link = _LINK.search(cell.get("title", ""))
        if link is None:
            parsed.problems.append(
                Problem(
                    shown, line, f"phase {pid}: its title links no phase file ([Title](file.md))"
                )
            )
            continue
        phase_file = path.parent / link["target"]
        if not phase_file.is_file():
            parsed.problems.append(
                Problem(shown, line, f"phase {pid}: phase file {link['target']} is missing")
            )
            previous = external_id
            continue
        task = _phase(root, phase_file, external_id, stem, link["text"], cell, previous, shown)
        parsed.tasks.append(task)
        try:
            agent_kind(task.extras.get("agent"))
        except ValueError as exc:
            parsed.problems.append(Problem(task.path, task.dep_lines.get("agent", 1), str(exc)))
        for gate in task.gates:
            if gate.command:
                why = _unrunnable(gate.command)
                if why:
                    parsed.problems.append(
                        Problem(
                            task.path,
                            task.dep_lines.get(f"gate:{gate.name}", 1),
                            f"gate {gate.name!r}: {why}",
                        )
                    )
        previous = external_id
    return parsed


#: Words only a shell understands; a gate's command runs without one.
_SHELL_WORDS = frozenset({"&&", "||", "|", ";", "&", ">", ">>", "<", "2>&1", "2>", "&>"})


def _unrunnable(command: str) -> str:
    """Why a gate's command cannot run as shoemaker runs it (split, no shell), or ""."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"its command cannot be split: {exc}"
    shell = [w for w in words if w in _SHELL_WORDS or (len(w) > 1 and w.endswith(";"))]
    if shell:
        return (
            f"its command needs a shell for {shell[0]!r}, and gates run without one; "
            "write one gate per command, or put them in a script the gate runs"
        )
    return ""


def _phase(
    root: Path,
    file: Path,
    external_id: str,
    stem: str,
    title: str,
    cell: dict[str, str],
    previous: str | None,
    master: str,
) -> PlannedTask:
    shown = shown_path(root, file)
    text = read_plan_file(root, file)
    lines = text.split("\n")
    fields: dict[str, tuple[str, int]] = {}
    section = ""
    gates: list[PlanGate] = []
    lines_of: dict[str, int] = {}
    agents: list[str] = []
    notes = ""
    heading = title
    for n, line in enumerate(lines, start=1):
        m = _FIELD.match(line.strip())
        if m and not section:
            fields[m["name"].strip().lower()] = (m["value"].strip(), n)
        if line.startswith("# ") and heading == title:
            heading = re.sub(r"^#\s+(Phase\s+[\d.]+\s*:\s*)?", "", line).strip() or title
        if line.startswith("## "):
            section = line[3:].strip().lower()
            continue
        if section.startswith("gates"):
            g = _GATE.match(line)
            if g:
                command = _GATE_COMMAND.search(g["rest"])
                name = g["name"].strip()
                gates.append(PlanGate(name, command["command"].strip() if command else ""))
                lines_of[f"gate:{name}"] = n
        elif section.startswith("process wrapper"):
            required = "mandatory" in section or "required" in line.lower()
            agent = _AGENT.search(line)
            if agent and required:
                agents.append(agent["name"])
            note = _NOTES.search(line)
            if note and required:
                notes = note["path"]
    depends: tuple[str, ...]
    dep_lines: dict[str, int] = dict(lines_of)
    if "depends on" in fields:
        value, n = fields["depends on"]
        if value.strip().upper() in ("N/A", "NA", "NONE", "-", ""):
            depends = ()
        else:
            ids = [m["id"] for m in _PHASE_REF.finditer(value)] or [
                m["id"] for m in _BARE_ID.finditer(_LINK.sub("", value))
            ]
            depends = tuple(dict.fromkeys(f"{stem}/P{canonical(i)}" for i in ids))
            dep_lines.update({d: n for d in depends})
    else:
        depends = (previous,) if previous else ()
    status = fields.get("status", (cell.get("status", ""), 1))[0]
    extras: dict[str, Any] = {"master_plan": master}
    if agents:
        extras["required_agents"] = agents
    if notes:
        extras["notes_file"] = notes
    if fields.get("agent", ("", 0))[0]:
        extras["agent"], dep_lines["agent"] = fields["agent"]
    return PlannedTask(
        format=FORMAT,
        path=shown,
        line=1,
        external_id=external_id,
        title=heading,
        description=text,
        depends_on=depends,
        done=says_done(status),
        gates=tuple(gates),
        extras=extras,
        dep_lines=dep_lines,
    )


# -- writing back -------------------------------------------------------------------------------


def mark_complete(text: str) -> str:
    """The phase file with ``**Status:** Complete`` and its Tasks checklist ticked."""
    out = []
    section = ""
    for line in text.split("\n"):
        if line.startswith("## "):
            section = line[3:].strip().lower()
        elif re.match(r"^\*\*Status:\*\*", line.strip()) and not section:
            line = re.sub(r"(\*\*Status:\*\*\s*).*$", r"\1Complete", line)
        elif section.startswith("tasks"):
            line = _UNCHECKED.sub(r"\g<lead>[x]", line)
        out.append(line)
    return "\n".join(out)


def mark_master_row(text: str, phase_file: str) -> str:
    """The master plan with the status cell of the row linking ``phase_file`` Complete."""
    columns, _ = table_rows(text)
    status = columns.get("status")
    if status is None:
        return text
    out = []
    for line in text.split("\n"):
        if line.lstrip().startswith("|") and any(
            Path(m["target"]).name == phase_file for m in _LINK.finditer(line)
        ):
            cells = line.split("|")
            # cells[0] is what precedes the first pipe; the status column is one further.
            if len(cells) > status + 1:
                old = cells[status + 1]
                pad_left = old[: len(old) - len(old.lstrip())] or " "
                cells[status + 1] = f"{pad_left}Complete "
                line = "|".join(cells)
        out.append(line)
    return "\n".join(out)
