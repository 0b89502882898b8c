"""The demo: a small spec-driven repository and the rehearsal agent (or codex or gemini, against
their real API or a loopback mock of it), ready for a generation.

``prepare_demo`` copies ``demo_repo/`` (docs whose rehearsal directives propose six tasks with
dependencies, a tiny Python package with tests), writes a configuration that uses the rehearsal
agent and a pytest gate, and commits it all on ``main``. With ``snags``, ``demo_snags/`` adds
two tasks that need a person: one waits for review (its file matches ``review_globs``), one
fails its gate at every attempt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoemaker.config import save_config
from shoemaker.errors import BadInput
from shoemaker.git import Git

if TYPE_CHECKING:
    from shoemaker.mocks.gemini import MockGemini
    from shoemaker.mocks.responses import MockResponses

DEMO_SOURCE = Path(__file__).resolve().parent / "demo_repo"
SNAGS_SOURCE = Path(__file__).resolve().parent / "demo_snags"
#: With snags: the licence the snag task writes waits for a person's approval.
SNAGS_REVIEW_GLOBS = ["LICENSE"]
# Files that cannot keep their real name inside a Python package.
_RENAMES = {"gitignore": ".gitignore"}


class DemoError(BadInput):
    """The demo directory cannot be used."""


#: Per agent kind of the demo: its model (one the CLI knows, so that it offers its full tool
#: set), the model's price, the variables of its credentials and of its API's base URL.
DEMO_AGENTS: dict[str, dict[str, Any]] = {
    "codex": {
        "model": "gpt-5.5",
        "price": {"input": 1.25, "output": 10.0, "cache_read": 0.125},
        "keys": ("OPENAI_API_KEY", "CODEX_API_KEY"),
        "base_url": "OPENAI_BASE_URL",
        "api": "the OpenAI Responses API",
    },
    "gemini": {
        "model": "gemini-2.5-flash",
        "price": {"input": 0.3, "output": 2.5, "cache_read": 0.075},
        "keys": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        "base_url": "GOOGLE_GEMINI_BASE_URL",
        "api": "the Gemini API",
    },
}


def agent_command(kind: str) -> str:
    """The CLI of ``kind``: on PATH, else the pinned one ``./dev test`` installs in a clone."""
    found = shutil.which(kind)
    if found:
        return found
    pinned = Path(__file__).resolve().parents[2] / ".tools" / kind / "node_modules/.bin" / kind
    if pinned.exists():
        return str(pinned)
    package = {"codex": "@openai/codex", "gemini": "@google/gemini-cli"}[kind]
    raise DemoError(f"the {kind} CLI is not installed: npm install -g {package}")


@contextmanager
def demo_api(kind: str) -> Iterator[tuple[dict[str, str], str]]:
    """For ``--agent codex|gemini``: with its credentials set, nothing (the real API); without,
    a loopback mock of its API directed by the demo's rehearsal blocks, for the length of the
    block. Yields the agent's extra environment and what to tell the person."""
    spec = DEMO_AGENTS[kind]
    if any(os.environ.get(name) for name in spec["keys"]):
        yield {}, f"{kind} uses your {' / '.join(spec['keys'])} against the real API"
        return
    from shoemaker.mocks import director
    from shoemaker.mocks.gemini import mock_gemini
    from shoemaker.mocks.responses import mock_responses

    server: AbstractContextManager[MockResponses | MockGemini] = (
        mock_responses(director.codex_director)
        if kind == "codex"
        else mock_gemini(director.gemini_director)
    )
    with server as api:
        env = {spec["base_url"]: api.url, spec["keys"][0]: "demo-mock-key-not-a-secret"}
        yield (
            env,
            (
                f"no {' or '.join(spec['keys'])} set: {kind} talks to a loopback mock of "
                f"{spec['api']} at {api.url}, which answers as the demo's rehearsal blocks say"
            ),
        )


def demo_config(
    worktree_dir: str = "", agent: str = "rehearsal", agent_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The demo's configuration.yaml: the rehearsal agent (or the CLI of ``agent``, with
    ``agent_env``) and a pytest gate."""
    if agent != "rehearsal":
        spec = DEMO_AGENTS[agent]
        config = demo_config(worktree_dir)
        config["agent"] = {
            "kind": agent,
            "command": agent_command(agent),
            "model": spec["model"],
            "env": dict(agent_env or {}),
            "max_time_sec": 300,
            "idle_timeout_sec": 120,
        }
        config["prices"] = {spec["model"]: spec["price"]}
        return config
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
    directory: Path,
    worktree_dir: str = "",
    plan: str | None = None,
    *,
    snags: bool = False,
    agent: str = "rehearsal",
    agent_env: dict[str, str] | None = None,
) -> Path:
    """Create the demo repository in ``directory`` (which must be empty or absent); with
    ``plan`` (epics, phases, beads), its tasks come from a plan file of that format instead of
    measure; with ``snags``, add the tasks that wait for review and fail their gate."""
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        raise DemoError(f"{directory} is not empty; give --dir a new or empty directory")
    config = demo_config(worktree_dir, agent, agent_env)  # before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    for tree in (DEMO_SOURCE, SNAGS_SOURCE) if snags else (DEMO_SOURCE,):
        _copy_tree(tree, directory)
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
