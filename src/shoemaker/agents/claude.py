"""The command line of a claude-compatible agent, built from configuration."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from shoemaker.config import AgentConfig


def resolve_command(command: str) -> str:
    """Find the agent executable on PATH, or beside the running interpreter.

    The second place matters for ``shoemaker-rehearsal`` when shoemaker runs from a virtual
    environment that is not activated: its scripts sit next to ``sys.executable``.
    """
    if "/" in command:
        return command
    found = shutil.which(command)
    if found:
        return found
    beside = Path(sys.executable).parent / command
    if beside.is_file():
        return str(beside)
    return command  # the runner reports "cannot start agent" with a hint


def agent_argv(agent: AgentConfig) -> list[str]:
    """``command args… [--model M] [--max-turns N] [--max-budget-usd D]``; the prompt itself
    goes on stdin."""
    argv = [resolve_command(agent.command), *agent.args]
    if agent.model:
        argv += ["--model", agent.model]
    if agent.max_turns:
        argv += ["--max-turns", str(agent.max_turns)]
    if agent.max_budget_usd:
        argv += ["--max-budget-usd", f"{agent.max_budget_usd:g}"]
    return argv
