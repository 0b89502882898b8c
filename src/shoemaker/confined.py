"""Reading files from a repository or a worktree without following a link out of it.

An agent can commit a symlink (``docs/notes.md -> /etc/shadow``) or leave one in its worktree
as the proposals file; what shoemaker reads there ends up in a prompt, the store or the screen.
So every such read checks where the file really is, on the opened file itself (no window
between the check and the read), and refuses anything that is not a regular file inside.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class Refused(Exception):
    """A file that must not be read: its real path leaves the directory it was read from, or
    it is not a regular file. The message names the file (never its target or content)."""

    def __init__(self, shown: str, why: str) -> None:
        super().__init__(f"{shown} {why}")
        self.shown = shown


def leaves(root: Path, path: Path) -> bool:
    """Whether ``path``, every symlink resolved, lies outside ``root`` (resolved too)."""
    real_root = root.resolve()
    real = path.resolve()
    return real != real_root and real_root not in real.parents


def read_text(root: Path, path: Path, shown: str | None = None) -> str:
    """The text of ``path``, as :func:`read_bytes` reads it, undecodable bytes replaced."""
    return read_bytes(root, path, shown).decode("utf-8", "replace")


def read_bytes(root: Path, path: Path, shown: str | None = None) -> bytes:
    """The bytes of ``path``, a file inside ``root``. Raises :class:`Refused` when it is a link
    that leads out of ``root``, or not a regular file (a FIFO would block, a device never
    end); ``shown`` is how the message names the file (default: relative to ``root``)."""
    if shown is None:
        shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        # Where the opened file really is: a link swapped after a check cannot fool this.
        real = Path(os.readlink(f"/proc/self/fd/{fd}"))
        real_root = root.resolve()
        if real != real_root and real_root not in real.parents:
            raise Refused(shown, f"is a link to a file outside {real_root}")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(shown, "is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    finally:
        os.close(fd)
    return data
