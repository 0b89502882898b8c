"""Sandboxes: the command lines, the explanations of failed trial runs, and real runs of the
rehearsal agent under bubblewrap and podman (with an image imported locally: no registry)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from projects import make_project, task
from shoemaker.agents.sandbox import (
    SandboxPaths,
    explain,
    podman_args,
    sandbox_of,
    trial_run,
    wrap,
)
from shoemaker.config import Config
from shoemaker.engine.doctor import run_checks
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.model import TaskState

IMAGE = "localhost/shoemaker-test-empty:1"
KEY = "sk-ant-api03-PODMAN-ARGS-5e2d9c1b7a3f"
# This host family runs containers inside a container: crun cannot set limits or use its
# cgroups. `shoemaker doctor` explains each of these flags when they are missing.
HOST_FLAGS = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
HOST_GLOBAL = ["--cgroup-manager=cgroupfs"]


def paths(tmp: Path) -> SandboxPaths:
    return SandboxPaths(tmp / "wt", tmp / "home", tmp / "cred.json", tmp / "git")


def test_bwrap_command_line(tmp_path: Path) -> None:
    config = Config(sandbox="bwrap", sandbox_network="none")
    argv = wrap(config, ["claude", "-p"], ["ANTHROPIC_API_KEY"], paths(tmp_path))
    line = " ".join(argv)
    assert argv[:5] == ["bwrap", "--ro-bind", "/", "/", "--dev"]
    assert f"--bind {tmp_path}/wt {tmp_path}/wt --chdir {tmp_path}/wt" in line
    assert f"--ro-bind {tmp_path}/cred.json {tmp_path}/home/.claude/.credentials.json" in line
    assert "--unshare-net" in argv and argv[-3:] == ["--", "claude", "-p"]


def test_podman_command_line_passes_secrets_by_name_only(tmp_path: Path) -> None:
    config = Config(
        sandbox="podman",
        podman_image="img:1",
        podman_args=["--pull=never"],
        podman_global_args=["-q"],
    )
    argv = wrap(config, ["claude", "-p"], ["ANTHROPIC_API_KEY"], paths(tmp_path))
    assert argv[:4] == ["podman", "-q", "run", "--rm"]
    assert argv[argv.index("ANTHROPIC_API_KEY") - 1 :][:2] == ["-e", "ANTHROPIC_API_KEY"]
    assert f"{tmp_path}/cred.json:{tmp_path}/home/.claude/.credentials.json:ro" in argv
    assert argv[-4:] == ["--pull=never", "img:1", "claude", "-p"]
    assert "--network=host" in argv


def test_podman_args_values_travel_in_the_environment(tmp_path: Path) -> None:
    # The seed's own example puts an API key in podman_args.
    config = Config(
        sandbox="podman",
        podman_image="img:1",
        podman_args=[
            *("-e", "ANTHROPIC_API_KEY=sk-ant-x1", "--env=MODE=fast", "--env", "A=1=2"),
            *("-v", "/data:/data", "-e", "PASSED_THROUGH"),
        ],
    )
    args, values = podman_args(config)
    assert values == {"ANTHROPIC_API_KEY": "sk-ant-x1", "MODE": "fast", "A": "1=2"}
    assert args == [
        *("-e", "ANTHROPIC_API_KEY", "-e", "MODE", "-e", "A"),
        *("-v", "/data:/data", "-e", "PASSED_THROUGH"),
    ]
    argv = wrap(config, ["claude"], [], paths(tmp_path))
    assert not any("sk-ant-x1" in a or "fast" in a for a in argv)


def test_failed_trial_runs_are_explained() -> None:
    assert "--ulimit nofile" in explain(
        "Error: crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted"
    )
    assert "--runtime runc" in explain("crun: cgroups in hybrid mode not supported")
    assert "podman import" in explain(
        "pinging container registry registry-1.docker.io: no such host"
    )
    assert explain("something else entirely") == ""


def _listener() -> tuple[socket.socket, list[int]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[int] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
            accepted.append(1)
            conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    return server, accepted


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
async def test_a_real_bwrap_run_writes_only_its_worktree(fast_tmp: Path) -> None:
    server, accepted = _listener()
    port = server.getsockname()[1]
    # A directory on the real disk (bwrap gives /tmp and /dev fresh mounts of their own).
    host_dir = Path.home() / ".cache" / f"shoemaker-sandbox-test-{fast_tmp.name}"
    host_dir.mkdir(parents=True)
    outside = host_dir / "escaped.txt"
    connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2)"
    project = make_project(
        fast_tmp,
        [
            task(
                "Boxed",
                files={"a.py": "A = 1\n"},
                run=[f"touch {outside}", f'{sys.executable} -c "{connect}"'],
            )
        ],
        sandbox="bwrap",
        sandbox_network="none",
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    server.close()
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.DONE, t.reason
    assert (project.root / "a.py").read_text() == "A = 1\n"
    assert not outside.exists() and accepted == []
    (run,) = [r for r in project.store.runs(task_id=t.id)]
    assert run.argv[0] == "bwrap"  # what the task screen's attempts show
    log = project.store.transcript(run.id).decode()
    host_dir.rmdir()
    assert "Read-only file system" in log
    # A network namespace of its own: the host's listener is out of reach.
    assert "Network is unreachable" in log or "Connection refused" in log


def _image() -> None:
    if subprocess.run(["podman", "image", "exists", IMAGE]).returncode == 0:
        return
    empty = subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip()
    tar = Path(empty) / "empty.tar"
    subprocess.run(["tar", "-C", empty, "-cf", str(tar), "--exclude=empty.tar", "."], check=True)
    subprocess.run(["podman", "import", "-q", str(tar), IMAGE], check=True, capture_output=True)


@pytest.mark.skipif(not Path("/usr/bin/podman").exists(), reason="podman: .ci/run installs it")
async def test_a_real_podman_run_of_the_rehearsal_agent(fast_tmp: Path) -> None:
    _image()
    python_root = Path(sys.executable).resolve().parents[2]  # the interpreter's prefix
    mounts = []
    for path in {Path("/usr"), Path("/lib"), Path("/lib64"), Path("/bin"), python_root, REPO_ROOT}:
        if path.exists():
            mounts += ["-v", f"{path}:{path}:ro"]
    project = make_project(
        fast_tmp,
        [task("Contained", files={"c.py": "C = 1\n"}, run=["printenv ANTHROPIC_API_KEY"])],
        sandbox="podman",
        podman_image=IMAGE,
        podman_args=[*HOST_FLAGS, *mounts, "-e", f"ANTHROPIC_API_KEY={KEY}"],
        podman_global_args=HOST_GLOBAL,
    )
    ok, output, fix = trial_run(project.config, fast_tmp / "trial")
    assert ok, f"{output} — {fix}"
    # doctor asks the CLI the container will run, not the host's.
    agent_check = next(c for c in run_checks(project) if c.name == "agent CLI")
    assert agent_check.ok and f"{sys.executable} in podman: Python 3" in agent_check.detail
    unmounted = project.config.model_copy(update={"podman_args": HOST_FLAGS})
    agent_check = next(
        c for c in run_checks(Project.open(project.root, unmounted)) if c.name == "agent CLI"
    )
    assert not agent_check.ok and "podman_image" in agent_check.fix, agent_check
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    assert t.state == TaskState.DONE, t.reason
    assert (project.root / "c.py").read_text() == "C = 1\n"
    (run,) = project.store.runs(task_id=t.id)
    assert run.argv[0] == "podman" and IMAGE in run.argv
    # The key from podman_args reached the agent through the environment, not the command line.
    assert "-e ANTHROPIC_API_KEY" in " ".join(run.argv) and KEY not in " ".join(run.argv)
    transcript = project.store.transcript(run.id)
    assert b"[redacted ANTHROPIC_API_KEY]" in transcript and KEY.encode() not in transcript


@pytest.mark.skipif(not Path("/usr/bin/podman").exists(), reason="podman: .ci/run installs it")
def test_doctor_explains_a_failing_podman_trial_run(fast_tmp: Path) -> None:
    _image()
    ok, output, fix = trial_run(Config(sandbox="podman", podman_image=IMAGE), fast_tmp)
    if not ok:  # hosts like this one: the fix names the flags, nothing is added silently
        assert fix, output
    bwrap_ok, bwrap_output, _ = trial_run(Config(sandbox="bwrap"), fast_tmp)
    assert bwrap_ok, bwrap_output
    assert sandbox_of(["bwrap", "--", "claude"]) == "bwrap" and sandbox_of(["claude"]) == "none"
