"""The demo's roadmap written as a plan a person would keep: epics, a master plan with phases,
or beads issues (``shoemaker demo --plan FORMAT``). The tasks are those the demo's ROADMAP.md
scripts for measure, each with its own rehearsal block, so the same generation runs from a
plan file instead of measure."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from shoemaker.agents.rehearsal.directives import read_blocks

#: Where each format's plan goes in the demo repository, as ``plan_sources`` names it.
PLAN_PATHS = {
    "epics": "docs/plans",
    "phases": "docs/plan/master-plan.md",
    "beads": ".beads/issues.jsonl",
}


def roadmap_tasks(roadmap: str) -> list[dict[str, Any]]:
    """The tasks the roadmap's rehearsal block proposes."""
    tasks: list[dict[str, Any]] = []
    for block in read_blocks(roadmap):
        tasks += block.get("propose") or []
    return tasks


def _text(task: dict[str, Any]) -> str:
    stitch = task.get("rehearsal")
    block = (
        f"\n<!-- rehearsal\n{yaml.safe_dump(stitch, sort_keys=False, allow_unicode=True)}-->\n"
        if stitch
        else ""
    )
    return f"{task['description'].strip()}\n{block}"


def _slug(title: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", title.lower()))[:40]


def write_plan(root: Path, fmt: str) -> str:
    """Write the roadmap's tasks as a plan of ``fmt`` into ``root``; returns its path."""
    tasks = roadmap_tasks((root / "docs/ROADMAP.md").read_text(encoding="utf-8"))
    path = PLAN_PATHS[fmt]
    if fmt == "epics":
        module = root / path / "textkit"
        module.mkdir(parents=True)
        rows = ["# textkit", "", "| Epic | Title | Status |", "|---|---|---|"]
        for n, task in enumerate(tasks, start=1):
            name = f"epic-{n:02d}-{_slug(task['title'])}.md"
            deps = [d + 1 for d in task.get("depends_on") or []]
            front = f"---\ntitle: {json.dumps(task['title'])}\ndepends_on: {deps}\n---\n"
            (module / name).write_text(
                f"{front}\n# Epic {n:02d}: {task['title']}\n\n{_text(task)}", encoding="utf-8"
            )
            rows.append(f"| [{n:02d}]({name}) | {task['title']} | 🔴 |")
        (module / "README.md").write_text("\n".join(rows) + "\n", encoding="utf-8")
    elif fmt == "phases":
        plan = root / "docs/plan"
        plan.mkdir(parents=True)
        rows = [
            "# textkit - Master Plan",
            "",
            "## Phases",
            "",
            "| Phase | Title | Focus | Risk | Status |",
            "|---|---|---|---|---|",
        ]
        for n, task in enumerate(tasks, start=1):
            name = f"phase{n}-{_slug(task['title'])}.md"
            after = ", ".join(f"Phase {d + 1}" for d in task.get("depends_on") or []) or "N/A"
            (plan / name).write_text(
                f"# Phase {n}: {task['title']}\n\n**Status:** Pending\n**Depends On:** {after}\n\n"
                f"## Tasks\n- [ ] {n}.1: {task['title']}\n\n{_text(task)}",
                encoding="utf-8",
            )
            rows.append(f"| {n} | [{task['title']}]({name}) | {task['title']} | Low | Pending |")
        (plan / "master-plan.md").write_text("\n".join(rows) + "\n", encoding="utf-8")
    else:
        beads_dir = root / ".beads"
        beads_dir.mkdir()
        lines = []
        for n, task in enumerate(tasks, start=1):
            issue: dict[str, Any] = {
                "id": f"tk-{n}",
                "title": task["title"],
                "description": _text(task),
                "status": "open",
                "priority": 2,
                "issue_type": "task",
            }
            deps = task.get("depends_on") or []
            if deps:
                issue["dependencies"] = [
                    {"issue_id": f"tk-{n}", "depends_on_id": f"tk-{d + 1}", "type": "blocks"}
                    for d in deps
                ]
            lines.append(json.dumps(issue, ensure_ascii=False, separators=(",", ":")))
        (beads_dir / "issues.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
