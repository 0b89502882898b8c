"""Chaos: `shoemaker resume` after SIGKILLs at seeded random moments lands exactly what an
uninterrupted run lands.

A generation of 12 tasks with dependencies runs with three agents at once. Each round kills
`shoemaker resume` once it has printed a seeded random number of events (so the moments fall
everywhere: during recovery, measure, agents' output, gates, the merge queue), then resumes
again, until the generation is done. `pytest --chaos-runs N` sets how many kills in all
(default 20) and `--chaos-seed S` their moments; more kills than one generation can take spill
into further rounds on fresh repositories.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents import new_token, processes_with_token
from projects import make_project, task
from shoemaker.crashpoints import CRASH_ENV, CRASH_EXIT, POINTS
from shoemaker.model import TaskState
from shoemaker.store import Store

TASKS = 12
#: Kill after 1..MAX_EVENTS printed events: small enough that a generation takes many kills.
MAX_EVENTS = 30
_GATE = (
    "import ast, pathlib; "
    "[ast.parse(p.read_text()) for p in pathlib.Path('.').rglob('*.py') if '.git' not in p.parts]"
)


def _proposals(count: int) -> list[dict[str, Any]]:
    """``count`` tasks, each writing its own module that imports the modules it depends on."""
    rng = random.Random(12)
    out = []
    for i in range(count):
        deps = sorted(rng.sample(range(i), k=min(i, rng.choice([0, 1, 1, 2])))) if i else []
        imports = "".join(f"from pkg import m{d}\n" for d in deps)
        body = f'"""Module {i}."""\n\n{imports}\n\ndef value() -> int:\n    return {i}'
        body += "".join(f" + m{d}.value()" for d in deps) + "\n"
        out.append(
            task(
                f"Module {i}",
                deps,
                files={f"pkg/m{i}.py": body, f"notes/m{i}.md": f"# Module {i}\n" * 40},
                duration=0.4,
            )
        )
    return out


def _project(root: Path, count: int = TASKS) -> Path:
    project = make_project(
        root,
        _proposals(count),
        max_parallel=3,
        cycles=3,
        max_issues=count,
        worktree_dir="../worktrees",  # relative: the reference's configuration is the same
        gates=[{"name": "parse", "command": [sys.executable, "-c", _GATE]}],
    )
    (project.root / "pkg").mkdir()
    (project.root / "pkg" / "__init__.py").write_text("")
    project.git.commit_all(project.root, "package")
    project.store.close()
    return project.root


def _cli(repo: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def _kill_after_events(repo: Path, events: int, env: dict[str, str]) -> bool:
    """Start `resume`, SIGKILL it after it printed ``events`` events; False if it ended first."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoemaker", "-C", str(repo), "resume", "--events", "ndjson"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    seen = 0
    while seen < events and proc.stdout.readline():
        seen += 1
    ended_first = seen < events
    if not ended_first:
        proc.send_signal(signal.SIGKILL)
    proc.stdout.close()
    proc.wait()
    return not ended_first


def _check_generation(
    repo: Path, name: str, reference_tree: str, token: str, count: int = TASKS
) -> None:
    final = _cli(repo, "resume", env={**os.environ, "SHOEMAKER_TEST_TOKEN": token})
    assert final.returncode == 0, final.stdout + final.stderr
    store = Store(repo / ".shoemaker" / "shoemaker.db")
    tasks = store.list_tasks(name)
    assert len(tasks) == count
    left = [(t.id, t.state.value, t.reason) for t in tasks if t.state != TaskState.DONE]
    assert left == [], final.stdout[-2000:]
    assert store.integrity_check() == "ok"
    store.close()
    landed = _git(
        repo,
        "log",
        "--format=%(trailers:key=Shoemaker-Task,valueonly)",
        f"{name}-start..generation-{name}",
    ).split()
    assert sorted(landed, key=int) == [str(t.id) for t in tasks]  # one commit per task
    assert _git(repo, "rev-parse", f"generation-{name}^{{tree}}") == reference_tree
    assert _git(repo, "worktree", "list").count("\n") == 0  # only the main worktree
    assert _git(repo, "branch", "--list", "task/*", "attempt/*") == ""
    assert processes_with_token(token) == []
    history = repo / ".shoemaker" / "history" / name
    assert sorted(p.name for p in history.glob("task-*.yaml")) == [
        f"task-{t.id:04d}.yaml" for t in tasks
    ]


def _reference(root: Path, count: int) -> str:
    """The tree an uninterrupted run of the generation lands."""
    reference = _project(root, count)
    assert _cli(reference, "start", "ref").returncode == 0
    run = _cli(reference, "run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "recovered" not in run.stdout
    return _git(reference, "rev-parse", "generation-ref^{tree}")


@pytest.mark.slow
def test_a_crash_at_each_step_boundary_then_resume_lands_every_task_once(
    fast_tmp: Path,
) -> None:
    # Not random moments: the process dies (os._exit, no clean-up) at each named boundary of
    # the stitch pipeline in turn, while other agents work, and one `resume` must finish.
    count = 4
    reference_tree = _reference(fast_tmp / "reference", count)
    for point in POINTS:
        token = new_token()
        repo = _project(fast_tmp / point, count)
        assert _cli(repo, "start", "chaos").returncode == 0
        env = {**os.environ, "SHOEMAKER_TEST_TOKEN": token, CRASH_ENV: point}
        crashed = _cli(repo, "run", "--events", "ndjson", env=env)
        assert crashed.returncode == CRASH_EXIT, f"{point} never reached: {crashed.stderr}"
        try:
            _check_generation(repo, "chaos", reference_tree, token, count)
        except AssertionError as exc:
            raise AssertionError(f"after a crash at {point}: {exc}") from exc


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run(
    fast_tmp: Path, request: pytest.FixtureRequest
) -> None:
    wanted: int = request.config.getoption("--chaos-runs")
    reference_tree = _reference(fast_tmp / "reference", TASKS)

    seed: int = request.config.getoption("--chaos-seed")
    rng = random.Random(seed)
    kills, round_ = 0, 0
    while kills < wanted:
        round_ += 1
        token = new_token()
        env = {**os.environ, "SHOEMAKER_TEST_TOKEN": token}
        repo = _project(fast_tmp / f"chaos-{round_}")
        assert _cli(repo, "start", "chaos").returncode == 0
        while kills < wanted and _kill_after_events(repo, rng.randint(1, MAX_EVENTS), env):
            kills += 1
        try:
            _check_generation(repo, "chaos", reference_tree, token)
        except AssertionError as exc:
            raise AssertionError(f"round {round_} of --chaos-seed {seed}: {exc}") from exc
    assert kills == wanted
