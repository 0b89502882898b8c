"""Reading plan files of any format and importing them into a generation.

Importing keeps each file's ids as the tasks' external ids and matches on them: importing the
same plan twice adds nothing, and a plan file edited since updates the text of a task that has
not started. Dependencies become the task graph's; items the file says are finished are
recorded ``done`` and never run. Everything is checked first (``check.py``): a plan with a
problem imports nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoemaker.engine.project import Project
from shoemaker.engine.proposals import MAX_TITLE_CHARS, clean_text
from shoemaker.events import Notice
from shoemaker.model import NOT_STARTED_STATES, Generation, Task, TaskOrigin, TaskState
from shoemaker.sources import beads, epic_names, epics, measure_file, phases
from shoemaker.sources.check import check, in_order
from shoemaker.sources.model import FORMATS, Parsed, PlanError
from shoemaker.store import NewTask, Store, StoreError

_PARSERS = {
    "epics": epics.parse,
    "phases": phases.parse,
    "beads": beads.parse,
    "measure": measure_file.parse,
}


def detect_format(path: Path) -> str:
    """The format of a plan path: a ``.jsonl`` or ``.beads`` is beads, a ``.json`` measure's,
    a directory holding ``.beads/issues.jsonl`` beads, a master plan (or a directory holding
    one and no epic) phases, any other markdown epics."""
    if path.suffix == ".jsonl" or path.name == ".beads":
        return "beads"
    if path.suffix in (".json", ".yaml", ".yml"):
        return "measure"
    if (
        path.is_dir()
        and (path / beads.DEFAULT_FILE).is_file()
        and not any(epic_names.is_epic_file(p) for p in path.rglob("*.md"))
    ):
        return "beads"
    if path.is_file() and _is_master_plan(path):
        return "phases"
    if (
        path.is_dir()
        and not any(epic_names.is_epic_file(p) for p in path.rglob("*.md"))
        and phases.master_plans(path)
    ):
        return "phases"
    return "epics"


def _is_master_plan(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return phases.is_master_plan(f.read(8192))
    except OSError:
        return False


def parse_paths(root: Path, paths: Sequence[Path], fmt: str = "auto") -> Parsed:
    """Every planned task of ``paths`` (each in ``fmt``, or its detected format)."""
    parsed = Parsed()
    for path in paths:
        if not path.exists():
            raise PlanError(f"{path}: no such file or directory")
        kind = detect_format(path) if fmt == "auto" else fmt
        if kind not in FORMATS:
            raise PlanError(f"--format {kind}: use one of auto, {', '.join(FORMATS)}")
        parsed.extend(_PARSERS[kind](root, path))
    # Paths that overlap (a plans root and a module inside it) read some files twice: each
    # task once, so only a true duplicate id is a problem.
    seen: set[tuple[str, int, str]] = set()
    tasks = []
    for task in parsed.tasks:
        if (task.path, task.line, task.external_id) not in seen:
            seen.add((task.path, task.line, task.external_id))
            tasks.append(task)
    parsed.tasks = tasks
    parsed.files = list(dict.fromkeys(parsed.files))
    parsed.problems = list(dict.fromkeys(parsed.problems))
    return parsed


def known_ids(tasks: Sequence[Task]) -> dict[str, Task]:
    """The generation's tasks by external id (cancelled ones may be imported again)."""
    return {t.external_id: t for t in tasks if t.origin and t.state != TaskState.CANCELLED}


@dataclass
class ImportReport:
    """What an import did (or, dry, would do)."""

    added: list[Task] = field(default_factory=list)
    """The new tasks (unsaved ones, with id 0, in a dry run)."""
    updated: list[Task] = field(default_factory=list)
    done: list[Task] = field(default_factory=list)
    """Tasks not started that their plan file now says are finished: recorded ``done``."""
    unchanged: int = 0
    files: list[tuple[str, str]] = field(default_factory=list)


#: The reason recorded on a task whose plan file said it was finished before it ran.
DONE_BY_PLAN = "done in its plan file"


def _not_started(task: Task) -> bool:
    return task.attempts == 0 and task.state in NOT_STARTED_STATES


def import_plan(
    store: Store,
    root: Path,
    gen: Generation,
    paths: Sequence[Path],
    fmt: str = "auto",
    dry_run: bool = False,
) -> ImportReport:
    """Import ``paths`` into ``gen``; nothing at all when a problem is found (PlanError)."""
    parsed = parse_paths(root, paths, fmt)
    existing = known_ids(store.list_tasks(gen.name))
    problems = check(parsed, existing)
    if problems:
        more = f" (and {len(problems) - 1} more; `shoemaker plan check` lists them)"
        raise PlanError(f"{problems[0]}{more if len(problems) > 1 else ''}; nothing was imported")
    report = ImportReport(files=parsed.files)
    news: list[NewTask] = []
    position: dict[str, int] = {}
    for planned in in_order(parsed.tasks):
        title = clean_text(planned.title, multiline=False)[:MAX_TITLE_CHARS] or planned.external_id
        description = clean_text(planned.description, multiline=True)
        task = existing.get(planned.external_id)
        # Finished by hand since it was imported: recorded done, never run.
        if (
            task is not None
            and planned.done
            and _not_started(task)
            and (dry_run or store.mark_planned_done(task.id, DONE_BY_PLAN))
        ):
            report.done.append(task if dry_run else store.get_task(task.id))
            continue
        if task is not None:
            changed = (task.title, task.description) != (title, description)
            if changed and not dry_run and store.update_planned_text(task.id, title, description):
                report.updated.append(store.get_task(task.id))
            elif changed and dry_run and _not_started(task):
                report.updated.append(task)
            else:
                report.unchanged += 1
            continue
        position[planned.external_id] = len(news)
        news.append(
            NewTask(
                title,
                description,
                planned.priority,
                depends_on=tuple(existing[d].id for d in planned.depends_on if d in existing),
                after=tuple(position[d] for d in planned.depends_on if d in position),
                origin=TaskOrigin(planned.format, planned.path, planned.external_id),
                needs_review=planned.needs_review,
                plan_gates=planned.gates,
                extras=json.loads(json.dumps(planned.extras, default=str)),
                done=planned.done,
            )
        )
    if dry_run:
        report.added = [
            Task(
                0,
                gen.name,
                n.title,
                n.description,
                TaskState.DONE if n.done else TaskState.PROPOSED,
                n.priority,
                origin=n.origin,
            )
            for n in news
        ]
    elif news:
        report.added, _ = store.add_tasks(gen.name, news, gen.cycle, source="import")
    return report


def import_configured(project: Project, gen: Generation) -> list[ImportReport]:
    """Import every ``plan_sources`` entry of the configuration into ``gen``. A plan with a
    problem imports nothing and says why in a notice; the run goes on with the others."""
    reports = []
    for source in project.config.plan_sources:
        try:
            report = import_plan(
                project.store, project.root, gen, [project.root / source.path], source.format
            )
        except (PlanError, StoreError) as exc:
            # A broken plan (or one imported meanwhile by a command) waits for the next cycle.
            project.bus.emit(
                Notice(generation=gen.name, level="error", message=f"plan_sources: {exc}")
            )
            continue
        if report.added or report.updated or report.done:
            project.bus.emit(
                Notice(
                    generation=gen.name,
                    message=f"plan_sources: {source.path}: {len(report.added)} task(s) added, "
                    f"{len(report.updated)} updated, {len(report.done)} {DONE_BY_PLAN}",
                )
            )
        reports.append(report)
    return reports
