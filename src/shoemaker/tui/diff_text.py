"""How a diff is drawn: its lines styled in the theme's colours (added, removed, hunk and file
headers), where each file's part starts, and where the diff comes from, in words. The task
screen and the diff side panel draw diffs alike."""

from __future__ import annotations

from rich.text import Text

from shoemaker.engine.task_detail import TaskDiff
from shoemaker.tui.theme import DiffColours

#: Largest diff rendered with highlighting; beyond it the text is cut (the file list is whole).
MAX_DIFF_CHARS = 200_000

#: Lines of a diff's file header (``--- a/x`` is one, a removed line ``--- x`` within a hunk not).
_HEADER_PREFIXES = (
    "diff --git ",
    "index ",
    "--- ",
    "+++ ",
    "new file",
    "deleted file",
    "old mode",
    "new mode",
    "similarity",
    "rename ",
    "Binary files",
)
PLAIN_DIFF = DiffColours()


def render_diff(text: str, colours: DiffColours = PLAIN_DIFF) -> tuple[Text, dict[str, int]]:
    """The diff in ``colours`` (the theme's), and the line each file's part starts on. Slow
    for a big diff: call it in a thread."""
    text = text[:MAX_DIFF_CHARS]
    if not text:
        return Text("no changes", style="dim"), {}
    body = Text(no_wrap=True)
    starts: dict[str, int] = {}
    in_hunk = False
    for number, line in enumerate(text.splitlines()):
        if line.startswith("diff --git "):
            in_hunk = False
            if line.startswith("diff --git a/") and " b/" in line:
                starts.setdefault(line.split(" b/", 1)[1], number)
        if line.startswith("@@"):
            in_hunk, style = True, colours.hunk
        elif not in_hunk and line.startswith(_HEADER_PREFIXES):
            style = colours.header
        elif in_hunk and line.startswith("+"):
            style = colours.added
        elif in_hunk and line.startswith("-"):
            style = colours.removed
        else:
            style = ""
        body.append(line + "\n", style=style)
    return body, starts


def diff_label(diff: TaskDiff) -> str:
    """Where a diff comes from, in words: ``live from the worktree``, ``as merged``…"""
    return {
        "worktree": "live from the worktree",
        "merged": "as merged",
        "branch": f"on {diff.ref}",
        "attempt": f"an earlier attempt, kept on {diff.ref}",
        "none": "nothing yet",
    }[diff.source]
