"""Gates decide, not the agent: per-task gates, severities, gates again after the merge (a
failure there reverts it), retries that stop when a failure repeats, unrunnable gates."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents import START_SEC, new_token, processes_with_token, sleepers
from projects import check, make_project, scripted, task
from shoemaker.agents.leftovers import RunCgroup
from shoemaker.config import Config, GateConfig
from shoemaker.engine.engine import Engine
from shoemaker.engine.gates import GateBox, fingerprint, run_gate
from shoemaker.engine.generation import start_generation
from shoemaker.engine.merge_queue import MergeQueue
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
    project = scripted(
        make_project(
            fast_tmp,
            [task("Never", files={"ok.txt": "no\n"}), task("After", [0])],
            gates=[check("ok", READS_OK)],
            max_retries=5,
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    never, after = project.store.list_tasks("g")
    assert never.state == TaskState.FAILED and never.attempts == 2
    assert never.reason.startswith("the same failure twice in a row")
    assert after.state == TaskState.BLOCKED


async def test_different_failures_retry_until_max_retries(fast_tmp: Path) -> None:
    attempts = {n: {"files": {"ok.txt": f"no {n}\n"}} for n in (2, 3)}
    project = scripted(
        make_project(
            fast_tmp,
            [task("Flaky", files={"ok.txt": "no 1\n"}, on_attempt=attempts)],
            gates=[check("ok", READS_OK)],
            max_retries=2,
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.FAILED and t.attempts == 3
    assert "(after 3 failed attempts)" in t.reason
    prompts = [r.prompt for r in project.store.runs(task_id=t.id)]
    assert "saw no 1" in prompts[1] and "saw no 2" in prompts[2]


async def test_a_gate_failing_after_the_merge_reverts_it(fast_tmp: Path) -> None:
    # A task's worktree is on its branch; the merge is checked in a detached worktree of it.
    only_in_worktrees = (
        "import subprocess, sys; print('after merge'); "
        "sys.exit(subprocess.run(['git', 'symbolic-ref', '-q', 'HEAD']).returncode)"
    )
    project = scripted(
        make_project(
            fast_tmp,
            [task("Lands then fails", files={"new.py": "NEW = 1\n"})],
            gates=[check("post", only_in_worktrees)],
            max_retries=0,
        )
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
    assert [(g.location, g.passed) for g in gates] == [
        ("worktree", True),
        ("merged", False),
    ]
    assert [w.path for w in project.git.worktrees()] == [project.root]  # none left


WHERE = (
    "import os, subprocess; print('cwd', os.getcwd()); "
    "print('head', subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, "
    "text=True).stdout.strip())"
)


async def test_the_gates_after_the_merge_run_in_a_worktree_of_it_not_in_the_checkout(
    fast_tmp: Path,
) -> None:
    project = scripted(
        make_project(
            fast_tmp, [task("Lands", files={"new.py": "NEW = 1\n"})], gates=[check("where", WHERE)]
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.DONE, t.reason
    merged = next(g for g in project.store.gate_results(t.id) if g.location == "merged")
    lines = dict(line.split(" ", 1) for line in merged.output_tail.splitlines())
    assert Path(lines["cwd"]) != project.root and project.root not in Path(lines["cwd"]).parents
    assert lines["head"] == t.merged_commit  # the merge commit itself, detached
    assert not Path(lines["cwd"]).exists()  # removed after its gates
    assert [w.path for w in project.git.worktrees()] == [project.root]


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup", "marker"])
async def test_a_process_a_gate_detaches_dies_with_it(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch, cgroup: bool
) -> None:
    if not cgroup:
        monkeypatch.setattr(RunCgroup, "create", classmethod(lambda cls: None))
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    # setsid's child leaves the gate's process group and holds its output pipe open.
    gate = GateConfig(name="detach", command=["setsid", "-f", "sleep", "300"], timeout_sec=120)
    outcome = await run_gate(gate, fast_tmp)
    assert outcome.passed and outcome.exit_code == 0, outcome.reason
    assert sleepers(token) == [] and processes_with_token(token) == []


async def test_a_gate_that_dies_with_its_parent_runs_only_once_its_pid_is_told(
    fast_tmp: Path,
) -> None:
    # On a cluster's worker, being told the pid puts in place what kills the gate's group
    # if the worker dies: nothing of the gate may run before that, or it could outlive it.
    ran = fast_tmp / "ran"
    gate = GateConfig(name="first", command=["touch", str(ran)], timeout_sec=120)
    seen: list[bool] = []

    def told(pid: int) -> None:
        # Bounded: were the gate free to run, its first act would show well within this.
        deadline = time.monotonic() + 3
        while not ran.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        seen.append(ran.exists())

    outcome = await run_gate(gate, fast_tmp, die_with_parent=True, on_pid=told)
    assert outcome.passed, outcome.reason
    assert seen == [False] and ran.exists()


@pytest.mark.parametrize("die_with_parent", [False, True])
async def test_a_gate_whose_program_is_missing_says_so(
    fast_tmp: Path, die_with_parent: bool
) -> None:
    # On a cluster's worker a gate starts behind a shell that waits for its go: the missing
    # program is said as it is said for a gate started directly, not as the shell's 127.
    for program, why in (
        ("no-such-program-here", "No such file or directory"),
        ("./missing.sh", "No such file or directory"),
    ):
        gate = GateConfig(name="tests", command=[program, "-q"], timeout_sec=120)
        outcome = await run_gate(gate, fast_tmp, die_with_parent=die_with_parent)
        assert not outcome.passed and outcome.exit_code is None
        assert outcome.reason == (
            f"gate 'tests' cannot run {program!r}: {why}; fix its command in configuration.yaml"
        )


async def test_severities_warn_and_fix(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
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
    names = {g.name for g in project.store.gate_results(warned.id)}
    assert names == {"lint"}  # the per-task gate "ok" is Fixed's only


async def test_a_gate_with_paths_runs_only_when_they_change(fast_tmp: Path) -> None:
    project = scripted(
        make_project(
            fast_tmp,
            [task("Docs", files={"docs/x.md": "x\n"}), task("Code", files={"c.py": "C = 1\n"})],
            gates=[check("py", "print('checked')", paths=["**/*.py"])],
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    docs, code = project.store.list_tasks("g")
    assert project.store.gate_results(docs.id) == []
    assert len(project.store.gate_results(code.id)) == 2  # worktree, then merged


ON_TASK_BRANCH = (
    "import subprocess, sys; "
    "b = subprocess.run(['git', 'symbolic-ref', '--short', 'HEAD'], capture_output=True, "
    "text=True).stdout.strip(); print('on', b or 'a detached HEAD'); "
    "sys.exit(not b.startswith('task/'))"
)


async def test_a_gate_in_the_worktree_runs_with_the_task_branch_checked_out(
    fast_tmp: Path,
) -> None:
    # The commit detaches a worktree's HEAD only when no gate runs there after it.
    project = scripted(
        make_project(
            fast_tmp,
            [task("Docs", files={"docs/x.md": "x\n"}), task("Code", files={"c.py": "C = 1\n"})],
            gates=[check("branch", ON_TASK_BRANCH, paths=["**/*.py"], after_merge=False)],
        )
    )
    start_generation(project, "g")
    report = await Engine(project).run(cycles=1)
    docs, code = project.store.list_tasks("g")
    assert report.merged == 2 and docs.state == code.state == TaskState.DONE, code.reason
    assert [r.passed for r in project.store.gate_results(code.id)] == [True]
    assert project.store.gate_results(docs.id) == []


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


PYTEST = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"]
CONFTEST = """\
import os, pathlib
for target in {targets!r}:
    try:
        pathlib.Path(target).write_text("escaped")
        print("WROTE", target)
    except OSError as exc:
        print("REFUSED", target, exc.strerror)
print("CWD", os.getcwd())
"""


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
async def test_a_conftest_the_agent_wrote_runs_in_the_sandbox(fast_tmp: Path) -> None:
    # On the real disk: inside bwrap /dev (so /dev/shm) is a fresh mount, which would hide
    # the main checkout instead of showing it read-only.
    host = Path.home() / ".cache" / f"shoemaker-gates-test-{fast_tmp.name}"
    host.mkdir(parents=True)
    try:
        repo, outside = host / "repo", host / "escaped.txt"
        conftest = CONFTEST.format(targets=[str(repo / "pwned.txt"), str(outside)])
        project = make_project(
            host,
            [
                task(
                    "Tests",
                    files={"conftest.py": conftest, "test_ok.py": "def test_ok():\n    pass\n"},
                )
            ],
            sandbox="bwrap",
            gates=[{"name": "pytest", "command": PYTEST}],
        )
        start_generation(project, "g")
        await Engine(project).run(cycles=1)
        (t,) = project.store.list_tasks("g")
        assert t.state == TaskState.DONE, t.reason
        results = {g.location: g.output_tail for g in project.store.gate_results(t.id)}
        assert set(results) == {"worktree", "merged"}
        for where, output in results.items():
            assert "WROTE" not in output, (where, output)
            assert output.count("Read-only file system") == 2, (where, output)
            cwd = Path(output.split("CWD ", 1)[1].split()[0])
            assert cwd != project.root and project.root not in cwd.parents, where
        assert not (repo / "pwned.txt").exists() and not outside.exists()
        assert project.git.is_clean()
    finally:
        shutil.rmtree(host)


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
async def test_a_sandboxed_gate_keeps_its_cwd_and_tail(fast_tmp: Path) -> None:
    (fast_tmp / "sub").mkdir()
    code = "import os, sys; print('x' * 9000); print('cwd', os.getcwd()); sys.exit(4)"
    gate = GateConfig(name="sub", command=[sys.executable, "-c", code], cwd="sub")
    outcome = await run_gate(gate, fast_tmp, GateBox(Config(sandbox="bwrap")))
    assert (outcome.passed, outcome.exit_code) == (False, 4)
    assert outcome.reason == "gate 'sub' exited 4 (expected 0)"
    assert outcome.output_tail.endswith(f"cwd {fast_tmp / 'sub'}\n")
    assert len(outcome.output_tail) == 8_000


async def test_cancelling_during_the_gates_after_the_merge_removes_their_worktree(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    fifo = fast_tmp / "gate-started"
    os.mkfifo(fifo)
    # Passes in the task's worktree (on its branch); after the merge (detached) it says so
    # through the FIFO, then waits to be stopped; once the FIFO is gone, it passes there too.
    blocks_after_merge = (
        "import os, subprocess, time\n"
        "if subprocess.run(['git', 'symbolic-ref', '-q', 'HEAD']).returncode:\n"
        f"    if os.path.exists({str(fifo)!r}):\n"
        f"        open({str(fifo)!r}, 'w').write('started')\n"
        "        time.sleep(300)\n"
    )
    project = scripted(
        make_project(
            fast_tmp,
            [task("Lands", files={"new.py": "NEW = 1\n"})],
            gates=[check("blocks", blocks_after_merge)],
        )
    )
    start_generation(project, "g")
    run = asyncio.create_task(Engine(project).run(cycles=1))
    assert await asyncio.to_thread(fifo.read_text) == "started"
    (verifying,) = [w.path for w in project.git.worktrees() if w.path.name.startswith("verify-")]
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert [w.path for w in project.git.worktrees()] == [project.root]
    assert not verifying.exists() and processes_with_token(token) == []
    # Its merge had landed: the task stays merging (not ready, to run again on top of its
    # own work), and the next run runs the gates after the merge and records it done.
    gen = project.store.get_generation("g")
    assert [c.trailers.get("Shoemaker-Task") for c in project.git.log(gen.branch, max_count=1)] == [
        "1"
    ]
    assert project.store.get_task(1).state == TaskState.MERGING
    fifo.unlink()
    await Engine(project).run(cycles=1)
    settled = project.store.get_task(1)
    assert (settled.state, settled.attempts) == (TaskState.DONE, 1), settled.reason
    landed = project.git.log(f"{gen.start_commit}..{gen.branch}")
    assert [c.trailers.get("Shoemaker-Task") for c in landed] == ["1"]


async def test_a_repository_of_the_agents_making_never_runs_its_configuration(
    fast_tmp: Path,
) -> None:
    # The agent points its worktree's .git at a repository it wrote, whose core.fsmonitor
    # any git command there would execute on the host.
    pwned = fast_tmp / "pwned"
    evil = {
        ".git": "gitdir: evil\n",
        "evil/HEAD": "ref: refs/heads/main\n",
        "evil/config": f"[core]\n\trepositoryformatversion = 0\n\tfsmonitor = touch {pwned}\n",
        "evil/objects/.keep": "",
        "evil/refs/.keep": "",
    }
    project = scripted(
        make_project(
            fast_tmp,
            [task("Swaps", files={**evil, "new.py": "NEW = 1\n"})],
            gates=[check("ok", "print('ok')")],
        )
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.DONE, t.reason
    assert not pwned.exists()
    assert (project.root / "new.py").read_text() == "NEW = 1\n"
    logs = [e.message for _, e in project.store.events_after(0) if e.kind == "log"]
    assert any("which the agent had replaced" in m for m in logs)


async def test_a_gate_that_runs_too_long_is_killed_with_what_it_started(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = new_token()
    monkeypatch.setenv("SHOEMAKER_TEST_TOKEN", token)
    code = (
        "import subprocess, time; print('started', flush=True); "
        "subprocess.Popen(['setsid', '-f', 'sleep', '300']); time.sleep(300)"
    )
    # The clock runs from the gate's start: well above the interpreter's, so that the gate
    # has printed and started its child by the time it runs out.
    gate = GateConfig(name="slow", command=[sys.executable, "-c", code], timeout_sec=START_SEC)
    outcome = await run_gate(gate, fast_tmp)
    assert (outcome.passed, outcome.exit_code) == (False, None)
    assert outcome.reason == f"gate 'slow' timed out after {START_SEC:g}s"
    assert outcome.output_tail == "started\n"
    assert processes_with_token(token) == []


async def test_a_merge_whose_gates_cannot_get_a_worktree_is_undone(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: MergeQueue, task: object, merge: str) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(MergeQueue, "_verify_worktree", disk_full)  # a full disk, simulated
    project = scripted(
        make_project(
            fast_tmp,
            [task("Unverified", files={"new.py": "NEW = 1\n"})],
            gates=[check("ok", "print('ok')")],
            max_retries=0,
        )
    )
    gen = start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.FAILED
    assert "no worktree for the gates after the merge" in t.reason
    commits = project.git.log(f"{gen.start_commit}..{gen.branch}")
    assert landed_tasks(commits) == {} and not (project.root / "new.py").exists()
