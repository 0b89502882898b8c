"""beads issues: ``.beads/issues.jsonl``, one JSON object per line (``id``, ``title``,
``description``, ``status``, ``priority`` 0–4, ``dependencies``, ``comments``…).

Dependencies of type ``blocks`` order the work; a ``parent-child`` one makes the parent (an
epic, say) wait for its children. Closed issues are imported as done. Comments, design notes
and acceptance criteria go into the task's text as context.

Writing back keeps every line shoemaker did not change byte for byte: an issue whose task
shoemaker finished becomes ``closed`` with its ``close_reason`` and ``closed_at``, one it is
working on ``in_progress``, one that failed ``blocked``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoemaker.model import Task, TaskState
from shoemaker.sources.model import (
    Parsed,
    PlannedTask,
    Problem,
    agent_kind,
    read_plan_file,
    shown_path,
    task_resources,
)

FORMAT = "beads"
DEFAULT_FILE = ".beads/issues.jsonl"
_SKIPPED = {"tombstone", "deleted"}
_CONTEXT_FIELDS = (
    ("design", "Design"),
    ("acceptance_criteria", "Acceptance criteria"),
    ("notes", "Notes"),
)


def issues_file(path: Path) -> Path:
    """The issues file of a ``.beads`` directory, a repository, or the file itself."""
    if path.is_dir():
        inner = path / "issues.jsonl"
        return inner if inner.is_file() else path / DEFAULT_FILE
    return path


def priority_of(value: Any) -> int:
    """beads' P0 (most urgent) … P4 on shoemaker's scale (higher first, P2 → 0)."""
    return 2 - value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse(root: Path, path: Path) -> Parsed:
    file = issues_file(path)
    shown = shown_path(root, file)
    parsed = Parsed(files=[(FORMAT, shown)])
    text = read_plan_file(root, file)
    issues: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            issue = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            parsed.problems.append(Problem(shown, number, f"not a JSON object: {exc}"))
            continue
        if not isinstance(issue, dict):
            parsed.problems.append(Problem(shown, number, "not a JSON object"))
            continue
        if not isinstance(issue.get("id"), str) or not issue["id"]:
            parsed.problems.append(Problem(shown, number, "an issue without an id"))
            continue
        if not isinstance(issue.get("title"), str) or not issue["title"].strip():
            parsed.problems.append(Problem(shown, number, f"issue {issue['id']} has no title"))
            continue
        if issue.get("status") in _SKIPPED:
            continue
        issues.append((number, issue))

    # Each issue's prerequisites: what blocks it, and (for a parent) its children.
    deps: dict[str, list[str]] = {issue["id"]: [] for _, issue in issues}
    dep_lines: dict[str, dict[str, int]] = {issue["id"]: {} for _, issue in issues}
    children: dict[str, list[str]] = {}
    for number, issue in issues:
        for dep in issue.get("dependencies") or []:
            if not isinstance(dep, dict) or not isinstance(dep.get("depends_on_id"), str):
                parsed.problems.append(Problem(shown, number, "a dependency without depends_on_id"))
                continue
            kind = dep.get("type", "blocks")
            child = dep.get("issue_id") or issue["id"]
            target = dep["depends_on_id"]
            if kind == "blocks":
                deps.setdefault(child, []).append(target)
                dep_lines.setdefault(child, {})[target] = number
            elif kind == "parent-child":
                # The child issue names its parent; the parent waits for its children.
                if target in deps:
                    deps[target].append(child)
                    dep_lines[target][child] = number
                    children.setdefault(target, []).append(child)
                else:
                    parsed.problems.append(
                        Problem(shown, number, f"issue {child} has an unknown parent {target}")
                    )
    for number, issue in issues:
        extras: dict[str, Any] = {}
        for key in ("issue_type", "labels", "assignee", "external_ref"):
            if issue.get(key):
                extras[key] = issue[key]
        if children.get(issue["id"]):
            extras["children"] = children[issue["id"]]
        try:
            if agent_kind(issue.get("agent")):
                extras["agent"] = issue["agent"]
        except ValueError as exc:
            parsed.problems.append(Problem(shown, number, f"issue {issue['id']}: {exc}"))
        try:
            if resources := task_resources(issue.get("resources")):
                extras["resources"] = resources
        except ValueError as exc:
            parsed.problems.append(Problem(shown, number, f"issue {issue['id']}: {exc}"))
        parsed.tasks.append(
            PlannedTask(
                format=FORMAT,
                path=shown,
                line=number,
                external_id=issue["id"],
                title=issue["title"],
                description=_text(issue),
                depends_on=tuple(dict.fromkeys(deps[issue["id"]])),
                priority=priority_of(issue.get("priority")),
                done=issue.get("status") == "closed",
                extras=extras,
                dep_lines=dep_lines[issue["id"]],
            )
        )
    return parsed


def _text(issue: Mapping[str, Any]) -> str:
    parts = [str(issue.get("description") or "").strip()]
    for key, heading in _CONTEXT_FIELDS:
        if isinstance(issue.get(key), str) and issue[key].strip():
            parts.append(f"## {heading}\n\n{issue[key].strip()}")
    comments = [c for c in issue.get("comments") or [] if isinstance(c, dict) and c.get("text")]
    if comments:
        parts.append(
            "## Comments\n\n"
            + "\n".join(
                f"- {c.get('author') or 'someone'} ({c.get('created_at', '')}): {c['text']}"
                for c in comments
            )
        )
    return "\n\n".join(p for p in parts if p)


# -- writing back -------------------------------------------------------------------------------


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _status(task: Task) -> str | None:
    """The status the issue should have now, or None: shoemaker did nothing to it."""
    if task.state == TaskState.DONE:
        return "closed" if task.merged_commit or task.attempts else None
    if task.state in (TaskState.RUNNING, TaskState.VERIFYING, TaskState.MERGING):
        return "in_progress"
    if task.state == TaskState.NEEDS_REVIEW:
        return "in_progress"
    if task.state in (TaskState.FAILED, TaskState.CONFLICT, TaskState.BLOCKED):
        return "blocked"
    if task.state == TaskState.CANCELLED:
        return "closed"
    return None


def close_reason(task: Task) -> str:
    if task.state == TaskState.CANCELLED:
        return f"cancelled in shoemaker: {task.reason}".rstrip(": ")
    if not task.merged_commit and not task.attempts and task.origin is not None:
        return f"done in its plan file {task.origin.path}"
    merged = f" as {task.merged_commit[:12]}" if task.merged_commit else ""
    return f"done by shoemaker (task #{task.id}), merged{merged}"


def updated_line(line: str, task: Task, now: float | None = None) -> str:
    """``line`` with the issue's status as shoemaker's task has it; unchanged (the same
    bytes) when shoemaker did nothing to it or the file already says so."""
    status = _status(task)
    if status is None:
        return line
    issue = json.loads(line)
    if issue.get("status") == status or issue.get("status") == "closed":
        return line
    stamp = _stamp(now if now is not None else (task.updated_at or time.time()))
    issue["status"] = status
    issue["updated_at"] = stamp
    if status == "closed":
        issue["closed_at"] = stamp
        issue["close_reason"] = close_reason(task)
    return json.dumps(issue, ensure_ascii=False, separators=(",", ":"))


def export(original: str, tasks: Iterable[Task]) -> str:
    """The issues file ``original`` with each issue's status as the generation's tasks have
    it; tasks that came from no issue are appended as new issues (``sm-<task id>``)."""
    by_id = {t.external_id: t for t in tasks if t.origin and t.origin.format == FORMAT}
    others = [t for t in tasks if not (t.origin and t.origin.format == FORMAT)]
    out = []
    lines = original.split("\n")
    for line in lines:
        issue_id = _id_of(line)
        task = by_id.get(issue_id) if issue_id else None
        out.append(updated_line(line, task) if task else line)
    # The issue id each task has in the file: its own for an issue, ``sm-<id>`` for the rest.
    ext = {
        t.id: t.external_id if t.origin and t.origin.format == FORMAT else f"sm-{t.id}"
        for t in tasks
    }
    new_lines = [
        json.dumps(_new_issue(t, ext), ensure_ascii=False, separators=(",", ":")) for t in others
    ]
    if new_lines:
        if out and out[-1] == "":
            out = out[:-1] + new_lines + [""]
        else:
            out += new_lines
    return "\n".join(out)


def _id_of(line: str) -> str | None:
    if not line.strip():
        return None
    try:
        issue = json.loads(line)
    except json.JSONDecodeError:
        return None
    return issue.get("id") if isinstance(issue, dict) else None


def _new_issue(task: Task, ext: Mapping[int, str]) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "id": f"sm-{task.id}",
        "title": task.title,
        "description": task.description,
        # Done in its own plan file (never run here) is done all the same.
        "status": _status(task) or ("closed" if task.state == TaskState.DONE else "open"),
        "priority": max(0, min(4, 2 - task.priority)),
        "issue_type": "task",
        "created_at": _stamp(task.created_at),
        "updated_at": _stamp(task.updated_at),
    }
    if task.origin is not None:
        issue["external_ref"] = f"{task.origin.format}:{task.external_id}"
    if issue["status"] == "closed":
        issue["closed_at"] = _stamp(task.updated_at)
        issue["close_reason"] = close_reason(task)
    if task.depends_on:
        issue["dependencies"] = [
            {"issue_id": issue["id"], "depends_on_id": ext[d], "type": "blocks"}
            for d in task.depends_on
            if d in ext
        ]
    return issue
