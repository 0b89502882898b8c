"""Reading and validating the tasks an agent proposes.

The measure prompt asks for a JSON array of ``{index, title, description, dependency}`` written
to a file; an agent that answers in its text instead may give a fenced ```yaml list. Either way
the proposals are validated as a whole before anything is stored: a missing title, a dependency
on an unknown index or a cycle is an error that names the task.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

import yaml

from shoemaker.errors import Failed, echo

_FENCED_YAML = re.compile(r"```ya?ml[ \t]*\n(.*?)```", re.DOTALL)


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
    proposals: dict[int, Proposal] = {}
    for position, item in enumerate(raw):
        where = f"{source}: {_label(position, item)}"
        if not isinstance(item, dict):
            raise ProposalError(f"{where}: expected an object with a title, got {echo(item)}")
        title = item.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ProposalError(f"{where}: missing title; every task needs a non-empty title")
        description = item.get("description", "")
        if not isinstance(description, str):
            raise ProposalError(f"{where}: description must be text")
        index = item.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ProposalError(f"{where}: index must be a non-negative integer, got {echo(index)}")
        if index in proposals:
            raise ProposalError(f"{where}: index {index} is used twice")
        priority = item.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ProposalError(f"{where}: priority must be an integer")
        deps = _dependencies(item.get("dependency", item.get("depends_on")), where)
        proposals[index] = Proposal(index, title.strip(), description, tuple(deps), priority)

    for p in proposals.values():
        for dep in p.depends_on:
            if dep == p.index:
                raise ProposalError(f"{source}: task {p.index} ({p.title!r}) depends on itself")
            if dep not in proposals:
                raise ProposalError(
                    f"{source}: task {p.index} ({p.title!r}) depends on index {dep}, "
                    f"which is not among the proposed indices {sorted(proposals)}"
                )
    sorter = TopologicalSorter({p.index: p.depends_on for p in proposals.values()})
    try:
        order = list(sorter.static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        path = " → ".join(f"{i} ({proposals[i].title!r})" for i in cycle)
        raise ProposalError(f"{source}: dependency cycle: {path}") from None
    return [proposals[i] for i in order]


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
