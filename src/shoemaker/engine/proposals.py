"""Reading and validating the tasks an agent proposes.

The measure prompt asks for a JSON array of ``{index, title, description, dependency}`` written
to a file; an agent that answers in its text instead may give a fenced ```yaml list. Either way
the proposals are validated as a whole before anything is stored: a missing title, a dependency
on an unknown index or a cycle is an error that names the task.

Titles and descriptions are data that ends up in commit messages, the store and the screen, so
they are cleaned first: control characters (NUL, escape sequences, lone surrogates) are removed
(a description keeps its newlines and tabs; a title's become spaces) and a title is cut to
:data:`MAX_TITLE_CHARS`. A title proposed twice, or one that repeats a task the generation
already has, is dropped with a notice; dependencies on it move to the task that is kept.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from graphlib import CycleError, TopologicalSorter
from typing import Any

import yaml

from shoemaker.config.agents import AGENT_KINDS
from shoemaker.config.cluster import task_resources
from shoemaker.errors import Failed, echo

_FENCED_YAML = re.compile(r"```ya?ml[ \t]*\n(.*?)```", re.DOTALL)

#: Longest task title kept (it becomes a commit subject and a row of the dashboard's queue);
#: a longer one is cut, with a notice, and its description keeps the whole text.
MAX_TITLE_CHARS = 200


class ProposalError(Failed, ValueError):
    """Proposals that cannot be accepted; the message names the task and the problem."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """One validated proposal; ``depends_on`` holds indices of other proposals."""

    index: int
    title: str
    description: str
    depends_on: tuple[int, ...]
    priority: int = 0
    depends_on_tasks: tuple[int, ...] = ()
    """Ids of tasks already in the generation (a dependency on a dropped duplicate of one)."""
    agent: str | None = None
    """The agent kind the task asks for (``agent:``); None: the configured one."""
    resources: dict[str, float] = field(default_factory=dict)
    """What one attempt of the task holds on a cluster's worker beyond ``dask.resources``
    (``resources:``, e.g. ``{gpu: 1}``); empty: the configuration's alone."""

    @property
    def extras(self) -> dict[str, Any]:
        """What the task carries besides its title and description (``Task.extras``)."""
        return {
            **({"agent": self.agent} if self.agent else {}),
            **({"resources": self.resources} if self.resources else {}),
        }


@dataclass(frozen=True, slots=True)
class Checked:
    """Validated proposals in dependency order, and what was changed or dropped on the way."""

    proposals: list[Proposal]
    notices: list[str] = field(default_factory=list)


def clean_text(text: str, multiline: bool) -> str:
    """``text`` without control characters or lone surrogates; a multi-line text keeps its
    newlines and tabs (a carriage return goes), a single line gets a space for each."""
    out = []
    for char in text:
        if char in "\n\t" and multiline:
            out.append(char)
        elif char in "\n\t\r\v\f" and not multiline:
            out.append(" ")
        elif unicodedata.category(char) not in ("Cc", "Cs"):
            out.append(char)
    cleaned = "".join(out)
    return cleaned if multiline else " ".join(cleaned.split())


def title_key(title: str) -> str:
    """What makes two titles the same task: case and spacing aside."""
    return " ".join(title.casefold().split())


def parse_json_proposals(text: str | bytes, source: str) -> list[Any]:
    """The raw list in a proposals JSON file (its bytes must be UTF-8)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProposalError(
                f"{source}: not UTF-8 (byte 0x{text[exc.start]:02x} at offset {exc.start}); "
                "the proposals file must be UTF-8 JSON"
            ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProposalError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ProposalError(f"{source}: nested too deeply to be a list of tasks") from None
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        data = data["tasks"]  # a common variation: {"tasks": [...]}
    if not isinstance(data, list):
        raise ProposalError(f"{source}: expected a JSON array of tasks, got {type(data).__name__}")
    return data


def find_yaml_proposals(text: str) -> list[Any] | None:
    """The last fenced ```yaml block in ``text`` that holds a list, if any."""
    found: list[Any] | None = None
    for block in _FENCED_YAML.findall(text):
        try:
            data = yaml.safe_load(block)
        except (yaml.YAMLError, RecursionError):
            continue
        if isinstance(data, list):
            found = data
    return found


def _label(position: int, item: Any) -> str:
    title = item.get("title") if isinstance(item, dict) else None
    return f"task {position}" + (f" ({echo(title)})" if isinstance(title, str) and title else "")


def _dependencies(raw: Any, where: str) -> list[int]:
    if raw is None:
        return []
    values = raw if isinstance(raw, list) else [raw]
    deps = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProposalError(
                f"{where}: dependency must be -1, an index or a list of indices, got {echo(raw)}"
            )
        if value != -1:
            deps.append(value)
    return deps


def validate_proposals(raw: list[Any], source: str) -> list[Proposal]:
    """Check every proposal and the dependency graph; returns them in dependency order."""
    return check_proposals(raw, source).proposals


def check_proposals(
    raw: list[Any], source: str, existing: Mapping[str, int] | None = None
) -> Checked:
    """Clean and check every proposal, drop duplicates (of each other, or of the tasks in
    ``existing``: :func:`title_key` → task id) and check the dependency graph."""
    proposals: dict[int, Proposal] = {}
    notices: list[str] = []
    for position, item in enumerate(raw):
        where = f"{source}: {_label(position, item)}"
        if not isinstance(item, dict):
            raise ProposalError(f"{where}: expected an object with a title, got {echo(item)}")
        title = item.get("title")
        if isinstance(title, str):
            title = clean_text(title, multiline=False)
        if not isinstance(title, str) or not title:
            raise ProposalError(f"{where}: missing title; every task needs a non-empty title")
        if len(title) > MAX_TITLE_CHARS:
            notices.append(
                f"{source}: task {position}: title of {len(title):,} characters cut to "
                f"{MAX_TITLE_CHARS} (its description keeps the whole text)"
            )
            description_head = f"{title}\n\n"
            title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
        else:
            description_head = ""
        description = item.get("description", "")
        if not isinstance(description, str):
            raise ProposalError(f"{where}: description must be text")
        description = description_head + clean_text(description, multiline=True)
        index = item.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ProposalError(f"{where}: index must be a non-negative integer, got {echo(index)}")
        if index in proposals:
            raise ProposalError(f"{where}: index {index} is used twice")
        priority = item.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ProposalError(f"{where}: priority must be an integer")
        deps = _dependencies(item.get("dependency", item.get("depends_on")), where)
        agent = item.get("agent")
        if agent is not None and agent not in AGENT_KINDS:
            raise ProposalError(
                f"{where}: agent must be one of {', '.join(AGENT_KINDS)}, got {echo(agent)}"
            )
        try:
            resources = task_resources(item.get("resources"))
        except ValueError as exc:
            raise ProposalError(f"{where}: {exc}") from None
        proposals[index] = Proposal(
            index,
            title,
            description,
            tuple(deps),
            priority,
            agent=agent or None,
            resources=resources,
        )

    for p in proposals.values():
        for dep in p.depends_on:
            if dep == p.index:
                raise ProposalError(f"{source}: task {p.index} ({p.title!r}) depends on itself")
            if dep not in proposals:
                raise ProposalError(
                    f"{source}: task {p.index} ({p.title!r}) depends on index {dep}, "
                    f"which is not among the proposed indices {sorted(proposals)}"
                )
    proposals = _drop_duplicates(proposals, existing or {}, source, notices)
    sorter = TopologicalSorter({p.index: p.depends_on for p in proposals.values()})
    try:
        order = list(sorter.static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        path = " → ".join(f"{i} ({proposals[i].title!r})" for i in cycle)
        raise ProposalError(f"{source}: dependency cycle: {path}") from None
    return Checked([proposals[i] for i in order], notices)


def _drop_duplicates(
    proposals: dict[int, Proposal], existing: Mapping[str, int], source: str, notices: list[str]
) -> dict[int, Proposal]:
    """Keep the first proposal of each title (by index) unless the generation has it already;
    dependencies on a dropped one move to the proposal kept, or to the existing task."""
    first: dict[str, int] = {}
    to_proposal: dict[int, int] = {}
    to_task: dict[int, int] = {}
    for index in sorted(proposals):
        p = proposals[index]
        key = title_key(p.title)
        if key in existing:
            to_task[index] = existing[key]
            notices.append(
                f"{source}: task {index} ({p.title!r}) dropped: the generation already has it "
                f"as task #{existing[key]}"
            )
        elif key in first:
            to_proposal[index] = first[key]
            notices.append(
                f"{source}: task {index} ({p.title!r}) dropped: the same title as task {first[key]}"
            )
        else:
            first[key] = index
    if not (to_proposal or to_task):
        return proposals
    kept: dict[int, Proposal] = {}
    for index, p in proposals.items():
        if index in to_proposal or index in to_task:
            continue
        deps = {to_proposal.get(d, d) for d in p.depends_on if d not in to_task} - {index}
        tasks = {*p.depends_on_tasks, *(to_task[d] for d in p.depends_on if d in to_task)}
        kept[index] = replace(
            p, depends_on=tuple(sorted(deps)), depends_on_tasks=tuple(sorted(tasks))
        )
    return kept


def limit_proposals(proposals: list[Proposal], limit: int) -> tuple[list[Proposal], list[Proposal]]:
    """Keep at most ``limit`` proposals, preferring the earliest indices, and never keep one
    whose dependency was dropped. Returns (kept, dropped)."""
    allowed = {p.index for p in sorted(proposals, key=lambda p: p.index)[:limit]}
    kept: list[Proposal] = []
    kept_ids: set[int] = set()
    for p in proposals:  # dependency order, so a dependency is decided before its dependents
        if p.index in allowed and all(d in kept_ids for d in p.depends_on):
            kept.append(p)
            kept_ids.add(p.index)
    dropped = [p for p in proposals if p.index not in kept_ids]
    return kept, dropped
