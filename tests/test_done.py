"""The agent's completion signal: the file and its refusals, `shoemaker done` and its sh twin,
and whole runs of the rehearsal agent that signal completed or blocked (no sandbox, bwrap)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from projects import cli, make_project, scripted, task
from shoemaker.agents.done_signal import (
    FILE_NAME,
    MAX_BYTES,
    SCRIPT,
    BadSignal,
    DoneSignal,
    format_signal,
    parse_signal,
    read_signal,
)
from shoemaker.agents.rehearsal.directives import DirectiveError, stitch_directives
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.events import Event, Notice, TaskStateChanged
from shoemaker.model import Task, TaskState

#: A reason a shell would expand, split or run, and text a terminal would obey.
NASTY = (
    "need $HOME and `touch pwned` and $(touch pwned2) 'quoted' \"double\" %s %n \\n\n\x1b[31mred"
)


# -- the file -----------------------------------------------------------------------------------


def test_a_well_formed_signal_is_read_with_control_characters_removed() -> None:
    assert parse_signal(format_signal("7", "completed", ""), 7) == DoneSignal("completed")
    blocked = parse_signal(format_signal("7", "blocked", "  no key\tfor\r the API\x1b[0m\n"), 7)
    assert blocked == DoneSignal("blocked", "no key\tfor the API[0m")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"shoemaker-done 2\ntask: 7\nstatus: completed\n\n", "does not start with"),
        (b"shoemaker-done 1\ntask: 7\nstatus: completed\n", "does not start with"),
        (b"shoemaker-done 1\nstatus: completed\ntask: 7\n\n", "names 'status: completed'"),
        (b"shoemaker-done 1\ntask: 8\nstatus: completed\n\n", "names 'task: 8', not task: 7"),
        (b"shoemaker-done 1\ntask: 7\nstatus: done\n\n", "completed or blocked"),
        (b"shoemaker-done 1\ntask: 7\nstatus: blocked\n\n \n", "blocked without a reason"),
        (b"shoemaker-done 1\ntask: 7\nstatus: blocked\n\n\xff", "not UTF-8"),
        (format_signal("7", "blocked", "x" * MAX_BYTES), f"over {MAX_BYTES} bytes"),
    ],
)
def test_a_signal_file_that_breaks_a_rule_is_refused_saying_which(data: bytes, says: str) -> None:
    with pytest.raises(BadSignal) as caught:
        parse_signal(data, 7)
    assert says in str(caught.value)


def test_only_a_regular_file_is_read_never_a_link_or_a_pipe(tmp_path: Path) -> None:
    assert read_signal(tmp_path / FILE_NAME, 7) is None
    target = tmp_path / "elsewhere"
    target.write_bytes(format_signal("7", "completed", ""))
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(BadSignal, match="cannot be opened"):
        read_signal(tmp_path / "link", 7)
    os.mkfifo(tmp_path / "pipe")  # opened without blocking, then refused
    with pytest.raises(BadSignal, match="not a regular file"):
        read_signal(tmp_path / "pipe", 7)
    assert read_signal(target, 7) == DoneSignal("completed")


# -- shoemaker done and done.sh -----------------------------------------------------------------


def _run(argv: list[str], tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHOEMAKER")}
    return subprocess.run(
        argv, cwd=tmp, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


SHOEMAKER = [sys.executable, "-m", "shoemaker"]
DONE_SH = ["sh", str(SCRIPT)]


@pytest.mark.parametrize("command", [SHOEMAKER, DONE_SH], ids=["shoemaker", "done.sh"])
def test_done_outside_a_run_refuses_in_one_line_and_writes_nothing(
    command: list[str], tmp_path: Path
) -> None:
    proc = _run([*command, "done", "--status", "blocked", "--reason", "r"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not inside a shoemaker run" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    # Inside a run, a blocked signal without a reason is refused the same way.
    env = {"SHOEMAKER_TASK": "7", "SHOEMAKER_DONE_FILE": str(tmp_path / FILE_NAME)}
    proc = _run([*command, "done", "--status", "blocked"], tmp_path, **env)
    assert proc.returncode == 2 and "needs --reason" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [SHOEMAKER, DONE_SH], ids=["shoemaker", "done.sh"])
def test_done_writes_a_signal_the_engine_reads_whatever_the_reason_holds(
    command: list[str], tmp_path: Path
) -> None:
    target = tmp_path / FILE_NAME
    env = {"SHOEMAKER_TASK": "7", "SHOEMAKER_DONE_FILE": str(target)}
    proc = _run([*command, "done", "--status", "blocked", "--reason", NASTY], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == format_signal("7", "blocked", NASTY)
    assert read_signal(target, 7) == DoneSignal("blocked", NASTY.replace("\x1b", ""))
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]  # nothing ran
    proc = _run([*command, "done"], tmp_path, **env)
    assert proc.returncode == 0 and read_signal(target, 7) == DoneSignal("completed")


def test_the_rehearsal_signal_directive_is_checked() -> None:
    assert stitch_directives([{"signal": {"status": "blocked", "reason": "r"}}], 1)
    for bad in ({"status": "done"}, {"reason": 3}, {"why": "r"}, "blocked"):
        with pytest.raises(DirectiveError, match="signal"):
            stitch_directives([{"signal": bad}], 1)


# -- whole runs with the rehearsal agent --------------------------------------------------------


async def _run_generation(project: Project) -> dict[str, Task]:
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    return {t.title: t for t in project.store.list_tasks("g")}


def _events(project: Project) -> list[Event]:
    return [e for _, e in project.store.events_after(0, limit=100_000)]


async def test_a_completed_signal_merges_the_task(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [task("Finish", files={"f.py": "F = 1\n"}, signal={"status": "completed"})],
        require_done_signal=True,
    )
    (finished,) = (await _run_generation(project)).values()
    assert finished.state == TaskState.DONE, finished.reason
    assert (project.root / "f.py").read_text() == "F = 1\n"
    (run,) = project.store.runs(task_id=finished.id)
    assert "SHOEMAKER_DONE_FILE" in run.env_names
    assert "signalled completed" in project.store.transcript(run.id).decode()
    # The prompt told the agent how to signal, and that the signal is required.
    assert '`"$SHOEMAKER" done` — the task is complete' in run.prompt
    assert '`"$SHOEMAKER" done --status blocked --reason "…"`' in run.prompt
    assert "A run that ends without this signal counts as a failed attempt." in run.prompt


async def test_done_status_blocked_ends_the_task_blocked(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [
            task("Wall", files={"w.py": "W = 1\n"}, signal={"status": "blocked", "reason": NASTY}),
            task("After", [0], files={"a.py": "A = 1\n"}),
        ],
        max_retries=3,
    )
    tasks = await _run_generation(project)
    wall, after = tasks["Wall"], tasks["After"]
    assert wall.state == TaskState.BLOCKED
    assert wall.reason == f"its agent is blocked: {NASTY.replace(chr(27), '')}"
    assert wall.attempts == 1  # no retry
    (run,) = project.store.runs(task_id=wall.id)
    assert '"$SHOEMAKER" done --status blocked' in run.prompt
    assert "without this signal" not in run.prompt  # require_done_signal is off
    assert after.state == TaskState.BLOCKED
    assert after.reason == f"depends on task {wall.id}, which is blocked"
    assert not (project.root / "w.py").exists()  # never merged; kept on attempt/*
    assert project.git.ref_exists(f"refs/heads/attempt/g-{wall.id}-1")
    assert not any((project.root / name).exists() for name in ("pwned", "pwned2"))
    events = _events(project)
    told = [e for e in events if isinstance(e, Notice) and "needs you" in e.message]
    assert told and "touch pwned" in told[0].message
    # The person sees it in `shoemaker tasks` too (state and reason).
    listed = cli(project, "tasks")
    assert listed.returncode == 0 and "blocked" in listed.stdout
    assert "its agent is blocked" in listed.stdout


async def test_a_secret_in_the_agents_reason_is_never_stored(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE_API_KEY", "sk-live-0123456789abcdef")
    says = 'sh -c \'"$SHOEMAKER" done --status blocked --reason "$SERVICE_API_KEY is refused"\''
    project = make_project(fast_tmp, [task("Leaky", run=[says])])
    (t,) = (await _run_generation(project)).values()
    assert t.state == TaskState.BLOCKED, t.reason
    assert t.reason == "its agent is blocked: [redacted SERVICE_API_KEY] is refused"


async def test_require_done_signal_fails_an_attempt_without_the_signal(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [
            task(
                "Quiet",
                files={"q.py": "Q = 1\n"},
                on_attempt={2: {"signal": {"status": "completed"}}},
            ),
            task("Mute", files={"m.py": "M = 1\n"}),
        ],
        require_done_signal=True,
        max_retries=2,
    )
    tasks = await _run_generation(project)
    quiet, mute = tasks["Quiet"], tasks["Mute"]
    # Retried like any failure: the second attempt signals and merges.
    assert quiet.state == TaskState.DONE and quiet.attempts == 2
    missing = "ended without signalling done (require_done_signal)"
    backs = [
        e
        for e in _events(project)
        if isinstance(e, TaskStateChanged) and e.task_id == quiet.id and e.new == "ready"
    ]
    assert any(missing in e.reason for e in backs)
    # Never signalling: the same failure twice stops retrying, as for any failure.
    assert mute.state == TaskState.FAILED and missing in mute.reason
    assert "the same failure twice" in mute.reason


async def test_a_signal_file_that_is_no_signal_fails_the_attempt(fast_tmp: Path) -> None:
    scribble = 'sh -c \'printf "all good, trust me" > "$SHOEMAKER_DONE_FILE"\''
    project = make_project(
        fast_tmp, [task("Scribble", files={"s.py": "S = 1\n"}, run=[scribble])], max_retries=0
    )
    (t,) = (await _run_generation(project)).values()
    assert t.state == TaskState.FAILED
    assert "its signal file does not start with 'shoemaker-done 1'" in t.reason
    assert not (project.root / "s.py").exists()


async def test_the_scripted_runner_signals_as_the_real_agent_does(fast_tmp: Path) -> None:
    """Engine tests that start no agent process still run the real `shoemaker done`."""
    project = scripted(
        make_project(fast_tmp, [task("Wall", signal={"status": "blocked", "reason": "why"})])
    )
    (t,) = (await _run_generation(project)).values()
    assert (t.state, t.reason) == (TaskState.BLOCKED, "its agent is blocked: why")


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
async def test_an_agent_in_bwrap_signals_blocked_from_inside_the_sandbox(fast_tmp: Path) -> None:
    project = make_project(
        fast_tmp,
        [task("Boxed", files={"b.py": "B = 1\n"}, signal={"status": "blocked", "reason": NASTY})],
        sandbox="bwrap",
        sandbox_network="none",
    )
    (t,) = (await _run_generation(project)).values()
    (run,) = project.store.runs(task_id=t.id)
    assert run.argv[0] == "bwrap"
    assert t.state == TaskState.BLOCKED, t.reason
    assert t.reason == f"its agent is blocked: {NASTY.replace(chr(27), '')}"
