"""Port blocks: each worktree's ``SHOEMAKER_PORT_BASE``, so that parallel agents' dev servers
(and their setups' and gates') never ask for the same port.

A worktree keeps its block for its life: the block's first port is written in its own git
directory (``.git/worktrees/NAME/shoemaker-port-base``), which goes when the worktree goes.
A block is claimed machine-wide, by a file named after its first port in the user cache
(``shoemaker/ports/``) created exclusively and holding the claiming git directory's path, so
two repositories (or two processes) never hand out the same block; a claim whose git
directory is gone is stale and taken over. A block is chosen only when every port in it can be
bound now, so a port something else already listens on is never given out.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

from shoemaker.errors import Failed

PORT_FILE = "shoemaker-port-base"
_LOCK = threading.Lock()


class NoFreePorts(Failed):
    """Every block from ``port_base_start`` up is claimed or in use."""


def claims_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "shoemaker" / "ports"


def _free(base: int, size: int) -> bool:
    """Whether every port of the block can be bound on all addresses now."""
    for port in range(base, base + size):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def _claim(claims: Path, base: int, owner: Path) -> bool:
    """Claim the block at ``base`` for the git directory ``owner``; False when another
    living worktree holds it."""
    claim = claims / str(base)
    for _ in range(2):
        try:
            fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = Path(claim.read_text().strip())
            except OSError:
                continue  # released meanwhile: try again
            if holder == owner:
                return True
            if holder.is_dir():
                return False
            with contextlib.suppress(FileNotFoundError):
                claim.unlink()  # its worktree is gone: the block is free again
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{owner}\n")
        return True
    return False


def port_base(admin: Path, start: int, size: int) -> int:
    """The first port of the block of the worktree whose git directory is ``admin``: the one
    it has, else a newly claimed free one."""
    recorded = admin / PORT_FILE
    with contextlib.suppress(OSError, ValueError):
        return int(recorded.read_text().strip())
    claims = claims_dir()
    claims.mkdir(parents=True, exist_ok=True)
    owner = admin.resolve()
    with _LOCK:
        for base in range(start, 65536 - size + 1, size):
            if not _free(base, size):
                continue
            if _claim(claims, base, owner):
                recorded.write_text(f"{base}\n")
                return base
    raise NoFreePorts(
        f"no free block of {size} ports from port_base_start {start} up; lower "
        "port_block_size, or remove leftover worktrees with `shoemaker gc`"
    )
