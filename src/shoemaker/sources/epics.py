"""Epics: one markdown file per epic, with YAML front matter, under a plans root
(default ``docs/plans/``), one directory per module.

File names: ``epic-NN-slug.md`` and ``NN-epic-slug.md`` (id ``module/ENN``),
``epic-<prefix>-NN-slug.md`` (id ``module/<PREFIX>NN``, e.g. ``cli/CLI02``) and
``epic-P.E-slug.md`` (id ``module/EP.E``). Front matter: ``status``, ``priority``
(high|medium|low), ``depends_on`` (full ids, or bare numbers and short ids meaning the same
module), ``needs_review``, ``github_issue``, and optionally ``module``, ``epic``, ``title``.
An epic without ``depends_on`` depends on the highest lower-numbered epic of its module and
prefix. Its status may also come from a README table (🔴 / 🟡 / 🟢): its module's, or one
above it (the plans root's, ``docs/``, the repository's) whose row links its file or sits
under a heading naming its module.

When an epic's task merges, its front matter says ``status: complete`` and its README rows 🟢:
:func:`mark_complete` and :func:`mark_readme`, applied inside the task's own commit.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from shoemaker.sources.epic_names import (
    FULL_ID,
    EpicName,
    epic_name,
    is_epic_file,
    name_of,
    short_id,
)
from shoemaker.sources.model import (
    Parsed,
    PlannedTask,
    Problem,
    agent_kind,
    read_plan_file,
    says_done,
    shown_path,
    task_resources,
)

FORMAT = "epics"
DEFAULT_ROOT = "docs/plans"

_PRIORITIES = {"high": 1, "medium": 0, "low": -1}
EMOJI_DONE, EMOJI_OPEN = "🟢", ("🔴", "🟡")


def discover(path: Path) -> list[Path]:
    """The epic files of a plans root (every module below it), or the file itself."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.md") if is_epic_file(p) and p.is_file())
    return [path]


def split_front_matter(text: str) -> tuple[str | None, int, int]:
    """The front matter's YAML (None: there is none), and the line numbers (1-based) of its
    opening and closing ``---``."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return None, 0, 0
    for n, line in enumerate(lines[1:], start=2):
        if line.strip() in ("---", "..."):
            return "\n".join(lines[1 : n - 1]), 1, n
    return None, 0, 0


def parse(root: Path, path: Path) -> Parsed:
    """The epics of a plans root or of one epic file, with implicit dependencies resolved."""
    parsed = Parsed()
    found: list[tuple[PlannedTask, EpicName, bool]] = []
    files = discover(path)
    if not files:
        parsed.problems.append(
            Problem(
                shown_path(root, path),
                1,
                "no epic files under it (epic-NN-slug.md, NN-epic-slug.md, "
                "epic-PREFIX-NN-slug.md, epic-P.E-slug.md)",
            )
        )
    for file in files:
        one = _parse_file(root, file, parsed.problems)
        if one is not None:
            found.append(one)
            parsed.files.append((FORMAT, one[0].path))
    # Implicit dependencies: on the highest lower-numbered epic of the same module and prefix,
    # among those read and those beside them (an epic imported on its own follows its module).
    known = {(t.extras["module"], n) for t, n, _ in found}
    for file in {Path(root / t.path).parent for t, _, _ in found} if path.is_file() else ():
        for sibling in discover(file):
            name = epic_name(sibling.name)
            if name is not None:
                known.add((file.name, name))
    tasks = []
    for task, name, explicit in found:
        if not explicit:
            module = task.extras["module"]
            lower = [
                n
                for m, n in known
                if m == module and n.prefix == name.prefix and n.number < name.number
            ]
            if lower:
                task = replace(
                    task, depends_on=(f"{module}/{max(lower, key=lambda n: n.number).short}",)
                )
        tasks.append(task)
    parsed.tasks = _dotted_aliases(tasks, [(t.extras["module"], n) for t, n, _ in found])
    return parsed


def _dotted_aliases(
    tasks: list[PlannedTask], names: list[tuple[str, EpicName]]
) -> list[PlannedTask]:
    """Dependencies on ``module/E02`` where the module has no E02 but one ``epic-P.2`` file:
    that epic (its number within its phase is the id other tools give it)."""
    ids = {t.external_id for t in tasks}
    dotted: dict[str, list[str]] = {}
    for module, name in names:
        if len(name.number) == 2:
            plain = EpicName(name.prefix, (name.number[1],))
            dotted.setdefault(f"{module}/{plain.short}", []).append(f"{module}/{name.short}")
    if not dotted:
        return tasks
    out = []
    for task in tasks:
        deps = []
        for dep in task.depends_on:
            alias = dotted.get(dep, [])
            deps.append(alias[0] if dep not in ids and len(alias) == 1 else dep)
        if deps != list(task.depends_on):
            lines = {
                new: task.dep_lines.get(old, task.line)
                for old, new in zip(task.depends_on, deps, strict=True)
            }
            task = replace(task, depends_on=tuple(deps), dep_lines={**task.dep_lines, **lines})
        out.append(task)
    return out


def _parse_file(
    root: Path, file: Path, problems: list[Problem]
) -> tuple[PlannedTask, EpicName, bool] | None:
    shown = shown_path(root, file)
    text = read_plan_file(root, file)
    raw, _, end = split_front_matter(text)
    meta: dict[str, Any] = {}
    if raw is not None:
        try:
            loaded = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = 2 + (mark.line if mark is not None else 0)
            # PyYAML's message spans lines (with a caret drawing); a problem is one line.
            what = getattr(exc, "problem", None) or str(exc).split("\n", 1)[0]
            problems.append(
                Problem(shown, line, f"front matter is not valid YAML: {what}; fix the YAML")
            )
            return None
        if loaded is not None and not isinstance(loaded, dict):
            problems.append(Problem(shown, 2, "front matter must be a mapping of fields"))
            return None
        meta = loaded or {}
    lines = text.split("\n")

    def line_of(key: str) -> int:
        for n in range(1, end):
            if re.match(rf"^{re.escape(key)}\s*:", lines[n - 1]):
                return n
        return 1

    name = epic_name(file.name)
    if "epic" in meta:
        name = name_of(str(meta["epic"]), name.prefix if name else "E")
        if name is None:
            problems.append(
                Problem(shown, line_of("epic"), f"epic: {meta['epic']!r} is not an epic number")
            )
            return None
    if name is None:
        problems.append(
            Problem(
                shown,
                1,
                "not an epic file name (epic-NN-slug.md, NN-epic-slug.md, epic-PREFIX-NN-slug.md, "
                "epic-P.E-slug.md) and no `epic:` in its front matter",
            )
        )
        return None
    module = str(meta.get("module") or file.parent.name)
    external_id = f"{module}/{name.short}"

    extras: dict[str, Any] = {"module": module}
    if meta.get("github_issue") is not None:
        extras["github_issue"] = meta["github_issue"]
    try:
        if agent_kind(meta.get("agent")):
            extras["agent"] = meta["agent"]
    except ValueError as exc:
        problems.append(Problem(shown, line_of("agent"), str(exc)))
    try:
        if resources := task_resources(meta.get("resources")):
            extras["resources"] = resources
    except ValueError as exc:
        problems.append(Problem(shown, line_of("resources"), str(exc)))

    priority = 0
    if meta.get("priority") is not None:
        value = str(meta["priority"]).strip().lower()
        if value not in _PRIORITIES:
            problems.append(
                Problem(
                    shown,
                    line_of("priority"),
                    f"priority {meta['priority']!r}: use high, medium or low",
                )
            )
        priority = _PRIORITIES.get(value, 0)

    needs_review = meta.get("needs_review", False)
    if not isinstance(needs_review, bool):
        problems.append(
            Problem(shown, line_of("needs_review"), "needs_review must be true or false")
        )
        needs_review = False

    explicit = "depends_on" in meta
    deps: list[str] = []
    dep_lines: dict[str, int] = {}
    if explicit:
        deps_line = line_of("depends_on")
        raw_deps = meta["depends_on"]
        if raw_deps is None:
            items: list[Any] = []
        elif isinstance(raw_deps, list):
            items = raw_deps
        elif isinstance(raw_deps, (str, int)):
            items = [x for x in str(raw_deps).split(",") if x.strip()]
        else:
            problems.append(Problem(shown, deps_line, "depends_on must be a list of epic ids"))
            items = []
        for item in items:
            dep = _dependency(str(item).strip(), module, name.prefix)
            if dep is None:
                problems.append(
                    Problem(
                        shown,
                        deps_line,
                        f"depends_on {item!r} is not an epic id (module/E04, E04 or 4)",
                    )
                )
                continue
            deps.append(dep)
            dep_lines[dep] = _item_line(lines, deps_line, end, str(item).strip())

    status = meta.get("status")
    if status is not None:
        done = says_done(status)
    else:
        done = _readme_status(root, file, module, name) == EMOJI_DONE
    title = str(meta.get("title") or _heading(text) or file.stem)
    task = PlannedTask(
        format=FORMAT,
        path=shown,
        line=1,
        external_id=external_id,
        title=title,
        description=text,
        depends_on=tuple(deps),
        priority=priority,
        needs_review=needs_review,
        done=done,
        extras=extras,
        dep_lines=dep_lines,
    )
    return task, name, explicit


def _dependency(item: str, module: str, prefix: str) -> str | None:
    full = FULL_ID.match(item)
    if full:
        short = short_id(full["short"], "E")
        return f"{full['module']}/{short}" if short else None
    short = short_id(item, prefix)
    return f"{module}/{short}" if short else None


def _item_line(lines: list[str], key_line: int, end: int, item: str) -> int:
    """The line of a ``- item`` under the ``depends_on`` key, else the key's own line."""
    for n in range(key_line + 1, max(end, key_line + 1)):
        stripped = lines[n - 1].strip()
        if not stripped.startswith("-"):
            break
        if stripped.lstrip("- ").strip("'\"") == item:
            return n
    return key_line


_HEADING = re.compile(r"^#\s+(?:epic\s+[\w.]+\s*[:—-]\s*)?(?P<title>.+?)\s*$", re.IGNORECASE)


def _heading(text: str) -> str | None:
    _, _, end = split_front_matter(text)
    for line in text.split("\n")[end:]:
        m = _HEADING.match(line)
        if m:
            return m["title"]
    return None


def readme_of(file: Path) -> Path:
    return file.parent / "README.md"


#: A cell that names some epic: a link to an epic file, an id (``E05``, ``CLI02``), a number.
_NAMES_AN_EPIC = re.compile(r"\]\([^)]*\.md\)|(?<![\w/.])[A-Za-z]*\d+(?:\.\d+)?(?![\w.])")


def row_matches(row: str, file_name: str, name: EpicName) -> bool:
    """Whether a README table row is the epic's. The row belongs to the epic its first cell
    naming one names (by file, id or number), so a "depends on" column further right never
    makes it another epic's row."""
    if not row.lstrip().startswith("|"):
        return False
    for cell in row.strip().strip("|").split("|"):
        if _NAMES_AN_EPIC.search(cell):
            return _cell_names(cell.strip(), file_name, name)
    return False


def _cell_names(cell: str, file_name: str, name: EpicName) -> bool:
    if file_name in cell:
        return True
    if re.search(r"\]\([^)]*\.md\)", cell):
        return False  # a link to another epic's file
    number = (
        r"\.".join(str(n) for n in name.number) if len(name.number) == 2 else str(name.number[0])
    )
    if re.search(rf"(?<![\w/]){name.prefix}0*{number}(?![\w.])", cell, re.IGNORECASE):
        return True
    return re.fullmatch(rf"0*{number}", cell) is not None


def status_readmes(root: Path, file: Path) -> list[Path]:
    """The READMEs that may hold the epic's status row: its module's, then the one of each
    directory above it up to the repository (a plans root's, ``docs/``, the repository's own
    — where a status table for every module is often kept)."""
    found = []
    folder, top = file.parent, root.absolute()
    inside = file.absolute().is_relative_to(top)
    while True:
        readme = folder / "README.md"
        if readme.is_file() and not readme.is_symlink():
            found.append(readme)
        if not inside or folder.absolute() == top or folder.parent == folder:
            return found
        folder = folder.parent


_LINK_TARGET = re.compile(r"\]\((?P<target>[^)\s#]+)")


def epic_rows(text: str, readme: Path, file: Path, module: str, name: EpicName) -> list[int]:
    """The line numbers (0-based) of the README table rows that are the epic's. In its
    module's README a row names it by file, id or number; in a README above that, by a link
    to its file, or by id under a heading that names its module (``## Technical Module``)."""
    own = readme.parent.absolute() == file.parent.absolute()
    wanted = module.lower().removesuffix("-module").replace("-", " ")
    heading = ""
    rows = []
    for n, row in enumerate(text.split("\n")):
        if row.startswith("#"):
            heading = row.lstrip("#").strip().lower().replace("-", " ")
            continue
        if own:
            if row_matches(row, file.name, name):
                rows.append(n)
            continue
        if not row.lstrip().startswith("|"):
            continue
        cell = next(
            (c for c in row.strip().strip("|").split("|") if _NAMES_AN_EPIC.search(c)), None
        )
        if cell is None:
            continue
        link = _LINK_TARGET.search(cell)
        if link:
            if (readme.parent / link["target"]).resolve() == file.resolve():
                rows.append(n)
        elif (
            wanted
            and re.search(rf"(?<!\w){re.escape(wanted)}(?!\w)", heading)
            and _cell_names(cell.strip(), file.name, name)
        ):
            rows.append(n)
    return rows


def _readme_status(root: Path, file: Path, module: str, name: EpicName) -> str | None:
    for readme in status_readmes(root, file):
        lines = read_plan_file(root, readme).split("\n")
        for n in epic_rows("\n".join(lines), readme, file, module, name):
            for emoji in (EMOJI_DONE, *EMOJI_OPEN):
                if emoji in lines[n]:
                    return emoji
    return None


def mark_complete(text: str) -> str:
    """The epic's text with ``status: complete`` in its front matter (added when missing)."""
    raw, _, end = split_front_matter(text)
    lines = text.split("\n")
    if raw is None:
        return "---\nstatus: complete\n---\n" + text
    for n in range(1, end - 1):
        if re.match(r"^status\s*:", lines[n]):
            lines[n] = "status: complete"
            return "\n".join(lines)
    lines.insert(end - 1, "status: complete")
    return "\n".join(lines)


def mark_readme(text: str, readme: Path, file: Path, module: str, name: EpicName) -> str:
    """``readme``'s text with the epic's rows (:func:`epic_rows`) turned 🟢."""
    lines = text.split("\n")
    for n in epic_rows(text, readme, file, module, name):
        for emoji in EMOJI_OPEN:
            lines[n] = lines[n].replace(emoji, EMOJI_DONE)
    return "\n".join(lines)


def mark_readme_row(text: str, file_name: str, name: EpicName) -> str:
    """The README with the epic's row turned 🟢 (rows of other epics untouched)."""
    out = []
    for row in text.split("\n"):
        if row_matches(row, file_name, name):
            for emoji in EMOJI_OPEN:
                row = row.replace(emoji, EMOJI_DONE)
        out.append(row)
    return "\n".join(out)
