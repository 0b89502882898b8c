"""A program that tries to break out of the sandbox it runs in, and says how each try went.

``shoemaker doctor`` runs it inside the configured sandbox exactly as an agent is run (its argv
through :func:`shoemaker.agents.sandbox.wrap`): ``python -m shoemaker.agents.escape_probe``.
It uses the standard library only, so any Python 3.11+ on the host can run it.

Each try writes a file of its own name (the marker, ``.proc`` or ``.remount`` after it), and
prints one tab-separated line, ``ESCAPE <key> <refused|escaped> <what happened>``.
What it claims is not the verdict: the host side (:mod:`shoemaker.agents.sandbox_proof`) also
looks for the files it tried to write and takes a file found there as an escape.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import socket
import sys
from pathlib import Path

MS_RDONLY, MS_REMOUNT, MS_BIND = 0x1, 0x20, 0x1000
CLONE_NEWUSER = 0x10000000


def _say(key: str, escaped: bool, detail: str) -> None:
    print(f"ESCAPE\t{key}\t{'escaped' if escaped else 'refused'}\t{detail}", flush=True)


def _why(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


def _write(path: Path) -> str | None:
    """None when ``path`` was written, else why not."""
    try:
        with open(path, "x") as handle:
            handle.write("written from inside the sandbox\n")
    except OSError as exc:
        return _why(exc)
    return None


def _status(field: str) -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def proc_cwd(host_pid: int, marker: str) -> None:
    target = Path(f"/proc/{host_pid}/cwd") / f"{marker}.proc"
    why = _write(target)
    _say("proc-cwd", why is None, f"wrote {target}" if why is None else f"{target}: {why}")


def host_processes(host_pid: int, host_start: str, host_pidns: str) -> None:
    try:
        ours = os.readlink("/proc/self/ns/pid")
    except OSError as exc:
        ours = f"unreadable ({_why(exc)})"
    try:
        fields = Path(f"/proc/{host_pid}/stat").read_text().rsplit(")", 1)[1].split()
        seen = fields[19] == host_start  # field 22 of stat: the start time
    except (OSError, IndexError):
        seen = False
    count = sum(1 for name in os.listdir("/proc") if name.isdigit())
    if seen or ours == host_pidns:
        what = f"shoemaker's pid {host_pid} is visible" if seen else f"{ours} is the host's"
        _say("processes", True, f"{what}; /proc lists {count} processes")
    else:
        _say("processes", False, f"own pid namespace ({count} processes in /proc)")


def remount(marker: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    flags = MS_REMOUNT | MS_BIND
    if libc.mount(None, b"/", None, flags, None) != 0:
        _say("remount", False, f"mount -o remount,bind,rw /: {os.strerror(ctypes.get_errno())}")
        return
    why = _write(Path("/tmp") / f"{marker}.remount")
    done = "and wrote /tmp" if why is None else f"but /tmp: {why}"
    _say("remount", True, f"remounted / read-write {done}")
    libc.mount(None, b"/", None, flags | MS_RDONLY, None)


def write_outside(targets: list[Path], marker: str) -> None:
    for target in targets:
        path = target / marker
        why = _write(path)
        _say(f"write:{target}", why is None, f"wrote {path}" if why is None else why)


def git_file(path: Path) -> None:
    try:
        with open(path, "a") as handle:
            handle.write("\n")
    except OSError as exc:
        _say("git-file", False, f"{path}: {_why(exc)}")
    else:
        _say("git-file", True, f"appended to {path}")


def capabilities() -> None:
    effective = _status("CapEff")
    held = int(effective or "0", 16) != 0
    _say("capabilities", held, f"CapEff {effective}")


def no_new_privs() -> None:
    value = _status("NoNewPrivs")
    detail = "set: setuid programs cannot raise privileges" if value == "1" else "not set"
    _say("setuid", value != "1", f"no_new_privs {detail}")


def user_namespace() -> None:
    """A new user namespace would give back every capability inside it: try in a child."""
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        os._exit(0 if libc.unshare(CLONE_NEWUSER) == 0 else min(ctypes.get_errno(), 255) or 1)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    detail = "created one" if code == 0 else os.strerror(code)
    _say("userns", code == 0, f"unshare(CLONE_NEWUSER): {detail}")


def host_socket(path: Path) -> None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(path))
    except OSError as exc:
        _say("socket", False, f"connect {path}: {_why(exc)}")
    else:
        _say("socket", True, f"connected to {path}")
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="escape_probe", description=__doc__)
    parser.add_argument("--marker", required=True, help="the name of every file it writes")
    parser.add_argument("--host-pid", type=int, required=True, help="shoemaker's pid")
    parser.add_argument("--host-start", required=True, help="its start time (stat field 22)")
    parser.add_argument("--host-pidns", required=True, help="readlink of its /proc/PID/ns/pid")
    parser.add_argument("--socket", type=Path, help="a unix socket listening on the host")
    parser.add_argument("--git-file", type=Path, help="the worktree's .git file")
    parser.add_argument("targets", nargs="*", type=Path, help="host directories to write into")
    args = parser.parse_args(argv)
    tries = [
        lambda: proc_cwd(args.host_pid, args.marker),
        lambda: host_processes(args.host_pid, args.host_start, args.host_pidns),
        lambda: remount(args.marker),
        lambda: write_outside(args.targets, args.marker),
        capabilities,
        no_new_privs,
        user_namespace,
    ]
    if args.git_file is not None:
        tries.append(lambda: git_file(args.git_file))
    if args.socket is not None:
        tries.append(lambda: host_socket(args.socket))
    for attempt in tries:
        try:
            attempt()
        except Exception as exc:  # one failed try must not hide the others
            print(f"probe error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
