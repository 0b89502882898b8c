"""The demo and the headless CLI, end to end, as a person would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents import new_token, processes_with_token
from shoemaker.engine.project import Project
from shoemaker.events import parse_event
from shoemaker.git import Git


def shoemaker(
    *args: str, token: str | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOEMAKER_TEST_TOKEN": token or new_token()}
    done: subprocess.CompletedProcess[str] = subprocess.run(
        [sys.executable, "-m", "shoemaker", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        **kw,
    )  # type: ignore[call-overload]
    return done


@pytest.mark.slow
def test_headless_demo_merges_every_task_and_the_generation(fast_tmp: Path) -> None:
    token = new_token()
    demo = fast_tmp / "demo"
    proc = shoemaker("demo", "--headless", "--dir", str(demo), token=token)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert processes_with_token(token) == []
    out = proc.stdout
    assert "demo summary" in out and "6/6" in out and "tasks failed" in out
    for heading in ("tokens in / out", "cost", "LOC added / removed", "wall time"):
        assert heading in out

    git = Git(demo)
    assert git.current_branch() == "main" and git.is_clean()
    assert set(git.tags()) == {"demo-start", "demo-finished", "demo-merged"}
    task_commits = [
        c for c in git.log("demo-start..demo-finished") if "Shoemaker-Task" in c.trailers
    ]
    assert len(task_commits) == len(git.log("demo-start..demo-finished")) == 6
    assert sorted(int(c.trailers["Shoemaker-Task"]) for c in task_commits) == [1, 2, 3, 4, 5, 6]
    for c in task_commits:
        assert float(c.trailers["Shoemaker-Cost-USD"]) > 0
        assert c.trailers["Shoemaker-LOC-After"].startswith("production=")
    # The demo package's own tests pass on the merged result.
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=demo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert tests.returncode == 0, tests.stdout
    assert "15 passed" in tests.stdout
    listing = shoemaker("-C", str(demo), "generation", "list", "--json")
    (gen,) = json.loads(listing.stdout)
    assert (gen["state"], gen["tasks_done"], gen["tasks_total"]) == ("stopped", 6, 6)
    assert gen["cost_usd"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("agent", "keys"),
    [
        ("codex", ("OPENAI_API_KEY", "CODEX_API_KEY")),
        ("gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY")),
    ],
)
def test_headless_demo_with_codex_or_gemini_and_no_key_runs_against_their_mock(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch, agent: str, keys: tuple[str, ...]
) -> None:
    for key in keys:
        monkeypatch.delenv(key, raising=False)
    token = new_token()
    demo = fast_tmp / "demo"
    proc = shoemaker("demo", "--headless", "--agent", agent, "--dir", str(demo), token=token)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert f"demo: no {keys[0]} or {keys[1]} set: {agent} talks to a loopback mock" in proc.stderr
    assert "6/6" in proc.stdout and processes_with_token(token) == []
    listing = shoemaker("-C", str(demo), "generation", "list", "--json")
    (gen,) = json.loads(listing.stdout)
    assert (gen["state"], gen["tasks_done"], gen["tasks_total"]) == ("stopped", 6, 6)
    # The real CLI did the work, priced from its tokens at the demo's price of its model.
    runs = Project.open(demo).store.runs()
    assert {(r.agent_kind, r.ok) for r in runs} == {(agent, True)} and len(runs) >= 7
    assert all(r.cost_estimated and r.cost_usd > 0 for r in runs)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=demo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert "15 passed" in tests.stdout, tests.stdout


def test_prepare_with_codex_and_no_key_is_refused(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("OPENAI_API_KEY", "CODEX_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    proc = shoemaker("demo", "--prepare", str(fast_tmp / "d"), "--agent", "codex")
    assert proc.returncode == 2
    assert "--prepare with --agent codex needs OPENAI_API_KEY or CODEX_API_KEY" in proc.stderr
    assert not (fast_tmp / "d").exists()


@pytest.mark.slow
def test_headless_demo_with_snags_leaves_what_needs_a_person_open(fast_tmp: Path) -> None:
    token = new_token()
    demo = fast_tmp / "demo"
    proc = shoemaker("demo", "--headless", "--snags", "--dir", str(demo), token=token)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr  # a task failed its gate
    assert processes_with_token(token) == []
    out = proc.stdout
    assert "6/8" in out and "tasks awaiting review" in out
    assert "not merged: generation-demo stays open (active)" in out
    listing = shoemaker("-C", str(demo), "tasks")
    assert "needs_review" in listing.stdout or "needs review" in listing.stdout
    git = Git(demo)
    assert git.current_branch() == "generation-demo" and "demo-merged" not in git.tags()


@pytest.mark.slow
def test_run_prints_the_event_stream_as_ndjson(fast_tmp: Path) -> None:
    demo = fast_tmp / "demo"
    assert shoemaker("demo", "--prepare", str(demo)).returncode == 0
    assert shoemaker("-C", str(demo), "generation", "start", "nd").returncode == 0
    proc = shoemaker("-C", str(demo), "run", "--cycles", "1", "--events", "ndjson")
    assert proc.returncode == 0, proc.stderr
    events = [parse_event(line) for line in proc.stdout.splitlines()]
    kinds = [e.kind for e in events]
    assert kinds[0] == "generation_state" and kinds[-1] == "generation_state"
    assert kinds.count("merge_result") == 6 and "agent_output" in kinds
    assert all(e.generation == "nd" for e in events)
    assert "run finished after 1 cycle(s): 6 merged" in proc.stderr
    tasks = json.loads(shoemaker("-C", str(demo), "tasks", "--json").stdout)
    assert [t["state"] for t in tasks] == ["done"] * 6


def test_prepare_refuses_a_non_empty_directory(fast_tmp: Path) -> None:
    (fast_tmp / "file").write_text("x")
    proc = shoemaker("demo", "--prepare", str(fast_tmp))
    assert proc.returncode == 2 and "not empty" in proc.stderr


def test_stop_without_a_generation_says_what_to_do(fast_tmp: Path) -> None:
    demo = fast_tmp / "demo"
    shoemaker("demo", "--prepare", str(demo))
    proc = shoemaker("-C", str(demo), "generation", "stop")
    assert proc.returncode == 2
    assert "no generation is open; start one with `shoemaker start`" in proc.stderr


def test_init_writes_a_commented_file(fast_tmp: Path) -> None:
    subprocess.run(["git", "init", "-q", str(fast_tmp)], check=True)
    assert shoemaker("-C", str(fast_tmp), "init").returncode == 0
    text = (fast_tmp / "configuration.yaml").read_text()
    assert text.startswith("# shoemaker configuration")
    again = shoemaker("-C", str(fast_tmp), "init")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_run_without_a_generation_is_bad_input(fast_tmp: Path) -> None:
    demo = fast_tmp / "demo"
    shoemaker("demo", "--prepare", str(demo))
    for verb in ("run", "measure"):
        proc = shoemaker("-C", str(demo), verb)
        assert proc.returncode == 2 and "no generation is open" in proc.stderr
