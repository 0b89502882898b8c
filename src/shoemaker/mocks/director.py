"""The model behind a mock when the demo runs without credentials: it answers a measure or
stitch prompt the way the rehearsal agent acts it out (the prompt's rehearsal blocks), but
through the real CLI's own tools. The first reply of a conversation makes the tool calls —
the proposals file, each file to write, each text to append, each command to run —, every
later one says what was done.

Whole files go through the CLI's file tool (codex's ``apply_patch``, gemini's ``write_file``),
appends through its shell with a quoted here-document, commands as they are: the CLI runs them
in its working directory, as it would a model's; shoemaker never does.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from shoemaker.agents.rehearsal.directives import (
    DirectiveError,
    measure_proposals,
    read_blocks,
    stitch_directives,
)
from shoemaker.mocks import gemini, responses

_MEASURE = re.compile(r"<!--\s*shoemaker:measure\s+output=(\S+)\s+max=(\d+)\s*-->")
_STITCH = re.compile(r"<!--\s*shoemaker:stitch\s+task=(\S+)\s+attempt=(\d+)\s*-->")


@dataclass
class Plan:
    """What a prompt's rehearsal blocks ask of one run."""

    writes: list[tuple[str, str]] = field(default_factory=list)
    appends: list[tuple[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    final: str = "Done."


def plan_for(prompt: str) -> Plan:
    """The work a prompt's rehearsal blocks script (none: a short answer)."""
    measure, stitch = _MEASURE.search(prompt), _STITCH.search(prompt)
    try:
        blocks = read_blocks(prompt)
        directives = stitch_directives(blocks, int(stitch.group(2)) if stitch else 1)
        if measure:
            proposals, _ = measure_proposals(blocks, prompt, int(measure.group(2)))
            return Plan(
                writes=[(measure.group(1), json.dumps(proposals, indent=2) + "\n")],
                final=f"Proposed {len(proposals)} tasks.",
            )
    except DirectiveError as exc:
        return Plan(final=f"The rehearsal blocks cannot be followed: {exc}")
    if not stitch:
        return Plan()
    return Plan(
        writes=list((directives.get("files") or {}).items()),
        appends=list((directives.get("append") or {}).items()),
        commands=list(directives.get("run") or []),
        final=str(directives.get("text") or "Done: the task's files are written."),
    )


def _here_doc(path: str, text: str, op: str) -> str:
    mark = "SHOEMAKER_EOF"
    while mark in text:
        mark += "_"
    body = text if text.endswith("\n") else text + "\n"
    quoted = shlex.quote(path)
    return f"mkdir -p \"$(dirname {quoted})\" && cat {op} {quoted} <<'{mark}'\n{body}{mark}"


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    if isinstance(value, dict):
        return [
            t for key in ("text", "content", "parts") if key in value for t in _texts(value[key])
        ]
    return []


def codex_director(body: dict[str, Any]) -> responses.Turn:
    """The next reply to codex (Responses API request ``body``)."""
    items = body.get("input") or []
    answered = any(
        isinstance(i, dict)
        and (i.get("type") in ("function_call", "custom_tool_call") or i.get("role") == "assistant")
        for i in items
    )
    user = [i for i in items if isinstance(i, dict) and i.get("role") == "user"]
    plan = plan_for("\n".join(_texts(user)))
    if answered:
        return responses.Turn([responses.message(plan.final)])
    # New files through apply_patch: a long command (the proposals file) can outlast
    # exec_command's wait for it, and codex then moves on without its output.
    calls = [responses.add_file(p, t) for p, t in plan.writes]
    calls += [responses.shell(_here_doc(p, t, ">>")) for p, t in plan.appends]
    calls += [responses.shell(c) for c in plan.commands]
    return responses.Turn(calls or [responses.message(plan.final)])


def gemini_director(body: dict[str, Any]) -> gemini.Turn:
    """The next reply to gemini (``streamGenerateContent`` request ``body``)."""
    contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    answered = any(c.get("role") == "model" for c in contents)
    plan = plan_for("\n".join(_texts([c for c in contents if c.get("role") == "user"])))
    if answered:
        return gemini.Turn([gemini.text(plan.final)])
    calls = [gemini.write_file(p, t) for p, t in plan.writes]
    calls += [gemini.shell(_here_doc(p, t, ">>")) for p, t in plan.appends]
    calls += [gemini.shell(c) for c in plan.commands]
    return gemini.Turn(calls or [gemini.text(plan.final)])
