"""The worktree pool: reuse without sharing, adoption after a crash, cleanup."""

from __future__ import annotations

from pathlib import Path

from shoemaker.engine.worktrees import WorktreePool
from shoemaker.git import Git


def repo(tmp: Path) -> Git:
    git = Git.init_repo(tmp / "repo")
    (git.root / "a.txt").write_text("a\n")
    git.commit_all(git.root, "initial")
    return git


def test_reserve_never_hands_out_a_busy_worktree(fast_tmp: Path) -> None:
    git = repo(fast_tmp)
    pool = WorktreePool(git, fast_tmp / "wt", "g")
    first, second = pool.reserve(), pool.reserve()
    assert first != second
    pool.prepare(first, "task/g-1", "HEAD")
    (first / "left-behind.txt").write_text("junk")
    pool.release(first)
    third = pool.reserve()
    assert third == first  # reused
    pool.prepare(third, "task/g-3", "HEAD")
    assert not (third / "left-behind.txt").exists()  # clean, like a fresh worktree
    assert git.current_branch(third) == "task/g-3"
    pool.release(third)
    pool.close()
    assert [w.path for w in git.worktrees()] == [git.root]


def test_a_new_pool_adopts_worktrees_an_earlier_run_left(fast_tmp: Path) -> None:
    git = repo(fast_tmp)
    old = WorktreePool(git, fast_tmp / "wt", "g")
    path = old.reserve()
    old.prepare(path, None, "HEAD")  # the process "crashes" here, without releasing
    fresh = WorktreePool(git, fast_tmp / "wt", "g")
    assert fresh.reserve() == path
    fresh.prepare(path, "task/g-9", "HEAD")
    assert git.current_branch(path) == "task/g-9"


def test_without_reuse_released_worktrees_are_removed(fast_tmp: Path) -> None:
    git = repo(fast_tmp)
    pool = WorktreePool(git, fast_tmp / "wt", "g", reuse=False)
    path = pool.reserve()
    pool.prepare(path, "task/g-1", "HEAD")
    pool.release(path)
    assert not path.exists() and [w.path for w in git.worktrees()] == [git.root]
