"""The colour of each task state, shared by the run story, the CLI tables and the dashboard.

Plain Rich style strings, so the headless printers and the CLI use it without Textual.
"""

from __future__ import annotations

from shoemaker.model import TaskState

#: Rich style of each task state.
STATE_STYLE: dict[TaskState, str] = {
    TaskState.PROPOSED: "dim",
    TaskState.READY: "bold cyan",
    TaskState.RUNNING: "bold yellow",
    TaskState.VERIFYING: "yellow",
    TaskState.MERGING: "magenta",
    TaskState.DONE: "bold green",
    TaskState.FAILED: "bold red",
    TaskState.BLOCKED: "red",
    TaskState.CONFLICT: "bold red",
    TaskState.NEEDS_REVIEW: "bold blue",
    TaskState.CANCELLED: "dim strike",
}
