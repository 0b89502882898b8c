"""measure's own proposals file (``shoemaker-proposals.json``: a JSON array of ``{index,
title, description, dependency}``), read like any other plan. Its ids are ``<file stem>#<index>``
so that two files of indices never match each other's tasks."""

from __future__ import annotations

from pathlib import Path

from shoemaker.engine.proposals import ProposalError, check_proposals, parse_json_proposals
from shoemaker.sources.model import Parsed, PlannedTask, Problem, read_plan_file, shown_path

FORMAT = "measure"


def parse(root: Path, path: Path) -> Parsed:
    shown = shown_path(root, path)
    parsed = Parsed(files=[(FORMAT, shown)])
    try:
        raw = parse_json_proposals(read_plan_file(root, path), shown)
        checked = check_proposals(raw, shown)
    except ProposalError as exc:
        parsed.problems.append(Problem(shown, 1, str(exc).removeprefix(f"{shown}: ")))
        return parsed
    stem = path.stem
    for p in checked.proposals:
        parsed.tasks.append(
            PlannedTask(
                format=FORMAT,
                path=shown,
                line=1,
                external_id=f"{stem}#{p.index}",
                title=p.title,
                description=p.description,
                depends_on=tuple(f"{stem}#{d}" for d in p.depends_on),
                priority=p.priority,
                extras=p.extras,
            )
        )
    return parsed
