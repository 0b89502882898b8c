"""Directories an adapter makes for one run outside a sandbox (codex's ``CODEX_HOME``).

They live in the project's state directory, named by the shoemaker process that made them:
a run removes its own when it ends, and what a killed shoemaker left (its sessions, a copy of
a login) is found by that name and removed by the next recovery.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

#: Under the state directory.
SCRATCH = "agent-homes"


def scratch_dir(state_dir: Path) -> Path:
    """Where runs' own directories go."""
    return state_dir / SCRATCH


def make_run_dir(scratch: Path, prefix: str) -> Path:
    """A fresh directory for one run in ``scratch`` (private to this user)."""
    scratch.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=scratch))


def remove_stale(scratch: Path) -> list[Path]:
    """Remove the run directories whose shoemaker process is gone; those removed."""
    removed = []
    for path in sorted(scratch.iterdir()) if scratch.is_dir() else []:
        parts = path.name.split("-")
        if len(parts) < 3 or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
