"""The command line answers without loading what its command does not use.

Wall time on a shared machine says little (``benchmarks/startup.py`` measures it); which
modules a command imported says what it costs, whatever the machine's load. Each command runs
in a fresh interpreter, through ``main`` as ``shoemaker`` would, and reports the heavy
packages found in ``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from projects import make_project
from shoemaker.engine.generation import start_generation
from shoemaker.store import NewTask

#: What only running agents, the dashboard, rendering a prompt or a generation name needs.
HEAVY = ("asyncio", "textual", "jinja2", "git", "gitdb", "orjson", "shoemaker.agents.runner")

#: What a command that only lists the store's rows does not need either: the event models and
#: the bus (what writes need), and the configuration's models (what the engine needs; `tasks
#: --json` loads them for the gates it lists).
ENGINE = ("shoemaker.events", "shoemaker.engine.bus", "shoemaker.engine.project")
MODELS = ("pydantic", "shoemaker.config.models")

REPORT = (
    "import contextlib, io, json, sys\n"
    "{prelude}\n"
    "from shoemaker.cli import main\n"
    "out = io.StringIO()\n"
    "with contextlib.redirect_stdout(out):\n"
    "    try:\n"
    "        code = main(sys.argv[1:])\n"
    "    except SystemExit as exc:\n"
    "        code = exc.code\n"
    "heavy = [name for name in {heavy!r} if name in sys.modules]\n"
    "print(json.dumps({{'code': code, 'out': out.getvalue(), 'heavy': heavy}}))\n"
)


def imported(*args: str, prelude: str = "", heavy: tuple[str, ...] = HEAVY) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", REPORT.format(heavy=heavy, prelude=prelude), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, object] = json.loads(proc.stdout)
    return report


def test_help_imports_no_heavy_package() -> None:
    report = imported("--help")
    assert report["code"] == 0 and "generation" in str(report["out"])
    assert report["heavy"] == []


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_tasks_imports_no_heavy_package(fast_tmp: Path, json_flag: list[str]) -> None:
    project = make_project(fast_tmp, [])
    start_generation(project, "g")
    project.store.add_tasks("g", [NewTask("first"), NewTask("second", after=(0,))], 1, "test")
    project.close()
    shunned = HEAVY + ENGINE + (() if json_flag else MODELS)
    report = imported("-C", str(project.root), "tasks", *json_flag, heavy=shunned)
    assert report["code"] == 0
    assert "first" in str(report["out"]) and "second" in str(report["out"])
    assert report["heavy"] == []
    if json_flag:  # the gates each task would run come from the whole configuration
        assert json.loads(str(report["out"]))[0]["gates"] == []


def test_the_check_sees_a_heavy_import() -> None:
    """The check can fail: what a command (here, the one line before it) imports is found."""
    report = imported("--help", prelude="import asyncio, jinja2")
    assert report["heavy"] == ["asyncio", "jinja2"]


def test_the_check_sees_the_models_of_a_command_that_opens_the_engine(fast_tmp: Path) -> None:
    """`list` opens the project as the engine does: the models and the bus are found."""
    project = make_project(fast_tmp, [])
    project.close()
    report = imported("-C", str(project.root), "list", heavy=ENGINE + MODELS)
    assert report["code"] == 0
    assert report["heavy"] == [*ENGINE, *MODELS]
