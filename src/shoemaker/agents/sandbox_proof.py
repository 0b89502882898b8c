"""Proving a sandbox: run the escape probe in it as an agent is run, and judge each escape.

The probe (:mod:`shoemaker.agents.escape_probe` under bwrap; ``escape_probe.sh`` in a container
image, which may have no Python) tries every known way out and says how each went. The verdict
does not rest on its word alone: a file it was meant not to be able to write, found on the host
afterwards, is an escape whatever it said (and is removed), and so is a connection that reached
the host's listening socket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoemaker.agents.sandbox import SandboxPaths, podman_args, wrap
from shoemaker.config import Config

PROBE_SH = Path(__file__).with_name("escape_probe.sh")
#: Sandboxes that see the host's interpreter, so the Python probe runs there.
_PYTHON_PROBE = ("bwrap", "none")
_NO_SANDBOX = "sandbox: none isolates nothing; use bwrap, podman or docker"

#: What each escape is, and what to do when it succeeds: (title, fix for bwrap, for containers).
_ESCAPES: dict[str, tuple[str, str, str]] = {
    "proc-cwd": (
        "write into the host checkout via /proc/<shoemaker pid>/cwd",
        "bwrap must run with --unshare-pid: use a bubblewrap that has it (0.4+)",
        "remove --pid=host from podman_args",
    ),
    "processes": (
        "see host processes (shoemaker's) in /proc",
        "bwrap must run with --unshare-pid: use a bubblewrap that has it (0.4+)",
        "remove --pid=host from podman_args",
    ),
    "remount": (
        "remount / read-write, write the host's /tmp",
        "bwrap must drop every capability (--unshare-user, --cap-drop ALL): bubblewrap 0.5+",
        "remove --privileged and --cap-add from podman_args",
    ),
    "write": (
        "write outside the worktree",
        "nothing but the worktree and the run's HOME may be bound writable",
        "remove that -v mount from podman_args, or add :ro to it",
    ),
    "capabilities": (
        "keep a capability (CapEff)",
        "bwrap must drop every capability (--unshare-user, --cap-drop ALL): bubblewrap 0.5+",
        "remove --privileged and --cap-add from podman_args",
    ),
    "setuid": (
        "setuid escalation (no_new_privs)",
        "use a bubblewrap that sets no_new_privs (every release since 0.1)",
        "remove --security-opt no-new-privileges=false and --privileged from podman_args",
    ),
    "userns": (
        "create a user namespace (to regain capabilities)",
        "use bubblewrap 0.8+ (--disable-userns)",
        "remove --privileged and --security-opt seccomp=unconfined from podman_args",
    ),
    "git-file": (
        "rewrite the worktree's .git file (host git follows it)",
        "the worktree's .git file must be bound read-only",
        "the worktree's .git file must be mounted read-only",
    ),
    "socket": (
        "connect to a host unix socket (daemon, tmux, ssh agent)",
        "host sockets must be masked: /proc/net/unix must be readable to shoemaker",
        "do not mount the host's sockets (docker.sock, /run, /tmp) with podman_args",
    ),
}


@dataclass(frozen=True, slots=True)
class Escape:
    """How one escape went: refused, or escaped with what happened and the fix."""

    key: str
    title: str
    escaped: bool
    detail: str
    fix: str = ""


@dataclass
class EscapeTrial:
    """One probe run: the host side it attacks (a live process, directories, a socket), its
    command line inside the sandbox, and the verdicts."""

    paths: SandboxPaths
    """The sandbox's worktree and HOME, as an agent run has them."""
    targets: list[Path]
    """Host directories the probe must not be able to write into."""
    host_pid: int = field(default_factory=os.getpid)
    """The process whose /proc entry the probe attacks (its cwd must be a host directory)."""
    marker: str = field(default_factory=lambda: f".shoemaker-escape-{uuid.uuid4().hex[:12]}")
    socket_path: Path | None = None
    """A unix socket listening on the host, opened by :meth:`listen`."""
    _server: socket.socket | None = None
    _git_file: bytes | None = None

    def listen(self, path: Path) -> None:
        """Listen on ``path`` (a unix socket outside the sandbox); open to every user, so that
        only the sandbox can keep the probe out."""
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        path.chmod(0o777)
        server.listen(1)
        server.setblocking(False)
        self._server, self.socket_path = server, path

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def argv(self, kind: str, python: str = sys.executable) -> list[str]:
        """The probe's own command line (before :func:`wrap`): Python under bwrap, sh in a
        container image. Every argument is shoemaker's, none comes from an agent."""
        stat = Path(f"/proc/{self.host_pid}/stat").read_text().rsplit(")", 1)[1].split()
        pidns = os.readlink(f"/proc/{self.host_pid}/ns/pid")
        git_file = self.paths.worktree / ".git"
        self._git_file = git_file.read_bytes() if git_file.is_file() else None
        sock = str(self.socket_path or "")
        targets = [str(t) for t in self.targets]
        if kind in _PYTHON_PROBE:
            args = ["--marker", self.marker, "--host-pid", str(self.host_pid)]
            args += ["--host-start", stat[19], "--host-pidns", pidns]
            args += ["--socket", sock] if sock else []
            args += ["--git-file", str(git_file)] if self._git_file is not None else []
            return [python, "-m", "shoemaker.agents.escape_probe", *args, "--", *targets]
        git = str(git_file) if self._git_file is not None else ""
        script = PROBE_SH.read_text()
        fixed = [self.marker, str(self.host_pid), stat[19], pidns, sock, git]
        return ["sh", "-c", script, "escape-probe", *fixed, *targets]

    def judge(self, kind: str, output: str) -> list[Escape]:
        """Every escape's verdict: the probe's report, overruled by what the host finds."""
        said: dict[str, tuple[bool, str]] = {}
        for line in output.splitlines():
            parts = line.split("\t", 3)
            if len(parts) == 4 and parts[0] == "ESCAPE":
                said[parts[1]] = (parts[2] != "refused", parts[3])
        found = self._evidence()
        keys = ["proc-cwd", "processes", "remount"]
        keys += [f"write:{t}" for t in self.targets]
        keys += ["capabilities", "setuid"]
        # In a container the runtime's seccomp profile decides nested user namespaces; not
        # claimed (README: Sandboxes).
        keys += ["userns"] if kind in _PYTHON_PROBE else []
        keys += ["git-file"] if self._git_file is not None else []
        keys += ["socket"] if self.socket_path is not None else []
        silent = (
            "the escape probe stopped early: the detail says why"
            if said
            else "the escape probe did not run: the detail says why"
        )
        if not said and kind not in _PYTHON_PROBE:
            silent = "podman_image needs a POSIX sh at /bin/sh: the escape probe is a sh script"
        verdicts = []
        for key in keys:
            base = key.split(":", 1)[0]
            title, bwrap_fix, container_fix = _ESCAPES[base]
            if base == "write":
                title = f"{title}: {key.split(':', 1)[1]}"
            fix = {"bwrap": bwrap_fix, "none": _NO_SANDBOX}.get(kind, container_fix)
            if key in found:
                verdicts.append(Escape(key, title, True, found[key], fix))
            elif key not in said:
                tail = output.strip().splitlines()[-1:] or ["no output"]
                detail = f"not tried: the probe did not report it ({tail[0][:200]})"
                verdicts.append(Escape(key, title, True, detail, silent))
            else:
                escaped, detail = said[key]
                if escaped and (base == "write" or key == "proc-cwd"):
                    # Written, but not found on the host: the sandbox's own file system.
                    escaped, detail = False, f"{detail}, the sandbox's own, not the host's"
                verdicts.append(Escape(key, title, escaped, detail, fix if escaped else ""))
        return verdicts

    def _evidence(self) -> dict[str, str]:
        """What the host finds of the probe's work (removing it): files, a connection."""
        found: dict[str, str] = {}
        try:
            cwd: Path | None = Path(os.readlink(f"/proc/{self.host_pid}/cwd"))
        except OSError:
            cwd = None
        places = [(f"write:{t}", t / self.marker) for t in self.targets]
        places += [("remount", Path("/tmp") / f"{self.marker}.remount")]
        places += [("proc-cwd", cwd / f"{self.marker}.proc")] if cwd is not None else []
        for key, path in places:
            if path.exists():
                found.setdefault(key, f"the host has {path}")
                path.unlink(missing_ok=True)
        git_file = self.paths.worktree / ".git"
        if self._git_file is not None and git_file.read_bytes() != self._git_file:
            found["git-file"] = f"the host's {git_file} changed"
            git_file.write_bytes(self._git_file)
        if self._server is not None:
            try:
                conn, _ = self._server.accept()
            except BlockingIOError:
                pass
            else:
                conn.close()
                found["socket"] = f"the host's {self.socket_path} accepted a connection"
        return found


def prove(
    config: Config,
    scratch: Path,
    targets: Sequence[Path],
    git_dir: Path | None = None,
    *,
    python: str = sys.executable,
    host_pid: int | None = None,
    user: int | None = None,
    timeout: float = 120,
) -> tuple[list[Escape], str]:
    """Run the probe in the configured sandbox, as an agent runs, in a scratch worktree (its
    ``.git`` file like a linked worktree's) with a HOME of its own; the verdicts, and what the
    probe printed. ``host_pid``: the host process to attack through /proc (default: this
    one). ``user``: run the sandbox as that uid instead (``setpriv``), owning the scratch."""
    worktree, home = scratch / "wt", scratch / "home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    worktree.mkdir(parents=True, exist_ok=True)
    (worktree / ".git").write_text(f"gitdir: {scratch / 'gitdir'}\n")
    launcher: list[str] = []
    if user is not None:
        for path in (scratch, worktree, worktree / ".git", home, home / "tmp"):
            os.chown(path, user, user)
        launcher = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]
    paths = SandboxPaths(worktree, home, None, git_dir)
    trial = EscapeTrial(paths, list(targets), host_pid=host_pid or os.getpid())
    sockets = scratch / "host-sockets"
    sockets.mkdir(exist_ok=True)
    sockets.chmod(0o777)
    trial.listen(sockets / "host.sock")
    try:
        # wrap() masks the sockets it finds bound: the listener exists before it is called.
        wrapped = wrap(config, trial.argv(config.sandbox, python), [], trial.paths, user=user)
        argv = [*launcher, *wrapped]
        env = {**os.environ, **podman_args(config)[1]}
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=worktree
            )
            output = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired:
            output = f"the probe took over {timeout:.0f} s"
        return trial.judge(config.sandbox, output), output
    finally:
        trial.close()
