"""Gates decide, not the agent: per-task gates, severities, gates again after the merge (a
failure there reverts it), retries that stop when a failure repeats, unrunnable gates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from projects import check, make_project, task
from shoemaker.engine.engine import Engine
from shoemaker.engine.gates import fingerprint
from shoemaker.engine.generation import start_generation
from shoemaker.engine.recovery import landed_tasks
from shoemaker.model import TaskState


def tree_of(repo: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD^{tree}"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


READS_OK = "import sys; t = open('ok.txt').read(); print('saw', t.strip()); sys.exit(t != 'yes\\n')"


def test_a_fingerprint_ignores_times_addresses_and_worktree_paths() -> None:
    a = fingerprint("gate:t", "FAILED test_x in 0.31s at 0x7f3a2b /c/worktrees/g-1/x.py")
    b = fingerprint("gate:t", "FAILED  test_x in 1.2s at 0x7f99ff /c/worktrees/g-3/x.py")
    assert a == b
    assert a != fingerprint("gate:t", "FAILED test_y in 0.31s")
    assert a != fingerprint(
        "gate:other", "FAILED test_x in 0.31s at 0x7f3a2b /c/worktrees/g-1/x.py"
    )


async def test_an_identical_failure_stops_retrying(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [task("Never", files={"ok.txt": "no\n"}), task("After", [0])],
        gates=[check("ok", READS_OK)],
        max_retries=5,
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    never, after = project.store.list_tasks("g")
    assert never.state == TaskState.FAILED and never.attempts == 2
    assert never.reason.startswith("the same failure twice in a row")
    assert after.state == TaskState.BLOCKED


async def test_different_failures_retry_until_max_retries(fast_tmp: Path) -> None:
    attempts = {n: {"files": {"ok.txt": f"no {n}\n"}} for n in (2, 3)}
    project = make_project(
        fast_tmp,
        [task("Flaky", files={"ok.txt": "no 1\n"}, on_attempt=attempts)],
        gates=[check("ok", READS_OK)],
        max_retries=2,
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.FAILED and t.attempts == 3
    assert "(after 3 failed attempts)" in t.reason
    prompts = [r.prompt for r in project.store.runs(task_id=t.id)]
    assert "saw no 1" in prompts[1] and "saw no 2" in prompts[2]


async def test_a_gate_failing_after_the_merge_reverts_it(fast_tmp: Path) -> None:
    # In a worktree .git is a file; in the main checkout, where merges land, a directory.
    only_in_worktrees = "import os, sys; print('after merge'); sys.exit(os.path.isdir('.git'))"
    project = make_project(
        fast_tmp,
        [task("Lands then fails", files={"new.py": "NEW = 1\n"})],
        gates=[check("post", only_in_worktrees)],
        max_retries=0,
    )
    gen = start_generation(project, "g")
    start_tree = tree_of(project.root)
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.FAILED and "after the merge" in t.reason
    commits = project.git.log(f"{gen.start_commit}..{gen.branch}")
    assert [c.trailers.get("Shoemaker-Reverts-Task") for c in commits] == [str(t.id), None]
    assert landed_tasks(commits) == {}  # recovery would not call it landed
    assert tree_of(project.root) == start_tree
    assert not (project.root / "new.py").exists()
    gates = project.store.gate_results(t.id)
    assert [(g["location"], bool(g["passed"])) for g in gates] == [
        ("worktree", True),
        ("merged", False),
    ]


async def test_severities_warn_and_fix(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [
            task("Warned", files={"w.py": "W = 1\n"}),
            task(
                "Fixed",
                files={"ok.txt": "no\n", "kept.py": "KEPT = 1\n"},
                on_attempt={2: {"files": {"ok.txt": "yes\n"}}},
            ),
        ],
        gates=[
            check("lint", "import sys; sys.exit(3)", severity="warn", tasks=["Warned"]),
            check("ok", READS_OK, severity="fix", tasks=["Fix*"]),
        ],
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    warned, fixed = project.store.list_tasks("g")
    assert warned.state == TaskState.DONE and warned.attempts == 1
    assert fixed.state == TaskState.DONE and fixed.attempts == 2
    # A targeted fix keeps the first attempt's work: kept.py was written only then.
    assert (project.root / "kept.py").read_text() == "KEPT = 1\n"
    assert project.git.branches("attempt/*") == []
    second = project.store.runs(task_id=fixed.id)[1].prompt
    assert "already holds that attempt's work" in second and "saw no" in second
    names = {g["name"] for g in project.store.gate_results(warned.id)}
    assert names == {"lint"}  # the per-task gate "ok" is Fixed's only


async def test_a_gate_with_paths_runs_only_when_they_change(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [task("Docs", files={"docs/x.md": "x\n"}), task("Code", files={"c.py": "C = 1\n"})],
        gates=[check("py", "print('checked')", paths=["**/*.py"])],
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    docs, code = project.store.list_tasks("g")
    assert project.store.gate_results(docs.id) == []
    assert len(project.store.gate_results(code.id)) == 2  # worktree, then merged


def test_a_gate_naming_nothing_runnable_is_a_configuration_error(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [task("A")],
        gates=[{"name": "tests", "command": ["no-such-tool-xyz", "-q"]}],
    )
    start_generation(project, "g")
    proc = subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(project.root), "run"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "gates[0] (tests): 'no-such-tool-xyz' is not on PATH" in proc.stderr
    assert project.store.list_tasks("g") == []  # nothing ran
