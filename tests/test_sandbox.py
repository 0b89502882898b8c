"""Sandboxes: the command lines, the explanations of failed trial runs, and real runs of the
rehearsal agent under bubblewrap and podman (with an image imported locally: no registry)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agents import BEAT_GRACE_SEC, CODEX
from conftest import REPO_ROOT
from projects import make_project, run_and_cancel_once_an_agent_speaks, task, with_agent
from shoemaker.agents import sandbox_proof
from shoemaker.agents.sandbox import (
    ROOT_SANDBOX_ID,
    SandboxPaths,
    explain,
    podman_args,
    sandbox_of,
    trial_run,
    wrap,
)
from shoemaker.agents.sandbox_proof import Escape, EscapeTrial, prove
from shoemaker.config import Config
from shoemaker.engine.doctor import run_checks
from shoemaker.engine.engine import Engine
from shoemaker.engine.generation import start_generation
from shoemaker.engine.project import Project
from shoemaker.engine.selection import Selection
from shoemaker.mocks.responses import Turn, add_file, message, mock_responses
from shoemaker.model import TaskState, Usage
from shoemaker.store import NewTask

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
    # (Host sockets masked, if any, come between the worktree's bind and the chdir.)
    assert f"--bind {tmp_path}/wt {tmp_path}/wt " in line and f"--chdir {tmp_path}/wt " in line
    assert f"--ro-bind {tmp_path}/cred.json {tmp_path}/home/.claude/.credentials.json" in line
    assert "--unshare-net" in argv and argv[-3:] == ["--", "claude", "-p"]
    # No capability (root included), its own pids, session and user namespace, dies with us.
    for flag in ("--unshare-user", "--unshare-pid", "--new-session", "--die-with-parent"):
        assert flag in argv
    assert "--cap-drop ALL" in line and "--disable-userns" in argv
    uid = os.getuid() or ROOT_SANDBOX_ID
    assert f"--uid {uid} --gid {os.getgid() if os.getuid() else uid}" in line
    assert ".git" not in line.replace(f"{tmp_path}/git", "")  # no worktree .git file here


def test_a_worktrees_git_file_is_mounted_read_only(tmp_path: Path) -> None:
    p = paths(tmp_path)
    p.worktree.mkdir()
    (p.worktree / ".git").write_text("gitdir: /repo/.git/worktrees/wt\n")
    dot_git = f"{p.worktree}/.git"
    bwrap = " ".join(wrap(Config(sandbox="bwrap"), ["claude"], [], p))
    assert f"--bind {p.worktree} {p.worktree} --ro-bind {dot_git} {dot_git}" in bwrap
    podman = wrap(Config(sandbox="podman", podman_image="img:1"), ["claude"], [], p)
    assert f"{dot_git}:{dot_git}:ro" in podman


def test_bwrap_masks_the_hosts_unix_sockets_after_every_bind(tmp_path: Path) -> None:
    p = paths(tmp_path)
    p.worktree.mkdir()
    host_sock, own_sock = tmp_path / "daemon.sock", p.worktree / "own.sock"
    servers = [socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)]
    for server, where in zip(servers, (host_sock, own_sock), strict=True):
        server.bind(str(where))
        server.listen()
    try:
        argv = wrap(Config(sandbox="bwrap"), ["claude"], [], p)
    finally:
        for server in servers:
            server.close()
    mask = argv.index(str(host_sock))
    assert argv[mask - 2 : mask] == ["--ro-bind", "/dev/null"]
    assert mask > argv.index(str(p.worktree)) and mask > argv.index(str(p.git_dir))
    assert str(own_sock) not in argv  # the agent's own, in its worktree


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
    for flag in ("--cap-drop=ALL", "--security-opt=no-new-privileges", "--read-only"):
        assert flag in argv
    assert "--tmpfs=/tmp" in argv
    writable = wrap(
        config.model_copy(update={"sandbox_read_only_root": False}), ["claude"], [], paths(tmp_path)
    )
    assert "--read-only" not in writable and "--cap-drop=ALL" in writable


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


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it")
async def test_stopping_a_bwrap_run_interrupts_the_agent_inside_so_its_cost_is_known(
    fast_tmp: Path,
) -> None:
    """bwrap gives the agent a session of its own and dies of SIGINT itself: the interrupt
    must reach the agent inside, which answers with a last result line (cost reported, not
    estimated), as it does without a sandbox."""
    project = make_project(fast_tmp, [task("Hang", outcome="hang")], sandbox="bwrap")
    # Its last result must come within the grace, however busy the machine.
    project = with_agent(project, kill_grace_sec=BEAT_GRACE_SEC)
    start_generation(project, "g")
    await run_and_cancel_once_an_agent_speaks(project)
    (t,) = project.store.list_tasks("g")
    (r,) = project.store.runs(task_id=t.id)
    assert r.argv[0] == "bwrap"
    assert r.reason.startswith("cancelled")
    assert (r.exit_code, r.ended, r.subtype) == (0, "result", "error_during_execution")
    assert r.cost_usd > 0 and not r.cost_estimated


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
async def test_a_real_podman_run_of_codex_writes_its_worktree_with_its_home_inside(
    fast_tmp: Path,
) -> None:
    if not CODEX.exists():
        pytest.fail(f"the codex CLI is not installed at {CODEX}: run ./dev test, which installs it")
    _image()
    # The CLI (node and codex's own binary) from the host, read-only; its mock on loopback,
    # reached through the host network the container shares.
    cli_root = CODEX.resolve().parents[3]  # its node_modules, wherever it is installed
    mounts = []
    for path in {Path("/usr"), Path("/lib"), Path("/lib64"), Path("/bin"), cli_root}:
        if path.exists():
            mounts += ["-v", f"{path}:{path}:ro"]
    with mock_responses() as api:
        project = make_project(
            fast_tmp,
            [],
            agent={
                "kind": "codex",
                "command": str(CODEX.resolve()),
                "model": "gpt-5.5",
                "env": {"OPENAI_BASE_URL": api.url, "OPENAI_API_KEY": "sk-test-podman-0000"},
                "max_time_sec": 120,
                "idle_timeout_sec": 60,
            },
            prices={"gpt-5.5": {"input": 1.25, "output": 10.0, "cache_read": 0.125}},
            sandbox="podman",
            podman_image=IMAGE,
            podman_args=[*HOST_FLAGS, *mounts],
            podman_global_args=HOST_GLOBAL,
        )
        start_generation(project, "g")
        project.store.add_tasks("g", [NewTask("Write hello", "Write hello.py.")], 1, "test")
        api.script(Turn([add_file("hello.py", "HELLO = 1")]), Turn([message("Wrote hello.py.")]))
        await Engine(project).run(cycles=1, selection=Selection())  # stitch only: no measure
    (t,) = project.store.list_tasks("g")
    (run,) = project.store.runs(task_id=t.id)
    assert t.state == TaskState.DONE, t.reason
    assert (project.root / "hello.py").read_text() == "HELLO = 1\n"
    argv = " ".join(run.argv)
    assert run.argv[0] == "podman" and IMAGE in run.argv and "--network=host" in run.argv
    # codex's config home is in the run's home inside the container, named by environment.
    assert "-e CODEX_HOME" in argv and "-e OPENAI_API_KEY" in argv
    assert "sk-test-podman-0000" not in argv
    assert run.ok and run.usage == Usage(2000, 80, 0, 400)


@pytest.mark.skipif(not Path("/usr/bin/podman").exists(), reason="podman: .ci/run installs it")
def test_doctor_explains_a_failing_podman_trial_run(fast_tmp: Path) -> None:
    _image()
    ok, output, fix = trial_run(Config(sandbox="podman", podman_image=IMAGE), fast_tmp)
    if not ok:  # hosts like this one: the fix names the flags, nothing is added silently
        assert fix, output
    bwrap_ok, bwrap_output, _ = trial_run(Config(sandbox="bwrap"), fast_tmp)
    assert bwrap_ok, bwrap_output
    assert sandbox_of(["bwrap", "--", "claude"]) == "bwrap" and sandbox_of(["claude"]) == "none"


# -- escapes, tried for real ----------------------------------------------------------------------

NOBODY = 65534
needs_bwrap = pytest.mark.skipif(
    not Path("/usr/bin/bwrap").exists(), reason="bubblewrap: .ci/run installs it"
)
ALWAYS = {"proc-cwd", "processes", "remount", "capabilities", "setuid", "git-file", "socket"}


@pytest.fixture
def host_dirs() -> Iterator[Path]:
    """Host directories on the real disk (bwrap mounts /dev and /proc of its own), reachable by
    every user, so that only the sandbox keeps a probe out of them."""
    base = Path(tempfile.mkdtemp(prefix="shoemaker-escape-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def _host(base: Path, user: int | None) -> tuple[Path, list[Path]]:
    """A checkout with its git dir, a HOME, and the shared /tmp: where no probe may write."""
    checkout, home = base / "checkout", base / "home-of-host"
    for directory in (checkout, checkout / ".git", home):
        directory.mkdir(parents=True)
        if user is not None:
            os.chown(directory, user, user)
    return checkout, [checkout, checkout / ".git", home, Path("/tmp")]


@contextmanager
def _host_process(cwd: Path, user: int | None) -> Iterator[int]:
    """A live host process (as ``user``) whose cwd is the checkout: `cat` waiting on stdin."""
    launcher = _as(user)
    proc = subprocess.Popen([*launcher, "cat"], cwd=cwd, stdin=subprocess.PIPE)
    try:
        yield proc.pid  # setpriv executes cat in place: the same pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()


def _as(user: int | None) -> list[str]:
    if user is None:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]


def _escaped(verdicts: list[Escape]) -> dict[str, str]:
    return {e.key: e.detail for e in verdicts if e.escaped}


def _probe_package(base: Path) -> Path:
    """The probe's package files where any user can read them (a checkout may not be)."""
    root = base / "pythonpath"
    source = REPO_ROOT / "src" / "shoemaker"
    for name in ("__init__.py", "agents/__init__.py", "agents/escape_probe.py"):
        (root / "shoemaker" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, root / "shoemaker" / name)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755)
    return root


@needs_bwrap
@pytest.mark.skipif(os.getuid() != 0, reason="as root: the tests run as root here and in CI")
def test_every_escape_is_refused_under_bwrap_as_root(
    host_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout, targets = _host(host_dirs, None)
    scratch = host_dirs / "scratch"  # where an agent's worktree and HOME would be
    trials: list[EscapeTrial] = []

    def recorded(*args: Any, **kwargs: Any) -> EscapeTrial:
        trials.append(EscapeTrial(*args, **kwargs))
        return trials[-1]

    monkeypatch.setattr(sandbox_proof, "EscapeTrial", recorded)
    with _host_process(checkout, None) as pid:
        verdicts, output = prove(Config(sandbox="bwrap"), scratch, targets, host_pid=pid)
    assert {e.key for e in verdicts} == ALWAYS | {"userns"} | {f"write:{t}" for t in targets}
    assert _escaped(verdicts) == {}, output
    # This probe's marker only: /tmp is shared, and another run's probe may have a file
    # there for a moment (one that is meant to escape, outside any sandbox).
    (trial,) = trials
    assert not [p for t in targets for p in t.glob(f"{trial.marker}*")]


@needs_bwrap
@pytest.mark.skipif(os.getuid() != 0, reason="as root: the tests run as root here and in CI")
def test_the_probe_catches_the_escapes_of_the_old_bwrap_line(
    fast_tmp: Path, host_dirs: Path
) -> None:
    """The bwrap line shoemaker used to run, as root: every capability, the host's pids."""
    checkout, targets = _host(host_dirs, None)
    wt, home = fast_tmp / "wt", fast_tmp / "home"
    wt.mkdir()
    home.mkdir()
    (wt / ".git").write_text("gitdir: /nowhere\n")
    with _host_process(checkout, None) as pid:
        trial = EscapeTrial(SandboxPaths(wt, home), targets, host_pid=pid)
        trial.listen(host_dirs / "host.sock")
        old = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        old += ["--bind", str(wt), str(wt), "--chdir", str(wt), "--die-with-parent", "--"]
        proc = subprocess.run([*old, *trial.argv("bwrap")], capture_output=True, text=True)
        verdicts = trial.judge("bwrap", proc.stdout + proc.stderr)
        trial.close()
    escaped = _escaped(verdicts)
    for key in ("proc-cwd", "processes", "remount", "capabilities", "git-file", "socket"):
        assert key in escaped, (key, proc.stdout)
    assert "/tmp/" in escaped["remount"]  # through the remount: the second escape
    assert not list(checkout.glob(".shoemaker-escape-*"))  # the evidence was removed
    fixes = {e.key: e.fix for e in verdicts}
    assert "--unshare-pid" in fixes["proc-cwd"] and "--cap-drop ALL" in fixes["remount"]


@needs_bwrap
def test_every_escape_is_refused_under_bwrap_as_a_normal_user(
    host_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `nobody`, against a host process, checkout and HOME of its own: with no sandbox the
    same probe gets out (so the refusals below are the sandbox's), under bwrap it does not."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 that every user can run")
    monkeypatch.setenv("PYTHONPATH", str(_probe_package(host_dirs)))
    checkout, targets = _host(host_dirs, NOBODY)
    with _host_process(checkout, NOBODY) as pid:
        unboxed, output = prove(
            Config(sandbox="none"),
            host_dirs / "none",
            targets,
            python=python,
            host_pid=pid,
            user=NOBODY,
        )
        escaped = _escaped(unboxed)
        for key in ("proc-cwd", "processes", "git-file", "socket", f"write:{checkout}"):
            assert key in escaped, (key, output)
        boxed, output = prove(
            Config(sandbox="bwrap"),
            host_dirs / "bwrap",
            targets,
            python=python,
            host_pid=pid,
            user=NOBODY,
        )
    assert {e.key for e in boxed} == {e.key for e in unboxed}
    assert _escaped(boxed) == {}, output


@pytest.mark.skipif(not Path("/usr/bin/podman").exists(), reason="podman: .ci/run installs it")
def test_every_escape_is_refused_under_podman_and_flags_that_open_one_are_caught(
    host_dirs: Path,
) -> None:
    """The sh probe in an image without Python: refused with shoemaker's flags; `--pid=host`,
    a writable mount of the checkout and an added capability each show as an escape."""
    _image()
    system = [Path("/usr"), Path("/lib"), Path("/lib64"), Path("/bin")]
    mounts = [a for p in system if p.exists() for a in ("-v", f"{p}:{p}:ro")]
    config = Config(
        sandbox="podman",
        podman_image=IMAGE,
        podman_args=[*HOST_FLAGS, *mounts],
        podman_global_args=HOST_GLOBAL,
    )
    argv = wrap(config, ["true"], [], paths(host_dirs))
    for flag in ("--cap-drop=ALL", "--security-opt=no-new-privileges", "--read-only"):
        assert flag in argv
    checkout, targets = _host(host_dirs, None)
    with _host_process(checkout, None) as pid:
        verdicts, output = prove(config, host_dirs / "scratch", targets, host_pid=pid)
        assert {e.key for e in verdicts} == ALWAYS | {f"write:{t}" for t in targets}
        assert _escaped(verdicts) == {}, output
        # The container's own /tmp is writable (a tmpfs), the host's is not.
        assert "the sandbox's own" in {e.key: e.detail for e in verdicts}["write:/tmp"]
        opened = config.model_copy(
            update={
                "podman_args": [
                    *config.podman_args,
                    *("--pid=host", "--cap-add=SYS_ADMIN", "-v", f"{checkout}:{checkout}"),
                ]
            }
        )
        verdicts, output = prove(opened, host_dirs / "opened", targets, host_pid=pid)
    escaped = _escaped(verdicts)
    for key in ("processes", "capabilities", f"write:{checkout}"):
        assert key in escaped, (key, output)
    fixes = {e.key: e.fix for e in verdicts}
    assert "--pid=host" in fixes["processes"] and "--cap-add" in fixes["capabilities"]
    assert not list(checkout.glob(".shoemaker-escape-*"))


def test_a_probe_that_reports_nothing_leaves_every_escape_unproven(tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    wt.mkdir()
    trial = EscapeTrial(SandboxPaths(wt, tmp_path / "home"), [tmp_path])
    trial.argv("podman")
    verdicts = trial.judge("podman", "Error: executable file `sh` not found in $PATH")
    assert verdicts and all(e.escaped for e in verdicts)
    assert "`sh` not found" in verdicts[0].detail and "/bin/sh" in verdicts[0].fix
    partial = "ESCAPE\tproc-cwd\trefused\tNo such file or directory\nKilled"
    verdicts = trial.judge("podman", partial)
    assert not verdicts[0].escaped and all(e.escaped for e in verdicts[1:])
    assert "stopped early" in verdicts[1].fix and "Killed" in verdicts[1].detail


@pytest.mark.skipif(not Path("/usr/bin/podman").exists(), reason="podman: .ci/run installs it")
async def test_an_agent_in_podman_signals_blocked_with_the_sh_twin_of_shoemaker_done(
    fast_tmp: Path,
) -> None:
    """In a container the host's shoemaker is not there: `$SHOEMAKER` is done.sh, mounted
    read-only, and what it writes is the same signal."""
    _image()
    python_root = Path(sys.executable).resolve().parents[2]
    mounts = []
    for path in {Path("/usr"), Path("/lib"), Path("/lib64"), Path("/bin"), python_root, REPO_ROOT}:
        if path.exists():
            mounts += ["-v", f"{path}:{path}:ro"]
    reason = "the spec asks for `rm -rf /` and $(reboot); which one?"
    overwrite = "sh -c 'echo exit 0 > \"$SHOEMAKER\"'"
    project = make_project(
        fast_tmp,
        [task("Asks", run=[overwrite], signal={"status": "blocked", "reason": reason})],
        sandbox="podman",
        podman_image=IMAGE,
        podman_args=[*HOST_FLAGS, *mounts],
        podman_global_args=HOST_GLOBAL,
    )
    start_generation(project, "g")
    await Engine(project).run(cycles=1)
    (t,) = project.store.list_tasks("g")
    (run,) = project.store.runs(task_id=t.id)
    assert run.argv[0] == "podman" and "SHOEMAKER" in run.argv
    assert t.state == TaskState.BLOCKED, t.reason
    assert t.reason == f"its agent is blocked: {reason}"
    assert "Read-only file system" in project.store.transcript(run.id).decode()
