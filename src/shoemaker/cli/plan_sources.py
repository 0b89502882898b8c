"""Plans people write: ``tasks import``, ``tasks export`` and ``plan check``."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shoemaker.cli.common import _current, _open_project
from shoemaker.cli.output import _console, _esc
from shoemaker.errors import EXIT_BAD_INPUT, BadInput

if TYPE_CHECKING:
    from shoemaker.sources.model import PlannedTask


def _paths(args: argparse.Namespace) -> list[Path]:
    base = Path(args.directory)
    return [base / p for p in args.paths]


def _repository_root(directory: str) -> Path:
    """The repository around ``directory`` (plan paths are shown relative to it), else it."""
    proc = subprocess.run(
        ["git", "-C", directory, "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    return Path(proc.stdout.strip()) if proc.returncode == 0 else Path(directory).resolve()


def cmd_plan_check(args: argparse.Namespace) -> int:
    """Parse and check plan files, touching nothing: one line per problem (exit 2), or a
    summary table."""
    from rich.table import Table

    from shoemaker.sources.check import check
    from shoemaker.sources.importer import parse_paths

    root = _repository_root(args.directory)
    parsed = parse_paths(root, _paths(args), args.format)
    problems = check(parsed)
    if problems:
        for problem in sorted(problems, key=lambda p: (p.path, p.line)):
            print(problem, file=sys.stderr)
        print(f"shoemaker: {len(problems)} problem(s) in the plan", file=sys.stderr)
        return EXIT_BAD_INPUT
    # One row per beads or measure file, per module directory of epics, per master plan.
    groups: dict[tuple[str, str], list[PlannedTask]] = {}
    for task in parsed.tasks:
        where = str(Path(task.path).parent) if task.format == "epics" else task.path
        where = str(task.extras.get("master_plan", where))
        groups.setdefault((task.format, where), []).append(task)
    table = Table(
        "format", "where", "tasks", "done", "dependencies", title="plan check: no problem"
    )
    for (fmt, where), tasks in groups.items():
        table.add_row(
            fmt,
            _esc(where),
            str(len(tasks)),
            str(sum(t.done for t in tasks)),
            str(sum(len(t.depends_on) for t in tasks)),
        )
    _console().print(table)
    return 0


def cmd_tasks_import(args: argparse.Namespace) -> int:
    from shoemaker.sources.importer import DONE_BY_PLAN, import_plan

    project = _open_project(args)
    gen = _current(project)
    report = import_plan(
        project.store, project.root, gen, _paths(args), args.format, dry_run=args.dry_run
    )
    console = _console()
    verb = "would add" if args.dry_run else "added"
    for task in report.added:
        done = " (done in its plan file)" if task.state.value == "done" else ""
        ident = f"#{task.id} " if task.id else ""
        console.print(f"{verb} {ident}{_esc(task.external_id)}: {_esc(task.title)}{done}")
    for task in report.updated:
        verb_u = "would update" if args.dry_run else "updated"
        console.print(f"{verb_u} #{task.id} {_esc(task.external_id)}: its plan file changed")
    for task in report.done:
        verb_d = "would record" if args.dry_run else "recorded"
        console.print(f"{verb_d} #{task.id} {_esc(task.external_id)} done: {DONE_BY_PLAN}")
    done = f"{len(report.done)} {DONE_BY_PLAN}, " if report.done else ""
    console.print(
        f"{len(report.added)} task(s) {verb}, {len(report.updated)} updated, {done}"
        f"{report.unchanged} already there"
        + ("; nothing was written (--dry-run)" if args.dry_run else "")
    )
    return 0


def cmd_tasks_export(args: argparse.Namespace) -> int:
    from shoemaker.sources import beads
    from shoemaker.sources.model import read_plan_file

    project = _open_project(args)
    gen = _current(project)
    tasks = project.store.list_tasks(gen.name)
    sources = sorted({t.origin.path for t in tasks if t.origin and t.origin.format == "beads"})
    if len(sources) > 1:
        raise BadInput(
            f"the generation's tasks come from {len(sources)} beads files ({', '.join(sources)}); "
            "export writes one"
        )
    original = ""
    if sources:
        source = Path(sources[0])
        original = read_plan_file(
            project.root, source if source.is_absolute() else project.root / source
        )
    text = beads.export(original, tasks)
    if text and not text.endswith("\n"):
        text += "\n"
    if args.file in (None, "-"):
        sys.stdout.write(text)
        return 0
    target = Path(args.directory) / args.file
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.unlink(missing_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)  # the file appears whole or not at all
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # nothing half-written stays behind
        raise BadInput(
            f"{args.file}: cannot write it: {exc.strerror or exc}; name a file in an "
            "existing directory, or - for standard output"
        ) from None
    _console(stderr=True).print(f"wrote {len(tasks)} task(s) to {_esc(args.file)}")
    return 0
