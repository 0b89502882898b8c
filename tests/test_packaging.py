"""Packaging: prompts/ and styles/ are found from a built wheel, and --help stays Textual-free."""

from __future__ import annotations

import ast
import graphlib
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import REPO_ROOT


def _core_modules() -> list[str]:
    """Every module of the package but the dashboard's, found on disk so that a new one is
    covered without editing this test."""
    src = REPO_ROOT / "src"
    names = []
    for path in sorted((src / "shoemaker").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if "tui" in parts or "demo_repo" in parts or parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_core_modules_do_not_import_textual() -> None:
    """The engine runs headless: no module outside ``shoemaker.tui`` may pull Textual in.
    One interpreter imports them one by one and names the first that brings it."""
    modules = _core_modules()
    assert "shoemaker.engine.views" in modules and "shoemaker.cli" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    if 'textual' in sys.modules:\n"
        "        sys.exit(f'{name} imports textual')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports, at the top or inside a function (either
    way a dependency), leaving out imports only a type checker sees."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            else:
                visit([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)])

    visit(ast.parse(path.read_text()).body)
    modules = set()
    for name in found:
        while name and name not in known:  # `from pkg import name` names a module or a symbol
            name = name.rpartition(".")[0]
        if name and name != module:
            modules.add(name)
    return modules


def test_no_import_cycle_between_files() -> None:
    """Each file's imports point one way: no two modules reach each other, even through a
    deferred import (which hides a tangle rather than removing it)."""
    src = REPO_ROOT / "src"
    paths = {}
    for path in sorted((src / "shoemaker").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if "demo_repo" not in parts:
            paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: _imports(m, p, set(paths)) for m, p in paths.items()}
    for screens in ("shoemaker.tui.screens", "shoemaker.tui.task_screen"):
        # Screens receive what they show: they never reach up into the app.
        assert graph[screens] and "shoemaker.tui.app" not in graph[screens]
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


#: The files allowed to be long: the dashboard's App (its keys and workers), the stream-json
#: parser and the git wrapper, each one job with many small parts.
LONG_FILES = {"tui/app.py", "agents/streamjson.py", "git.py"}


def test_source_files_stay_small() -> None:
    package = REPO_ROOT / "src" / "shoemaker"
    sizes = {
        str(path.relative_to(package)): len(path.read_text().splitlines())
        for path in package.rglob("*.py")
    }
    too_long = {name: n for name, n in sizes.items() if n > 450 and name not in LONG_FILES}
    assert too_long == {}, "split these by job (docs/ARCHITECTURE.md lists the files)"
    ordered = sorted(sizes.values())
    assert ordered[len(ordered) // 2] < 140


def test_help_does_not_import_textual() -> None:
    code = (
        "import sys\n"
        "from shoemaker.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "sys.exit(3 if 'textual' in sys.modules else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "generation" in proc.stdout and "demo" in proc.stdout


def test_built_wheel_ships_prompts_and_styles(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        ["uv", "build", "--wheel", "--out-dir", str(dist)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("shoemaker-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # Only shoemaker comes from the wheel; its dependencies come from the test environment,
    # appended to the new environment's path (a .pth line goes after its own packages).
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run(
        [str(python), "-c", purelib], capture_output=True, text=True, check=True
    ).stdout.strip()
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (Path(site) / "test-deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run(
        ["uv", "pip", "install", "--python", str(python), "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import shoemaker, shoemaker.resources as r\n"
        "from shoemaker.agents.done_signal import SCRIPT\n"
        "print(shoemaker.__file__)\n"
        "print(SCRIPT.is_file())\n"
        "print(r.data_dir('prompts'))\n"
        "print(r.data_dir('styles'))\n"
        "print(r.render_prompt('stitch.md', {'task': {'id': 7, 'title': 'T', 'description': 'D',"
        " 'attempt': 1}, 'generation': 'g', 'branch': 'task/g-7', 'gates': [],"
        " 'previous_failure': '', 'continuing': False, 'plan_context': '',"
        " 'require_done_signal': False}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = subprocess.run(
        [str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    package_file, script, prompts, styles, *rendered = proc.stdout.splitlines()
    assert script == "True", "done.sh, the sh twin of `shoemaker done`, is not in the wheel"
    assert str(env_dir) in package_file, "shoemaker was not imported from the wheel"
    assert prompts.startswith(str(env_dir)) and prompts.endswith("_data/prompts")
    assert styles.endswith("_data/styles")
    assert "<!-- shoemaker:stitch task=7 attempt=1 -->" in rendered
    assert "# Task #7: T" in rendered
