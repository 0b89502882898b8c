"""A pool of worktrees, so that a task does not pay for writing every file of the repository.

Adding a worktree checks out the whole tree (about 1.4 s for 5,000 files on a slow disk); an
idle one is instead switched to the new branch and base, which rewrites only what differs.
Isolation stays strict: a worktree is reserved for one task at a time, under a lock, and the
reservation is recorded in the store (the task's ``worktree``) before anything runs in it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from shoemaker.git import Git, GitError

#: In a worktree's own git directory: the untracked paths its setup left (installed
#: dependencies), which survive when the worktree is cleaned for its next task.
KEEP_FILE = "shoemaker-keep"


def kept_entries(git: Git, path: Path) -> list[str]:
    """What the setup of worktree ``path`` left, to keep when it is cleaned."""
    admin = git.admin_dir(path)
    try:
        return (admin / KEEP_FILE).read_text().splitlines() if admin else []
    except OSError:
        return []


class WorktreePool:
    """Worktrees under ``root`` named ``<prefix>-N``; idle ones are reused, never shared."""

    def __init__(self, git: Git, root: Path, prefix: str, reuse: bool = True) -> None:
        self.git = git
        self.root = root
        self.prefix = prefix
        self.reuse = reuse
        self._lock = threading.Lock()
        self._idle: list[Path] = []
        self._busy: set[Path] = set()
        self._counter = 0
        self._adopted = False
        # Paths this pool knows git has registered (adopted, or added by it), and new paths
        # that nothing is registered at (chosen after ``_adopt`` pruned): ``prepare`` need not
        # ask ``git worktree list`` about either.
        self._registered: set[Path] = set()
        self._fresh: set[Path] = set()

    def _adopt(self) -> None:
        """Worktrees of this pool left by an earlier run become idle members again."""
        self.git.prune_worktrees()
        for wt in self.git.worktrees():
            if wt.path.parent == self.root and wt.path.name.startswith(f"{self.prefix}-"):
                self._idle.append(wt.path)
        self._idle.sort()
        self._registered.update(self._idle)
        self._adopted = True

    def reserve(self) -> Path:
        """A worktree path for one task; no other caller gets it until it is released."""
        with self._lock:
            if not self._adopted:
                self._adopt()
            if self._idle:
                path = self._idle.pop(0)
            else:
                while True:
                    self._counter += 1
                    path = self.root / f"{self.prefix}-{self._counter}"
                    if path not in self._busy and not path.exists():
                        break
                if path not in self._registered:
                    self._fresh.add(path)
            self._busy.add(path)
            return path

    def prepare(self, path: Path, branch: str | None, base: str) -> None:
        """Make ``path`` a clean checkout of ``base``, on a new ``branch`` (or detached)."""
        with self._lock:
            fresh = path in self._fresh and not path.exists()
            self._fresh.discard(path)
            known = path in self._registered
        if not known and not fresh:
            known = any(w.path == path for w in self.git.worktrees())
        if not known:
            if not fresh:
                self.git.clear_worktree_path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            if branch is None:
                self.git.add_detached_worktree(path, base)
            else:
                self.git.add_worktree(path, branch, base)
            with self._lock:
                self._registered.add(path)
            return
        try:
            self.git.reset_worktree(path, branch, base, kept_entries(self.git, path))
        except GitError:
            # A worktree too damaged to reset (or removed behind the pool's back) is
            # replaced, never half used.
            self._forget(path)
            self.git.remove_worktree(path)
            self.prepare(path, branch, base)

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._registered.discard(path)
            self._fresh.discard(path)

    def release(self, path: Path) -> None:
        """Return a worktree to the pool: detached, so its branch can go (cleaned when it is
        prepared for the next task)."""
        if path.exists():
            self.git.restore_gitfile(path)  # before git runs there again
        if not self.reuse:
            self.discard(path)
            return
        try:
            if not self.git.is_detached(path):  # a commit may have detached it already
                self.git.detach_worktree(path)
        except GitError:
            self.discard(path)
            return
        with self._lock:
            self._busy.discard(path)
            if path not in self._idle:
                self._idle.append(path)

    def unreserve(self, path: Path) -> None:
        """Give back a reserved path that no task used (nothing was checked out there)."""
        with self._lock:
            self._busy.discard(path)
            self._fresh.discard(path)
            if path in self._registered and path not in self._idle:
                self._idle.append(path)

    def discard(self, path: Path) -> None:
        """Remove a worktree for good."""
        self._forget(path)
        self.git.remove_worktree(path)
        with self._lock:
            self._busy.discard(path)
            if path in self._idle:
                self._idle.remove(path)

    def close(self) -> None:
        """Remove the idle worktrees (at the end of a run, nothing is left behind)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._registered.difference_update(idle)
        for path in idle:
            self.git.remove_worktree(path)
