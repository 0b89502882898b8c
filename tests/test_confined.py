"""Files shoemaker reads from a repository or a worktree never lead out of it: a committed
symlink to a file elsewhere is refused with the file named, and what it points to reaches
neither the prompt, the store nor the screen. Templates there render in a Jinja sandbox."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from agents import STREAM_ARGS
from projects import cli, make_project, task
from shoemaker.confined import Refused, read_text
from shoemaker.engine.generation import start_generation
from shoemaker.engine.measure import MeasureError, collect_docs, measure
from shoemaker.engine.plans import make_plan
from shoemaker.engine.project import Project
from shoemaker.errors import GenerationError
from shoemaker.resources import ResourceError, render_prompt

SECRET = "TOP-SECRET-6f1d2c"


def secret_file(tmp: Path, text: str = f"{SECRET}\n") -> Path:
    path = tmp / "elsewhere" / "secret.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def stored(project: Project) -> bytes:
    """Every byte of the store (database and its write-ahead log)."""
    return b"".join(p.read_bytes() for p in sorted(project.state_dir.glob("shoemaker.db*")))


def linked_doc_project(tmp: Path) -> Project:
    project = make_project(tmp, [task("A")])
    (project.root / "docs" / "notes.md").symlink_to(secret_file(tmp))
    (project.root / "docs" / "alias.md").symlink_to("SPEC.md")  # inside: fine
    project.git.commit_all(project.root, "notes")
    return project


def test_measure_refuses_a_doc_linked_out_of_the_repository(fast_tmp: Path) -> None:
    project = linked_doc_project(fast_tmp)
    start_generation(project, "g")
    proc = cli(project, "measure")
    assert proc.returncode == 2, proc.stderr
    assert "doc_globs: docs/notes.md is a link to a file outside" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert project.store.runs() == [] and project.store.list_tasks("g") == []
    assert SECRET.encode() not in stored(project)


async def test_the_engine_refuses_it_too_and_follows_links_inside(fast_tmp: Path) -> None:
    project = linked_doc_project(fast_tmp)
    gen = start_generation(project, "g")
    # A link merged during a run is met by the next measure, not by the command's check.
    with pytest.raises(MeasureError, match=r"docs/notes\.md is a link") as caught:
        await measure(project, gen, 1)
    assert SECRET not in str(caught.value)
    assert project.store.runs() == [] and SECRET.encode() not in stored(project)
    (project.root / "docs" / "notes.md").unlink()
    docs, _ = collect_docs(project.root, ["docs/*.md"], 10_000)
    assert [d.path for d in docs] == ["docs/SPEC.md", "docs/alias.md"]


def link_agent(tmp: Path, target: Path) -> dict[str, object]:
    """An agent that answers with its proposals file linked to ``target``."""
    script = tmp / "link_agent.py"
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "proposals written",
        "total_cost_usd": 0.0,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    script.write_text(
        textwrap.dedent(f"""\
        import json, os, sys
        sys.stdin.read()
        os.symlink({str(target)!r}, "shoemaker-proposals.json")
        print(json.dumps({result!r}), flush=True)
        """)
    )
    return {"command": sys.executable, "args": [str(script), *STREAM_ARGS], "kill_grace_sec": 2}


async def test_a_proposals_file_linked_out_of_the_worktree_is_refused(fast_tmp: Path) -> None:
    proposals = [{"index": 0, "title": SECRET, "description": "x", "dependency": -1}]
    target = secret_file(fast_tmp, json.dumps(proposals))
    project = make_project(fast_tmp, [], agent=link_agent(fast_tmp, target))
    gen = start_generation(project, "g")
    with pytest.raises(MeasureError, match=r"shoemaker-proposals\.json is a link") as caught:
        await measure(project, gen, 1)
    assert SECRET not in str(caught.value) and "nothing was added" in str(caught.value)
    (run,) = project.store.runs()
    assert run.ok  # the agent did its part; its answer is what is refused
    assert project.store.list_tasks("g") == [] and SECRET.encode() not in stored(project)


def test_a_seed_template_linked_out_of_the_repository_refuses_start(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [], reset_sources=True, seed_files={"x.py": "seed.j2"})
    (project.root / "seed.j2").symlink_to(secret_file(fast_tmp))
    project.git.commit_all(project.root, "seed")
    with pytest.raises(GenerationError, match=r"seed_files: x\.py: template seed\.j2 is a link"):
        start_generation(project, "g")
    assert project.store.list_generations() == [] and not (project.root / "x.py").exists()


def test_a_seed_template_cannot_reach_python(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [], reset_sources=True, seed_files={"x.py": "seed.j2"})
    (project.root / "seed.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    project.git.commit_all(project.root, "seed")
    with pytest.raises(GenerationError, match=r"seed_files: x\.py: template seed\.j2: .*unsafe"):
        start_generation(project, "g")
    assert project.store.list_generations() == []


def test_a_prompt_template_linked_out_of_the_repository_is_refused(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [])
    prompts = project.root / ".shoemaker" / "prompts"
    prompts.mkdir(parents=True)
    (prompts / "stitch.md").symlink_to(secret_file(fast_tmp))
    with pytest.raises(ResourceError, match=r"\.shoemaker/prompts/stitch\.md is a link") as caught:
        render_prompt("stitch.md", {}, repo=project.root)
    assert SECRET not in str(caught.value)


async def test_a_plans_directory_linked_out_of_the_repository_is_refused(fast_tmp: Path) -> None:
    project = make_project(fast_tmp, [task("A")])
    gen = start_generation(project, "g")
    outside = fast_tmp / "elsewhere-plans"
    outside.mkdir()
    (project.state_dir / "plans").symlink_to(outside)
    with pytest.raises(GenerationError, match=r"\.shoemaker/plans leads out of the repository"):
        await make_plan(project, gen)
    assert project.store.list_plans() == [] and project.store.runs() == []
    assert list(outside.iterdir()) == []


def test_only_regular_files_are_read(fast_tmp: Path) -> None:
    os.mkfifo(fast_tmp / "pipe")  # reading it would block for ever
    with pytest.raises(Refused, match="pipe is not a regular file"):
        read_text(fast_tmp, fast_tmp / "pipe")
