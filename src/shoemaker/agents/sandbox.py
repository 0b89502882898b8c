"""Sandboxes: the agent's command line wrapped in bubblewrap, podman or docker.

In every sandbox the worktree is the only writable part of the machine the agent sees (with a
``HOME`` of its own, made for the run), the credentials file is mounted read-only where the
claude CLI looks for it, and the network is the host's or none, as configured. Secret values
are passed as environment variables by *name* (``-e NAME``), never on the command line.
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shoemaker.config import Config

CREDENTIALS_IN_HOME = Path(".claude") / ".credentials.json"


@dataclass(frozen=True, slots=True)
class SandboxPaths:
    """Host paths a sandboxed run needs."""

    worktree: Path
    home: Path
    """A fresh directory, the agent's HOME (inside and out)."""
    credentials: Path | None = None
    """The token file, mounted read-only at HOME/.claude/.credentials.json."""
    git_dir: Path | None = None
    """The repository's common git directory, readable (a worktree's .git points into it)."""
    read_only: tuple[Path, ...] = ()
    """Files inside ``home`` mounted read-only over themselves (the run's ``shoemaker done``)."""


def podman_args(config: Config) -> tuple[list[str], dict[str, str]]:
    """``podman_args`` with every ``-e NAME=VALUE`` (``--env``, ``--env=``) turned into
    ``-e NAME``, and the values: they go into the environment of the podman process instead,
    so no value (an API key, say) is in a command line, which every user of the machine can
    read and shoemaker stores."""
    args, values = list(config.podman_args), {}
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        pair = None
        if arg in ("-e", "--env") and i + 1 < len(args) and "=" in args[i + 1]:
            pair, i = args[i + 1], i + 1
        elif arg.startswith("--env=") and "=" in arg[len("--env=") :]:
            pair = arg[len("--env=") :]
        if pair is None:
            out.append(arg)
        else:
            name, value = pair.split("=", 1)
            values[name] = value
            out += ["-e", name]
        i += 1
    return out, values


#: The agent's uid and gid inside bwrap when shoemaker runs as root: in a user namespace of its
#: own, an unprivileged id that exists on every system (``nobody``), so the agent holds no
#: capability; other users keep their own ids.
ROOT_SANDBOX_ID = 65534


def wrap(
    config: Config,
    argv: list[str],
    env_names: list[str],
    paths: SandboxPaths,
    *,
    user: int | None = None,
) -> list[str]:
    """``argv`` as it runs in the configured sandbox (unchanged for ``none``). ``user``: the
    uid that will start it, when not this process's (``doctor``'s trial as another user)."""
    kind = config.sandbox
    if kind == "none":
        return argv
    if kind == "bwrap":
        return _bwrap(config, argv, paths, os.getuid() if user is None else user)
    return _container(config, argv, env_names, paths)


def _bwrap(config: Config, argv: list[str], paths: SandboxPaths, user: int) -> list[str]:
    wt, home = str(paths.worktree), str(paths.home)
    # /tmp stays the host's, read-only (the agent's interpreter or repository may live
    # there); TMPDIR points into the run's own HOME instead.
    out = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    out += ["--bind", home, home, "--setenv", "TMPDIR", str(paths.home / "tmp")]
    if paths.git_dir is not None:
        out += ["--ro-bind", str(paths.git_dir), str(paths.git_dir)]
    if paths.credentials is not None:
        out += ["--ro-bind", str(paths.credentials), str(paths.home / CREDENTIALS_IN_HOME)]
    out += ["--bind", wt, wt]
    out += _git_file_read_only(paths.worktree, lambda f: ["--ro-bind", f, f])
    for path in paths.read_only:
        out += ["--ro-bind", str(path), str(path)]
    # After every bind (one may hold a socket, git's fsmonitor has one in the git dir): the
    # host's unix sockets (a container daemon, tmux, an ssh agent, the system bus) stay
    # connectable through a read-only mount, and the agent still has their owner's uid: masked.
    for socket_path in _host_sockets((paths.worktree, paths.home), user):
        out += ["--ro-bind", "/dev/null", socket_path]
    out += ["--chdir", wt, "--setenv", "HOME", home]
    # No capability and no way back to one: an unprivileged id in a user namespace of its own
    # (as root too, where bwrap would otherwise keep every capability), an empty bounding set,
    # no nested user namespace; its own pids (no /proc/<host pid>/cwd), session, ipc and uts.
    uid, gid = (user, _primary_gid(user)) if user else (ROOT_SANDBOX_ID, ROOT_SANDBOX_ID)
    out += ["--unshare-user", "--uid", str(uid), "--gid", str(gid)]
    out += ["--cap-drop", "ALL", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if "--disable-userns" in _bwrap_options():
        out.append("--disable-userns")
    out += ["--new-session", "--die-with-parent"]
    if config.sandbox_network == "none":
        out.append("--unshare-net")
    return [*out, "--", *argv]


def _container(
    config: Config, argv: list[str], env_names: list[str], paths: SandboxPaths
) -> list[str]:
    kind = config.sandbox
    wt, home = str(paths.worktree), str(paths.home)
    out = [kind, *config.podman_global_args, "run", "--rm", "-i"]
    out += [f"--network={'none' if config.sandbox_network == 'none' else 'host'}"]
    # Root in the container holds no capability and cannot gain one through a setuid program.
    out += ["--cap-drop=ALL", "--security-opt=no-new-privileges"]
    if config.sandbox_read_only_root:
        out += ["--read-only", "--tmpfs=/tmp"]
    out += ["-v", f"{wt}:{wt}", "-w", wt, "-v", f"{home}:{home}", "-e", f"HOME={home}"]
    out += _git_file_read_only(paths.worktree, lambda f: ["-v", f"{f}:{f}:ro"])
    if paths.git_dir is not None:
        out += ["-v", f"{paths.git_dir}:{paths.git_dir}:ro"]
    if paths.credentials is not None:
        out += ["-v", f"{paths.credentials}:{paths.home / CREDENTIALS_IN_HOME}:ro"]
    for path in paths.read_only:
        out += ["-v", f"{path}:{path}:ro"]
    for name in env_names:
        if name != "HOME":
            out += ["-e", name]  # the value comes from this process's environment
    return [*out, *podman_args(config)[0], config.podman_image, *argv]


def _git_file_read_only(worktree: Path, mount: Callable[[str], list[str]]) -> list[str]:
    """A linked worktree's ``.git`` file tells git where its repository is, and shoemaker runs
    git in the worktree after the agent (to commit its work): read-only, so that the agent
    cannot point those commands at a directory of its own (with hooks or an fsmonitor)."""
    dot_git = worktree / ".git"
    return mount(str(dot_git)) if dot_git.is_file() else []


def _host_sockets(inside: tuple[Path, ...], user: int) -> list[str]:
    """Paths of the unix sockets bound on this host (outside ``inside``) that ``user`` could
    connect to, from /proc/net/unix."""
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return []
    found: set[str] = set()
    for line in lines:
        fields = line.split(None, 7)
        if len(fields) < 8 or not fields[7].startswith("/"):
            continue  # unnamed, or abstract (those belong to the network namespace)
        path = Path(fields[7])
        if any(path.is_relative_to(p) for p in inside):
            continue
        try:
            # One the agent's user cannot connect to (another user's, behind a private
            # directory) needs no mask, and bwrap could not make a mount point there.
            if stat.S_ISSOCK(path.lstat().st_mode) and _connectable(path, user):
                found.add(str(path))
        except OSError:
            continue  # gone, or not reachable from here
    return sorted(found)


def _primary_gid(uid: int) -> int:
    if uid == os.getuid():
        return os.getgid()
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


def _connectable(path: Path, uid: int) -> bool:
    """Whether ``uid`` (with its primary group alone) may connect to the socket at ``path``:
    search permission on every directory above it, write permission on it."""
    if uid == 0:
        return True
    if uid == os.getuid():
        return os.access(path, os.W_OK)
    gid = _primary_gid(uid)

    def allows(p: Path, bit: int) -> bool:
        st = p.stat()
        shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
        return bool(st.st_mode & (bit << shift))

    return all(allows(d, 1) for d in path.parents) and allows(path, 2)


@functools.cache
def _bwrap_options() -> frozenset[str]:
    """The options this bwrap knows (``--disable-userns`` arrived in 0.8)."""
    try:
        proc = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(re.findall(r"--[a-z][a-z-]+", proc.stdout + proc.stderr))


# What a failed trial run says, and what to do about it: hosts that run shoemaker inside a
# container often cannot raise limits or use cgroups v2 controllers.
_KNOWN = [
    (
        re.compile(r"setrlimit `?RLIMIT_(NOFILE|NPROC)|error setting rlimit", re.I),
        "the runtime may not raise resource limits here: add "
        "`--ulimit nofile=1024:1024 --ulimit nproc=1024:1024` to podman_args",
    ),
    (
        re.compile(r"cgroups in hybrid mode", re.I),
        "crun cannot use this host's cgroups: add `--runtime runc` to podman_args (install runc) "
        "and `--cgroup-manager=cgroupfs` to podman_global_args",
    ),
    (
        re.compile(r"runtime \"?runc\"? not found", re.I),
        "install runc (apt-get install runc)",
    ),
    (
        re.compile(r"pinging container registry|no such host|image not known", re.I),
        "the image is not here and no registry is reachable: build or import it locally "
        "(podman import / podman build) and set podman_image",
    ),
    (
        re.compile(r"No permissions to create new namespace|Operation not permitted", re.I),
        "this host does not allow the namespaces the sandbox needs; use sandbox: none "
        "or run shoemaker where user namespaces are allowed",
    ),
]


def explain(output: str) -> str:
    """A fix for a failed trial run, from what it printed (empty if unknown)."""
    for pattern, fix in _KNOWN:
        if pattern.search(output):
            return fix
    return ""


def trial_run(
    config: Config, scratch: Path, argv: Sequence[str] = ("true",)
) -> tuple[bool, str, str]:
    """Run ``argv`` in the sandbox for real: (ok, what it printed, a fix when it failed)."""
    kind = config.sandbox
    if kind == "none":
        return True, "", ""
    if shutil.which(kind) is None:
        return False, f"{kind} is not installed", f"install it (apt-get install {_package(kind)})"
    if kind != "bwrap" and not config.podman_image:
        return False, "podman_image is empty", "set podman_image to an image with the agent CLI"
    home = scratch / "home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    wrapped = wrap(config, list(argv), [], SandboxPaths(scratch, home))
    env = {**os.environ, **podman_args(config)[1]}
    try:
        proc = subprocess.run(wrapped, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        return False, f"{kind}: a trial run took over 120 s", "check the runtime"
    output = (proc.stderr + proc.stdout).strip()
    if proc.returncode != 0:
        return False, f"{kind} exited {proc.returncode}: {output[-300:]}", explain(output)
    return True, output, ""


def sandbox_of(argv: list[str]) -> str:
    """Which sandbox a stored run's command line ran in."""
    name = Path(argv[0]).name if argv else ""
    return name if name in ("bwrap", "podman", "docker") else "none"


def sandbox_label(argv: list[str], worker: str = "", sandbox: str = "") -> str:
    """Where a run ran, as its attempts row says it: the sandbox (``sandbox``, the one its
    worker reported, else the one its command line shows), and the cluster worker if any:
    ``bwrap (on worker w1)``."""
    kind = sandbox or sandbox_of(argv)
    return f"{kind} (on worker {worker})" if worker else kind


def _package(kind: str) -> str:
    return {"bwrap": "bubblewrap"}.get(kind, kind)
