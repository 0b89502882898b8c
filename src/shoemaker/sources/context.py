"""What the stitch prompt says about a task's plan beyond its own text: the module's README
for an epic, and what each completed dependency merged (its commit and files)."""

from __future__ import annotations

from pathlib import Path

from shoemaker.confined import Refused, read_text
from shoemaker.git import Git, GitError
from shoemaker.model import Task, TaskState
from shoemaker.sources import epics

#: How much of a module README the prompt carries.
MAX_README_CHARS = 20_000
#: Files named per completed dependency.
MAX_FILES = 30


def plan_context(root: Path, git: Git, task: Task, dependencies: list[Task]) -> str:
    """The plan context of ``task`` for its prompt ("" for a task no plan file gave)."""
    if task.origin is None:
        return ""
    parts = [
        f"This task is {task.origin.external_id} of {task.origin.path} ({task.origin.format})."
    ]
    if task.extras.get("github_issue") is not None:
        parts[0] += f" GitHub issue: {task.extras['github_issue']}."
    if task.origin.format == epics.FORMAT and not Path(task.origin.path).is_absolute():
        readme = epics.readme_of(root / task.origin.path)
        if readme.is_file():
            try:
                text = read_text(root, readme)[:MAX_README_CHARS]
                parts.append(
                    f"### The module's README ({readme.relative_to(root)})\n\n{text.strip()}"
                )
            except Refused:
                pass
    agents = task.extras.get("required_agents") or []
    notes = task.extras.get("notes_file")
    if agents or notes:
        required = [
            f"- run the `{a}` subagent (the Task tool with subagent_type `{a}`)" for a in agents
        ]
        if notes:
            required.append(
                f"- write your notes to `{notes}` with the sections `## Summary`, "
                "`## Key Decisions` and `## Files Modified`"
            )
        parts.append(
            "### Required by the plan\n\nThe work is not accepted without:\n" + "\n".join(required)
        )
    done = [d for d in dependencies if d.state == TaskState.DONE]
    for dep in done:
        dep_notes = dep.extras.get("notes_file")
        if isinstance(dep_notes, str) and not Path(dep_notes).is_absolute():
            path = root / dep_notes
            if path.is_file():
                try:
                    text = read_text(root, path)[:MAX_README_CHARS]
                except Refused:
                    continue
                parts.append(f"### Notes of {dep.external_id} ({dep_notes})\n\n{text.strip()}")
    if done:
        parts.append("### Completed dependencies\n\n" + "\n".join(_summary(git, d) for d in done))
    return "\n\n".join(parts)


def _summary(git: Git, dep: Task) -> str:
    name = f"{dep.external_id} ({dep.title})" if dep.external_id else f"#{dep.id} {dep.title}"
    if not dep.merged_commit:
        return f"- {name}: done before this generation ran it (its plan file says so)"
    try:
        files = [f.path for f in git.diff_stat(f"{dep.merged_commit}^", dep.merged_commit).files]
    except GitError:
        files = []
    shown = ", ".join(files[:MAX_FILES]) + (
        f" and {len(files) - MAX_FILES} more" if len(files) > MAX_FILES else ""
    )
    return f"- {name}: merged as {dep.merged_commit[:10]}; files: {shown or 'none'}"
