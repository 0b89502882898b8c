"""What a phase's Process Wrapper requires of an attempt, checked after its agent ends: each
required subagent appears in the agent's stream as a Task (or Agent) tool use with that
``subagent_type``, and the notes file exists with its sections. An attempt that falls short
fails with the reason, which the next attempt's prompt carries."""

from __future__ import annotations

import json
from pathlib import Path

from shoemaker.confined import Refused, read_text
from shoemaker.model import Task

NOTES_SECTIONS = ("## Summary", "## Key Decisions", "## Files Modified")


def subagents_in(transcript: bytes) -> set[str]:
    """The subagent types a stream-json transcript shows the agent running."""
    found: set[str] = set()
    for raw in transcript.splitlines():
        try:
            line = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            continue
        if not isinstance(line, dict) or line.get("type") != "assistant":
            continue
        message = line.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_use"
                and block.get("name") in ("Task", "Agent")
                and isinstance(block.get("input"), dict)
                and isinstance(block["input"].get("subagent_type"), str)
            ):
                found.add(block["input"]["subagent_type"])
    return found


def shortfall(task: Task, transcript: bytes, worktree: Path) -> str:
    """Why the attempt does not do what its plan requires ("" when it does)."""
    problems = []
    agents = [a for a in task.extras.get("required_agents") or [] if isinstance(a, str)]
    missing = [a for a in agents if a not in subagents_in(transcript)]
    if missing:
        problems.append(
            "the plan requires the subagent(s) "
            + ", ".join(missing)
            + ", and the agent's stream shows no Task tool use with that subagent_type"
        )
    notes = task.extras.get("notes_file")
    if isinstance(notes, str) and notes:
        path = worktree / notes
        try:
            text = read_text(worktree, path, notes) if path.is_file() else None
        except Refused:
            text = None
        if text is None:
            problems.append(f"the plan requires the notes file {notes}, which was not written")
        else:
            absent = [s for s in NOTES_SECTIONS if s not in text]
            if absent:
                problems.append(f"the notes file {notes} lacks {', '.join(absent)}")
    return "; ".join(problems)
