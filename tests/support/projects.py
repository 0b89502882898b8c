"""Projects for tests that run real generations with the rehearsal agent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents import STREAM_ARGS, directive
from scripted import Key, ScriptedRunner
from shoemaker.engine.engine import Engine
from shoemaker.engine.project import Project
from shoemaker.git import Git


def make_project(root: Path, proposals: list[dict[str, Any]], **settings: Any) -> Project:
    """A repository whose spec proposes ``proposals``, configured for the rehearsal agent."""
    git = Git.init_repo(root / "repo")
    (git.root / "docs").mkdir()
    (git.root / "docs" / "SPEC.md").write_text("# Spec\n\n" + directive(propose=proposals))
    (git.root / "app.py").write_text("VALUE = 1\n")
    config = {
        "doc_globs": ["docs/*.md"],
        "worktree_dir": str(root / "worktrees"),
        "source_globs": ["**/*.py"],
        "agent": {
            "command": sys.executable,
            "args": ["-m", "shoemaker.agents.rehearsal", *STREAM_ARGS],
            "env": {"IS_SANDBOX": "1"},
            # Bounds, never waits: an agent that answers at once ends as soon as it does. The
            # grace leaves an interrupted agent time to print its last line on a busy machine.
            # A hanging agent is the test's to stop: its clocks outlast any test on a loaded
            # machine (a test about the clocks sets its own).
            "max_time_sec": 900,
            "idle_timeout_sec": 600,
            "kill_grace_sec": 5,
        },
        **settings,
    }
    (git.root / "configuration.yaml").write_text(yaml.safe_dump(config))
    git.commit_all(git.root, "spec")
    return Project.open(git.root)


def with_agent(project: Project, **agent: Any) -> Project:
    """``project`` opened again with some of its agent settings changed (not committed)."""
    config = project.config.model_copy(
        update={"agent": project.config.agent.model_copy(update=agent)}
    )
    return Project.open(project.root, config)


def commit_agent_settings(project: Project, **agent: Any) -> Project:
    """``project`` with some of its agent settings changed in configuration.yaml, committed
    (a ``shoemaker`` process of the test's reads them there)."""
    path = project.root / "configuration.yaml"
    config = yaml.safe_load(path.read_text())
    config["agent"].update(agent)
    path.write_text(yaml.safe_dump(config))
    project.git.commit_all(project.root, "agent settings")
    return Project.open(project.root)


def scripted(project: Project, scripts: dict[Key, dict[str, Any]] | None = None) -> Project:
    """``project`` with its agents acted out by the scripted runner: no agent process starts.
    Scripts by task and attempt (or measure) override the rehearsal blocks of the prompts."""
    project.runner = ScriptedRunner(scripts or {})
    return project


def check(name: str, code: str, **settings: Any) -> dict[str, Any]:
    """A gate running a line of Python where it runs (a worktree, or the main checkout)."""
    return {"name": name, "command": [sys.executable, "-c", code], **settings}


def task(title: str, depends_on: list[int] | None = None, **stitch: Any) -> dict[str, Any]:
    return {
        "title": title,
        "description": f"Do {title}.",
        "depends_on": depends_on or [],
        "rehearsal": stitch,
    }


def cli(
    project: Project, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``shoemaker -C REPO ARGS…`` in a real process (``env``: variables to add)."""
    return subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env} if env else None,
    )


async def run_and_cancel_once_an_agent_speaks(project: Project) -> None:
    """Run one cycle and cancel it (as Ctrl-C or `k` would) at the first line a task's agent
    prints; returns once the run has ended cancelled."""
    spoke = asyncio.Event()
    project.bus.add_listener(
        lambda e: spoke.set() if e.kind == "agent_output" and e.task_id is not None else None
    )
    run = asyncio.create_task(Engine(project).run(cycles=1))
    speaking = asyncio.create_task(spoke.wait())
    # Bounded below pytest's own timeout: a run that hangs fails with what its runs say.
    await asyncio.wait({run, speaking}, timeout=CANCEL_LIMIT_S, return_when=asyncio.FIRST_COMPLETED)
    speaking.cancel()
    assert spoke.is_set() or run.done(), f"no agent spoke: {_runs(project)}"
    assert not run.done(), f"the run ended before an agent spoke: {run.result()} {_runs(project)}"
    run.cancel()
    await asyncio.wait({run}, timeout=CANCEL_LIMIT_S)
    assert run.done(), f"the cancelled run did not end: {_runs(project)}"
    with pytest.raises(asyncio.CancelledError):
        run.result()


#: How long a cancel test's run may take to speak, and then to end once cancelled.
CANCEL_LIMIT_S = 120.0


def _runs(project: Project) -> list[tuple[object, ...]]:
    """What each run of ``project`` says of itself, for a failure's message."""
    return [(r.id, r.task_id, r.pid, r.ended, r.exit_code, r.reason) for r in project.store.runs()]
