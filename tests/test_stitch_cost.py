"""What one task costs the pipeline: store calls and git processes, counted on a real run.

A one-task generation runs through the engine with the rehearsal agent as a real process. Every
public method of the Store and every git process the project's Git runner starts is counted,
for the whole run and for the task's own pipeline (``Stitcher.stitch``, told apart by a
context variable that its threads inherit). The figures are in docs/PERFORMANCE.md; a change
that adds a store call or a git process to a task's way fails here.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from projects import make_project, task
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.stitch import Stitcher
from shoemaker.events import AgentOutput
from shoemaker.git import Git
from shoemaker.model import TaskState
from shoemaker.store import Store

#: The figures this project reached (docs/PERFORMANCE.md, "What a task costs").
STITCH_STORE_CALLS = 11
STITCH_GIT_PROCESSES = 15
RUN_STORE_CALLS = 30
RUN_GIT_PROCESSES = 24

_in_stitch: contextvars.ContextVar[bool] = contextvars.ContextVar("in_stitch", default=False)


class Tally:
    """Counts per place (the run, the task's pipeline) and per kind (store, git)."""

    def __init__(self) -> None:
        self.store: Counter[str] = Counter()
        self.git: Counter[str] = Counter()
        self.stitch_store: Counter[str] = Counter()
        self.stitch_git: Counter[str] = Counter()
        self.output_batches = 0

    def count_store(self, name: str, args: Sequence[Any]) -> None:
        if name == "append_events":
            batch = list(args[1])
            if batch and all(isinstance(e, AgentOutput) for e in batch):
                # How an agent's lines are batched depends on how fast it prints: counted
                # apart, so the figures below do not depend on timing.
                self.output_batches += 1
                return
        self.store[name] += 1
        if _in_stitch.get():
            self.stitch_store[name] += 1

    def count_git(self, args: Sequence[str]) -> None:
        words = [a for a in args if not a.startswith("-") and "=" not in a][:1]
        key = " ".join(words) or " ".join(args[:1])
        self.git[key] += 1
        if _in_stitch.get():
            self.stitch_git[key] += 1


def _wrap_store(monkeypatch: pytest.MonkeyPatch, tally: Tally) -> None:
    # Store is composed of one class per table group: its public methods are inherited.
    seen: set[str] = set()
    for cls in Store.__mro__:
        for name, attr in vars(cls).items():
            if name.startswith("_") or name in seen or not inspect.isfunction(attr):
                continue
            seen.add(name)

            def counted(
                *args: Any, _name: str = name, _f: Callable[..., Any] = attr, **kw: Any
            ) -> Any:
                tally.count_store(_name, args)
                return _f(*args, **kw)

            monkeypatch.setattr(Store, name, functools.wraps(attr)(counted))


def _wrap_git(monkeypatch: pytest.MonkeyPatch, tally: Tally) -> None:
    run_in = Git._run_in
    run_binary = Git._run_binary

    def counted_run_in(cwd: Path, args: Sequence[str], **kw: Any) -> Any:
        tally.count_git(args)
        return run_in(cwd, args, **kw)

    def counted_binary(self: Git, args: Sequence[str], data: bytes) -> bytes:
        tally.count_git(args)
        return run_binary(self, args, data)

    monkeypatch.setattr(Git, "_run_in", staticmethod(counted_run_in))
    monkeypatch.setattr(Git, "_run_binary", counted_binary)


def _mark_stitch(monkeypatch: pytest.MonkeyPatch) -> None:
    stitch = Stitcher.stitch

    async def marked(self: Stitcher, *args: Any, **kw: Any) -> Any:
        _in_stitch.set(True)  # this task's context only, and the threads it starts
        return await stitch(self, *args, **kw)

    monkeypatch.setattr(Stitcher, "stitch", marked)


def _show(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


async def test_one_task_costs_no_more_store_calls_and_git_processes_than_measured(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(fast_tmp, [task("Add a", files={"a.py": "A = 1\n"})])
    start_generation(project, "g")
    tally = Tally()
    _wrap_store(monkeypatch, tally)
    _wrap_git(monkeypatch, tally)
    _mark_stitch(monkeypatch)

    report = await Engine(project).run(cycles=1)

    monkeypatch.undo()
    (done,) = project.store.list_tasks("g")
    assert (report.merged, done.state) == (1, TaskState.DONE)
    assert tally.output_batches > 0  # the agent's lines went through the store
    figures = (
        f"stitch: {sum(tally.stitch_store.values())} store calls ({_show(tally.stitch_store)}); "
        f"{sum(tally.stitch_git.values())} git processes ({_show(tally.stitch_git)})\n"
        f"run: {sum(tally.store.values())} store calls ({_show(tally.store)}); "
        f"{sum(tally.git.values())} git processes ({_show(tally.git)})"
    )
    print(figures)
    assert sum(tally.stitch_store.values()) == STITCH_STORE_CALLS, figures
    assert sum(tally.stitch_git.values()) == STITCH_GIT_PROCESSES, figures
    assert sum(tally.store.values()) == RUN_STORE_CALLS, figures
    assert sum(tally.git.values()) == RUN_GIT_PROCESSES, figures
