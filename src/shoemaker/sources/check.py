"""Checking planned tasks as a whole, before anything is imported: duplicate ids, dependencies
on ids nobody has, dependency cycles (each named), gates without a command. A format may add
checks of its own (:data:`FORMAT_CHECKS`; the phases format's missing phase files, say)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from graphlib import CycleError, TopologicalSorter

from shoemaker.sources.model import Parsed, PlannedTask, Problem

#: Format → extra checks over everything parsed in that format.
FORMAT_CHECKS: dict[str, list[Callable[[Parsed], list[Problem]]]] = {}

#: At most this many cycles are named (each costs a sort of the graph).
MAX_CYCLES = 20


def check(parsed: Parsed, known: Collection[str] = ()) -> list[Problem]:
    """Every problem of ``parsed``: what its parsers found, then these checks. ``known``:
    external ids the generation already has, which dependencies may name."""
    problems = list(parsed.problems)
    first: dict[str, PlannedTask] = {}
    for task in parsed.tasks:
        if task.external_id in first:
            other = first[task.external_id]
            problems.append(
                Problem(
                    task.path,
                    task.line,
                    f"duplicate id {task.external_id} (also at {other.where()})",
                )
            )
        else:
            first[task.external_id] = task
    for task in parsed.tasks:
        for dep in task.depends_on:
            if dep == task.external_id:
                problems.append(
                    Problem(
                        task.path, task.dep_lines.get(dep, task.line), f"{dep} depends on itself"
                    )
                )
            elif dep not in first and dep not in known:
                problems.append(
                    Problem(
                        task.path,
                        task.dep_lines.get(dep, task.line),
                        f"{task.external_id} depends on {dep}, which no plan file or task has",
                    )
                )
        for gate in task.gates:
            if not gate.command.strip():
                problems.append(
                    Problem(
                        task.path,
                        task.dep_lines.get(f"gate:{gate.name}", task.line),
                        f"gate {gate.name!r} of {task.external_id} has no command: name what "
                        "shoemaker runs, e.g. `command: pytest -q`",
                    )
                )
    problems += cycles(parsed.tasks)
    for fmt in sorted({t.format for t in parsed.tasks} | {f for f, _ in parsed.files}):
        for extra in FORMAT_CHECKS.get(fmt, []):
            problems += extra(parsed)
    return problems


def cycles(tasks: list[PlannedTask]) -> list[Problem]:
    """One problem per dependency cycle, naming its ids in order, at its first task's line."""
    by_id = {t.external_id: t for t in tasks}
    graph = {
        t.external_id: {d for d in t.depends_on if d in by_id and d != t.external_id} for t in tasks
    }
    found = []
    for _ in range(MAX_CYCLES):
        try:
            TopologicalSorter(graph).prepare()
            break
        except CycleError as exc:
            cycle: list[str] = list(exc.args[1])
            # graphlib lists each node after the one it depends on; named the other way
            # round it reads "a depends on b depends on … a".
            task = by_id[cycle[0]]
            path = " → ".join(reversed(cycle))
            found.append(Problem(task.path, task.line, f"dependency cycle: {path}"))
            # Each node depends on the one before it; one edge gone, the next cycle shows.
            graph[cycle[1]].discard(cycle[0])
    return found


def in_order(tasks: list[PlannedTask]) -> list[PlannedTask]:
    """Dependencies first (the tasks are checked: no cycle), in file order otherwise."""
    by_id = {t.external_id: t for t in tasks}
    sorter = TopologicalSorter(
        {t.external_id: [d for d in t.depends_on if d in by_id] for t in tasks}
    )
    position = {t.external_id: n for n, t in enumerate(tasks)}
    sorter.prepare()
    order: list[PlannedTask] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(by_id[i] for i in ready)
        sorter.done(*ready)
    return order
