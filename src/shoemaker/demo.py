"""The demo: a small spec-driven repository and the rehearsal agent, ready for a generation.

``prepare_demo`` copies ``demo_repo/`` (docs whose rehearsal directives propose six tasks with
dependencies, a tiny Python package with tests), writes a configuration that uses the rehearsal
agent and a pytest gate, and commits it all on ``main``. With ``snags``, ``demo_snags/`` adds
two tasks that need a person: one waits for review (its file matches ``review_globs``), one
fails its gate at every attempt.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from shoemaker.config import save_config
from shoemaker.errors import BadInput
from shoemaker.git import Git

DEMO_SOURCE = Path(__file__).resolve().parent / "demo_repo"
SNAGS_SOURCE = Path(__file__).resolve().parent / "demo_snags"
#: With snags: the licence the snag task writes waits for a person's approval.
SNAGS_REVIEW_GLOBS = ["LICENSE"]
# Files that cannot keep their real name inside a Python package.
_RENAMES = {"gitignore": ".gitignore"}


class DemoError(BadInput):
    """The demo directory cannot be used."""


def demo_config(worktree_dir: str = "") -> dict[str, Any]:
    """The demo's configuration.yaml: the rehearsal agent and a pytest gate."""
    return {
        "source_dirs": ["textkit"],
        "doc_globs": ["README.md", "docs/**/*.md"],
        "cycles": 3,
        "max_issues": 10,
        "max_retries": 1,
        "worktree_dir": worktree_dir,
        "agent": {
            "command": "shoemaker-rehearsal",
            "model": "claude-sonnet-4-5",
            # The real CLI refuses --dangerously-skip-permissions as root unless told it runs
            # in a sandbox; the rehearsal agent behaves the same way.
            "env": {"IS_SANDBOX": "1"},
            "max_time_sec": 120,
            "idle_timeout_sec": 60,
        },
        "gates": [
            {"name": "tests", "command": ["python", "-m", "pytest", "-q"], "timeout_sec": 120}
        ],
    }


def prepare_demo(
    directory: Path, worktree_dir: str = "", plan: str | None = None, *, snags: bool = False
) -> Path:
    """Create the demo repository in ``directory`` (which must be empty or absent); with
    ``plan`` (epics, phases, beads), its tasks come from a plan file of that format instead of
    measure; with ``snags``, add the tasks that wait for review and fail their gate."""
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        raise DemoError(f"{directory} is not empty; give --dir a new or empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    for tree in (DEMO_SOURCE, SNAGS_SOURCE) if snags else (DEMO_SOURCE,):
        _copy_tree(tree, directory)
    config = demo_config(worktree_dir)
    if snags:
        config["review_globs"] = SNAGS_REVIEW_GLOBS
    if plan is not None:
        from shoemaker.sources.demo_plans import write_plan

        path = write_plan(directory, plan)
        config.update(measure="off", plan_sources=[{"path": path, "format": plan}])
    save_config(directory, config)
    git = Git.init_repo(directory, "main")
    git.commit_all(directory, "textkit: docs and a package skeleton", "", {})
    return directory


def _copy_tree(source_root: Path, directory: Path) -> None:
    for source in sorted(source_root.rglob("*")):
        if "__pycache__" in source.parts or source.is_dir():
            continue
        rel = source.relative_to(source_root)
        target = directory / rel.parent / _RENAMES.get(rel.name, rel.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
