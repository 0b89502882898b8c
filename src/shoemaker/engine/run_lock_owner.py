"""Who holds a project's run lock, as its holder wrote it in the lock file: read without
taking the lock (``RunLock`` in ``project.py`` takes it)."""

from __future__ import annotations

import fcntl
from pathlib import Path

RUN_LOCK_FILE = "run.lock"


def lock_owner(path: Path) -> tuple[int | None, str] | None:
    """Who holds the run lock at ``path``, as its holder wrote it: (pid, command line), or
    None when nobody does (checked by trying a shared lock for a moment)."""
    try:
        with path.open("r") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read(200).strip()
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
                return None
    except OSError:
        return None
    pid, _, command = text.partition(" ")
    return (int(pid) if pid.isdigit() else None), command


def run_lock_holder(state_dir: Path) -> str | None:
    """Who holds the run lock of the project whose state is in ``state_dir``: "pid N
    (command)", or None when nobody does."""
    owner = lock_owner(state_dir / RUN_LOCK_FILE)
    if owner is None:
        return None
    pid, command = owner
    if pid is None:
        return "a shoemaker run"
    return f"shoemaker pid {pid}" + (f" (`{command}`)" if command else "")
