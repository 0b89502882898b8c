"""The git layer on real repositories in temp dirs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shoemaker.git import Git, GitError
from shoemaker.globs import matches_any
from shoemaker.loc import Loc


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(fast_tmp: Path) -> Git:
    g = Git.init_repo(fast_tmp / "repo")
    (g.root / "README.md").write_text("hello\n")
    (g.root / "src").mkdir()
    (g.root / "src" / "app.py").write_text("a = 1\n\nb = 2\n")
    g.commit_all(g.root, "initial")
    return g


def test_not_a_repository(fast_tmp: Path) -> None:
    with pytest.raises(GitError, match="not inside a git repository"):
        Git(fast_tmp)


def test_commit_without_identity_and_with_trailers(repo: Git) -> None:
    (repo.root / "x.txt").write_text("x\n")
    sha = repo.commit_all(repo.root, "Add x", "Why x.", {"Shoemaker-Task": "3", "Cost": "0.1"})
    assert sha == repo.rev_parse("HEAD")
    parsed = git(repo.root, "log", "-1", "--format=%(trailers:key=Shoemaker-Task,valueonly)")
    assert parsed.strip() == "3"
    assert repo.log("HEAD", max_count=1)[0].trailers == {"Shoemaker-Task": "3", "Cost": "0.1"}
    assert git(repo.root, "log", "-1", "--format=%an").strip() == "shoemaker"
    assert repo.commit_all(repo.root, "nothing") is None


def test_branches_tags_and_bad_names(repo: Git) -> None:
    repo.create_branch("generation-a", "HEAD")
    repo.tag("a-start", "HEAD", "starts here")
    assert "generation-a" in repo.branches() and repo.tags("a-*") == ["a-start"]
    assert git(repo.root, "cat-file", "-t", "a-start").strip() == "tag"
    with pytest.raises(GitError, match="not a valid branch"):
        repo.create_branch("bad name..", "HEAD")
    with pytest.raises(GitError):
        repo.rev_parse("no-such-ref")


def test_worktrees(repo: Git, fast_tmp: Path) -> None:
    path = fast_tmp / "wt" / "task-1"
    repo.add_worktree(path, "task/g-1", "HEAD")
    assert repo.current_branch(path) == "task/g-1"
    assert any(w.path == path and w.branch == "task/g-1" for w in repo.worktrees())
    (path / "new.py").write_text("print(1)\n")
    repo.remove_worktree(path)
    assert not path.exists()
    assert [w.path for w in repo.worktrees()] == [repo.root]
    assert repo.ref_exists("refs/heads/task/g-1")  # the branch outlives the worktree
    repo.remove_worktree(path)  # already gone: no error


def test_a_worktrees_git_directory_is_found_again_after_its_name_went_to_another(
    repo: Git, fast_tmp: Path
) -> None:
    # The directory found for a worktree is remembered, and checked at every use: git names
    # it after the worktree's last path component, so a removed worktree's name goes to the
    # next one added under the same name elsewhere.
    first, second = fast_tmp / "a" / "task-1", fast_tmp / "b" / "task-1"
    repo.add_detached_worktree(first, "HEAD")
    admin = repo.admin_dir(first)
    assert admin is not None and admin.parent == repo.common_dir / "worktrees"
    repo.remove_worktree(first)
    repo.add_detached_worktree(second, "HEAD")
    assert repo.admin_dir(second) == admin  # the same name, now another worktree's
    assert repo.admin_dir(first) is None
    repo.add_detached_worktree(first, "HEAD")
    again = repo.admin_dir(first)
    assert again is not None and again != admin and (again / "gitdir").exists()
    assert repo.admin_dir(second) == admin


def test_a_worktree_half_made_by_another_add_is_waited_for(
    repo: Git, fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another `git worktree add` has made its admin directory, and its commondir is still
    # empty: git refuses to add a worktree beside it ("failed to read …/commondir"). The add
    # is tried again once the other one is complete (here: the pause before trying again
    # completes it).
    ghost = repo.root / ".git" / "worktrees" / "ghost"
    ghost.mkdir(parents=True)
    (ghost / "gitdir").write_text(f"{fast_tmp / 'ghost' / '.git'}\n")
    (ghost / "commondir").write_text("")
    refused = subprocess.run(
        ["git", "worktree", "add", "-q", "--detach", str(fast_tmp / "first"), "HEAD"],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 128 and "worktrees/ghost/commondir" in refused.stderr
    pauses: list[float] = []

    class OtherAddDone:
        @staticmethod
        def sleep(seconds: float) -> None:
            pauses.append(seconds)
            (ghost / "commondir").write_text("../..\n")

    monkeypatch.setattr("shoemaker.git.time", OtherAddDone)
    repo.add_detached_worktree(fast_tmp / "second", "HEAD")
    assert len(pauses) == 1 and (fast_tmp / "second" / ".git").is_file()


def _bundle_from_a_clone(repo: Git, where: Path, commits: int) -> tuple[Path, str, str]:
    """A bundle of branch ``task/g-1`` made in a clone of ``repo``, holding its last commit
    (or with ``commits=2``, its last two but the first of them: a bundle that builds on a
    commit ``repo`` lacks). The bundle, its tip, and the commit it builds on."""
    other = where / "other"
    where.mkdir(exist_ok=True)
    git(where, "clone", "-q", str(repo.root), str(other))
    git(other, "checkout", "-q", "-b", "task/g-1")
    for n in range(commits):
        (other / f"new{n}.py").write_text(f"n = {n}\n")
        git(other, "add", ".")
        git(other, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"new {n}")
    base = git(other, "rev-parse", "HEAD~1" if commits > 1 else "origin/HEAD").strip()
    bundle = where / "task.bundle"
    git(other, "bundle", "create", "-q", str(bundle), f"{base}..task/g-1")
    return bundle, git(other, "rev-parse", "task/g-1").strip(), base


def test_a_bundle_lands_while_another_worktree_is_being_added(repo: Git, fast_tmp: Path) -> None:
    bundle, tip, _ = _bundle_from_a_clone(repo, fast_tmp, 1)
    # `git worktree add` (another task's slot) first writes a null HEAD, for a moment:
    # a connectivity check walking every worktree's HEAD fails on it ("bad object").
    repo.add_detached_worktree(fast_tmp / "adding", "HEAD")
    (repo.root / ".git" / "worktrees" / "adding" / "HEAD").write_text("0" * 40 + "\n")
    walked = subprocess.run(
        ["git", "bundle", "unbundle", str(bundle)], cwd=repo.root, capture_output=True, text=True
    )
    assert walked.returncode != 0 and "worktrees/adding/HEAD" in walked.stderr
    repo.fetch_bundle(bundle, "task/g-1")
    assert repo.rev_parse("task/g-1") == tip
    assert git(repo.root, "show", "task/g-1:new0.py") == "n = 0\n"


def test_a_bundle_that_builds_on_a_commit_not_here_is_refused(repo: Git, fast_tmp: Path) -> None:
    bundle, _, base = _bundle_from_a_clone(repo, fast_tmp, 2)
    with pytest.raises(GitError, match=f"builds on commits not here: {base[:12]}"):
        repo.fetch_bundle(bundle, "task/g-1")
    assert not repo.ref_exists("refs/heads/task/g-1")
    with pytest.raises(GitError, match="holds no branch task/g-2"):
        repo.fetch_bundle(_bundle_from_a_clone(repo, fast_tmp / "again", 1)[0], "task/g-2")
    assert not repo.ref_exists("refs/heads/task/g-2")
    not_one = fast_tmp / "not.bundle"
    not_one.write_bytes(b"PK\x03\x04 a zip file\n\nmore")
    with pytest.raises(GitError, match="is not a git bundle"):
        repo.fetch_bundle(not_one, "task/g-3")


def test_squash_merge_and_conflict_leaves_everything_clean(repo: Git, fast_tmp: Path) -> None:
    repo.create_branch("gen", "HEAD")
    repo.checkout("gen")
    wt = fast_tmp / "wt1"
    repo.add_worktree(wt, "task/g-1", "gen")
    (wt / "src" / "app.py").write_text("a = 10\n\nb = 2\n")
    task_commit = repo.commit_all(wt, "change a", "", {"Shoemaker-Task": "1"})
    repo.remove_worktree(wt)
    # Meanwhile the generation branch changes the same line.
    (repo.root / "src" / "app.py").write_text("a = 99\n\nb = 2\n")
    head = repo.commit_all(repo.root, "other change")

    outcome = repo.squash_merge("task/g-1", "change a\n")
    assert not outcome.merged
    assert outcome.conflict_files == ("src/app.py",)
    assert "conflict in src/app.py" in outcome.reason
    assert repo.rev_parse("HEAD") == head
    assert not repo.is_merging()
    assert git(repo.root, "status", "--porcelain") == ""
    assert repo.rev_parse("task/g-1") == task_commit  # the task's work is intact

    fixed = fast_tmp / "wt2"
    repo.add_worktree(fixed, "task/g-2", "gen")
    (fixed / "src" / "new.py").write_text("x = 1\n")
    repo.commit_all(fixed, "add new", "", {"Shoemaker-Task": "2"})
    repo.remove_worktree(fixed)
    merged = repo.squash_merge("task/g-2", repo.commit_message("task/g-2"))
    assert merged.merged and merged.commit == repo.rev_parse("HEAD")
    assert repo.log("HEAD", max_count=1)[0].trailers == {"Shoemaker-Task": "2"}
    assert (
        len(repo.log("HEAD", max_count=1)[0].parents) == 1
    )  # one commit per task, no merge commit


def test_a_failed_merge_never_resets_a_persons_uncommitted_changes(
    repo: Git, fast_tmp: Path
) -> None:
    wt = fast_tmp / "wt"
    repo.add_worktree(wt, "task/g-1", "HEAD")
    (wt / "src" / "app.py").write_text("a = 10\n\nb = 2\n")
    repo.commit_all(wt, "change a")
    # A person's unstaged edit of the file the merge changes: git refuses, nothing moves.
    (repo.root / "src" / "app.py").write_text("a = 1  # mine\n\nb = 2\n")
    outcome = repo.squash_merge("task/g-1", "change a\n")
    assert not outcome.merged
    assert (repo.root / "src" / "app.py").read_text() == "a = 1  # mine\n\nb = 2\n"
    git(repo.root, "checkout", "--", ".")
    # A conflict while a person has an unrelated edit and a file of their own: the conflict
    # is undone, their edit and file stay.
    (repo.root / "src" / "app.py").write_text("a = 20\n\nb = 2\n")
    repo.commit_all(repo.root, "change a here")
    (repo.root / "README.md").write_text("hello, mine\n")
    (repo.root / "notes.txt").write_text("my notes\n")
    outcome = repo.squash_merge("task/g-1", "change a\n")
    assert not outcome.merged and outcome.conflict_files == ("src/app.py",)
    assert (repo.root / "README.md").read_text() == "hello, mine\n"
    assert (repo.root / "notes.txt").read_text() == "my notes\n"
    assert sorted(repo.dirty_paths()) == ["README.md", "notes.txt"]
    assert not repo.has_staged() and not repo.is_merging()


def test_no_ff_merge_conflict_is_aborted(repo: Git) -> None:
    repo.create_branch("side", "HEAD")
    repo.checkout("side")
    (repo.root / "README.md").write_text("side\n")
    repo.commit_all(repo.root, "side")
    repo.checkout("main")
    (repo.root / "README.md").write_text("main\n")
    head = repo.commit_all(repo.root, "main")
    clean, files = repo.would_merge_cleanly("side", "main")
    assert (clean, files) == (False, ("README.md",))
    outcome = repo.merge("side", "Merge side", {"Shoemaker-Generation": "g"})
    assert not outcome.merged and outcome.conflict_files == ("README.md",)
    assert repo.rev_parse("HEAD") == head and not repo.is_merging() and repo.is_clean()


def test_squash_onto_makes_the_commit_a_squash_merge_would_without_a_worktree(
    repo: Git, fast_tmp: Path
) -> None:
    start = repo.rev_parse("HEAD")
    wt = fast_tmp / "wt"
    repo.add_worktree(wt, "task/g-1", start)
    (wt / "src" / "app.py").write_text("a = 10\n\nb = 2\n")
    (wt / "new.py").write_text("x = 1\n")
    task_commit = repo.commit_all(wt, "work", "", {"Shoemaker-Task": "1"})
    repo.remove_worktree(wt)
    (repo.root / "README.md").write_text("hello again\n")
    head = repo.commit_all(repo.root, "elsewhere")
    assert head is not None
    status = git(repo.root, "status", "--porcelain")

    carried = repo.squash_onto("task/g-1", head, "Carried over\n\nShoemaker-Task: 1\n")
    assert carried.merged and carried.commit not in ("", head, task_commit)
    (made,) = repo.log(carried.commit, max_count=1)
    assert list(made.parents) == [head] and made.trailers == {"Shoemaker-Task": "1"}
    assert {f.path for f in repo.diff_stat(head, carried.commit).files} == {"src/app.py", "new.py"}
    # Nothing moved: no ref, no checkout.
    assert repo.rev_parse("task/g-1") == task_commit and repo.rev_parse("HEAD") == head
    assert git(repo.root, "status", "--porcelain") == status
    repo.move_branch("task/g-1", carried.commit, task_commit)
    assert repo.rev_parse("task/g-1") == carried.commit
    # Work already there: nothing to carry.
    assert repo.squash_onto("task/g-1", carried.commit, "m\n").commit == carried.commit

    (repo.root / "src" / "app.py").write_text("a = 99\n\nb = 2\n")
    clash = repo.commit_all(repo.root, "same line")
    assert clash is not None
    refused = repo.squash_onto("task/g-1", clash, "m\n")
    assert not refused.merged and refused.conflict_files == ("src/app.py",)
    assert "conflict in src/app.py" in refused.reason
    assert repo.rev_parse("task/g-1") == carried.commit


def test_diff_stats_and_live_worktree_diff(repo: Git, fast_tmp: Path) -> None:
    base = repo.rev_parse("HEAD")
    wt = fast_tmp / "wt"
    repo.add_worktree(wt, "task/g-9", base)
    (wt / "src" / "app.py").write_text("a = 1\nb = 3\nc = 4\n")
    (wt / "untracked.py").write_text("u = 1\nv = 2\n")
    index = (wt / ".git").read_text()
    live = repo.diff_stat_worktree(wt, base)
    assert {f.path: (f.insertions, f.deletions) for f in live.files} == {
        "src/app.py": (2, 2),
        "untracked.py": (2, 0),
    }
    assert "+u = 1" in repo.diff_text(base, cwd=wt)
    assert git(wt, "status", "--porcelain").splitlines() == [" M src/app.py", "?? untracked.py"]
    assert (wt / ".git").read_text() == index
    sha = repo.commit_all(wt, "edit")
    assert sha is not None
    stat = repo.diff_stat(base, sha)
    assert (stat.files_changed, stat.insertions, stat.deletions) == (2, 4, 2)


def test_loc_splits_production_and_test(repo: Git) -> None:
    (repo.root / "tests").mkdir()
    (repo.root / "tests" / "test_app.py").write_text("def test():\n\n    assert True\n")
    (repo.root / "src" / "data.bin").write_bytes(b"\0\1\2")
    repo.commit_all(repo.root, "tests")
    globs, tests = ["**/*.py"], ["tests/**"]
    loc = repo.loc("HEAD", globs, tests)
    assert (loc.production, loc.test) == (2, 2)
    (repo.root / "src" / "more.py").write_text("x = 1\n")
    assert repo.loc_worktree(repo.root, globs, tests).production == 3


@pytest.mark.parametrize(
    ("path", "glob", "hit"),
    [
        ("a.py", "**/*.py", True),
        ("src/deep/a.py", "**/*.py", True),
        ("tests/x/y.txt", "tests/**", True),
        ("src/tests.py", "tests/**", False),
        ("pkg/test_a.py", "**/test_*.py", True),
        ("src/a.py", "*.py", False),
    ],
)
def test_globs(path: str, glob: str, hit: bool) -> None:
    assert matches_any(path, [glob]) is hit


def test_ensure_excluded_is_idempotent(repo: Git) -> None:
    repo.ensure_excluded("/.shoemaker/")
    repo.ensure_excluded("/.shoemaker/")
    exclude = (repo.root / ".git" / "info" / "exclude").read_text().splitlines()
    assert exclude.count("/.shoemaker/") == 1
    (repo.root / ".shoemaker").mkdir()
    (repo.root / ".shoemaker" / "db").write_text("x")
    assert repo.is_clean()


def test_loc_after_counts_only_the_changed_files(repo: Git, fast_tmp: Path) -> None:
    globs, tests = ["**/*.py"], ["tests/**"]
    base = repo.rev_parse("HEAD")
    wt = fast_tmp / "wt-loc"
    repo.add_worktree(wt, "task/loc", base)
    (wt / "src" / "app.py").write_text("a = 1\n")  # 2 lines → 1
    (wt / "tests").mkdir()
    (wt / "tests" / "test_x.py").write_text("def test():\n    pass\n")
    changed = [f.path for f in repo.stage_all_stat(wt, base).files]
    assert sorted(changed) == ["src/app.py", "tests/test_x.py"]
    live = repo.loc_after(base, changed, globs, tests, cwd=wt)
    commit = repo.commit_all(wt, "change")
    assert commit is not None
    assert live == repo.loc_after(base, changed, globs, tests, head=commit)
    assert live == repo.loc(commit, globs, tests) == Loc(1, 2)


def test_loc_after_never_reads_through_a_link(repo: Git, fast_tmp: Path) -> None:
    base = repo.rev_parse("HEAD")
    wt = fast_tmp / "wt-link"
    repo.add_worktree(wt, "task/link", base)
    outside = fast_tmp / "outside.py"
    outside.write_text("x = 1\n" * 50)
    (wt / "src" / "linked.py").symlink_to(outside)
    changed = [f.path for f in repo.stage_all_stat(wt, base).files]
    assert changed == ["src/linked.py"]
    assert repo.loc_after(base, changed, ["**/*.py"], [], cwd=wt) == repo.loc(base, ["**/*.py"], [])


def evil_gitfile(wt: Path, pwned: Path) -> None:
    """Point ``wt``'s .git at a repository whose core.fsmonitor git would execute."""
    evil = wt / "evil"
    (evil / "objects").mkdir(parents=True)
    (evil / "refs").mkdir()
    (evil / "HEAD").write_text("ref: refs/heads/main\n")
    config = f"[core]\n\trepositoryformatversion = 0\n\tfsmonitor = touch {pwned}\n"
    (evil / "config").write_text(config)
    (wt / ".git").write_text("gitdir: evil\n")


def test_the_live_diff_never_uses_a_replaced_gitfile(repo: Git, fast_tmp: Path) -> None:
    base = repo.rev_parse("HEAD")
    wt = fast_tmp / "wt-evil"
    repo.add_worktree(wt, "task/evil", base)
    (wt / "new.py").write_text("n = 1\n")
    pwned = fast_tmp / "pwned"
    evil_gitfile(wt, pwned)
    assert "+n = 1" in repo.diff_text(base, cwd=wt)
    assert "new.py" in [f.path for f in repo.diff_stat_worktree(wt, base).files]
    assert not pwned.exists()
    assert repo.restore_gitfile(wt) and not repo.restore_gitfile(wt)
    assert repo.current_branch(wt) == "task/evil" and not pwned.exists()


def test_rebase_moves_a_branch_or_aborts_cleanly(repo: Git, fast_tmp: Path) -> None:
    base = repo.rev_parse("HEAD")
    wt = fast_tmp / "wt-rebase"
    repo.add_worktree(wt, "task/r", base)
    (wt / "new.py").write_text("n = 1\n")
    repo.commit_all(wt, "task work")
    (repo.root / "README.md").write_text("moved on\n")
    head = repo.commit_all(repo.root, "main moves")
    assert head is not None
    assert repo.rebase(wt, head) == (True, ())
    assert repo.is_ancestor(head, "task/r")
    (wt / "README.md").write_text("task edit\n")
    repo.commit_all(wt, "conflicting")
    (repo.root / "README.md").write_text("main edit\n")
    newer = repo.commit_all(repo.root, "main edits the same line")
    assert newer is not None
    before = repo.rev_parse("task/r")
    assert repo.rebase(wt, newer) == (False, ("README.md",))
    assert repo.rev_parse("task/r") == before and repo.is_clean(wt)


@pytest.mark.parametrize(
    "name",
    [
        "task/g-1",
        "attempt/gen_2-14-3.2",
        "generation-2026.11",
        "a/b/c",
        "_x",
        "v1.0",
        "x.lockx",
        "a..b",
        "a/.b",
        ".a",
        "-a",
        "a.",
        "a/b.",
        "a.lock",
        "a.lock/b",
        "a//b",
        "a/",
        "/a",
        "a b",
        "a@{b",
        "@",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "ümlaut",
    ],
)
def test_branch_names_checked_without_git_agree_with_git(repo: Git, name: str) -> None:
    # Plain names are accepted without a process; git's own answer must be the same.
    asked = subprocess.run(
        ["git", "check-ref-format", "--branch", name], cwd=repo.root, capture_output=True
    )
    try:
        repo._check_ref_name(name)
        accepted = True
    except GitError:
        accepted = False
    assert accepted == (asked.returncode == 0)


def _git_commit_message(cwd: Path, message: str) -> str:
    """What ``git commit -F -`` (hooks off) stores for ``message``: the reference."""
    subprocess.run(
        ["git", "-c", "user.name=p", "-c", "user.email=p@x", "commit", "-q", "-F", "-"],
        cwd=cwd,
        input=message,
        text=True,
        check=True,
    )
    return git(cwd, "log", "-1", "--format=%B")


def test_a_commit_by_plumbing_is_the_commit_git_commit_makes(repo: Git, fast_tmp: Path) -> None:
    base = repo.rev_parse("HEAD")
    message = "Subject  \n\n\n# a heading, kept\nbody\t \r\n\n\n\nShoemaker-Task: 1\n\n"
    reference = fast_tmp / "reference"
    repo.add_worktree(reference, "task/ref", base)
    (reference / "src" / "app.py").write_text("a = 2\n")
    git(reference, "add", "-A")
    expected = _git_commit_message(reference, message)

    wt = fast_tmp / "wt"
    repo.add_worktree(wt, "task/g-1", base)
    (wt / "src" / "app.py").write_text("a = 2\n")
    repo.commit_all(wt, "the agent's own commit")  # the branch moved past the base
    git(wt, "add", "-A")
    sha = repo.commit_index(wt, base, message, "task/g-1")
    assert repo.commit_message(sha) == expected
    assert repo.log(sha, max_count=1)[0].parents == (base,)  # folded onto the base
    assert repo.rev_parse("task/g-1") == sha and repo.current_branch(wt) == "task/g-1"
    assert git(wt, "status", "--porcelain") == "" and not repo.is_detached(wt)
    assert git(wt, "log", "-1", "--format=%an").strip() == "shoemaker"


def test_a_commit_that_detaches_its_worktree_leaves_the_branch_free(
    repo: Git, fast_tmp: Path
) -> None:
    base = repo.rev_parse("HEAD")
    wt = fast_tmp / "wt"
    repo.add_worktree(wt, "task/g-2", base)
    (wt / "new.py").write_text("x = 1\n")
    git(wt, "add", "-A")
    sha = repo.commit_index(wt, base, "Add new\n", "task/g-2", detach=True)
    assert repo.rev_parse("task/g-2") == sha == repo.rev_parse("HEAD", wt)
    assert repo.is_detached(wt) and repo.current_branch(wt) is None
    assert git(wt, "status", "--porcelain") == ""
    assert repo.current_branch() == "main"  # the main checkout's HEAD did not move
    # Nothing is checked out on the branch any more: it can go while the worktree stays.
    repo.delete_branch("task/g-2", force=True)
    assert not repo.ref_exists("refs/heads/task/g-2") and wt.is_dir()
    assert not repo.is_detached(repo.root)  # not a linked worktree: never "detached"


def test_checkout_state_agrees_with_current_branch_and_dirty_paths(
    repo: Git, fast_tmp: Path
) -> None:
    (repo.root / "keep.txt").write_text("k\n")
    repo.commit_all(repo.root, "keep")
    wt = fast_tmp / "side"
    repo.add_worktree(wt, "side", "HEAD")
    (wt / "src" / "app.py").write_text("a = 3\n")
    repo.commit_all(wt, "side change")
    (repo.root / "src" / "app.py").write_text("a = 4\n")
    repo.commit_all(repo.root, "main change")
    # Every kind of entry: unmerged, staged rename, modified, untracked (with a space).
    who = ["-c", "user.name=p", "-c", "user.email=p@x"]
    merge = subprocess.run(["git", *who, "merge", "side"], cwd=repo.root, capture_output=True)
    assert b"CONFLICT" in merge.stdout
    git(repo.root, "mv", "keep.txt", "kept now.txt")
    (repo.root / "README.md").write_text("changed\n")
    (repo.root / "new file.txt").write_text("n\n")
    branch, dirty = repo.checkout_state()
    assert branch == repo.current_branch() == "main"
    assert sorted(dirty) == sorted(repo.dirty_paths())
    assert sorted(dirty) == ["README.md", "kept now.txt", "new file.txt", "src/app.py"]
    git(wt, "checkout", "-q", "--detach")
    assert repo.checkout_state(wt) == (None, []) and repo.current_branch(wt) is None


def test_ref_tips_answers_exactly_the_refs_asked(repo: Git) -> None:
    head = repo.rev_parse("HEAD")
    repo.create_branch("task/g-10", "HEAD")
    repo.create_branch("task/g-1x", "HEAD")
    asked = ["refs/heads/main", "refs/heads/task/g-1", "refs/heads/task/g-10"]
    assert repo.ref_tips(asked) == {"refs/heads/main": head, "refs/heads/task/g-10": head}
    assert repo.ref_tips(["refs/heads/task"]) == {}  # a pattern's prefix is not a ref


def test_a_squash_merge_of_changes_already_there_says_so_and_leaves_nothing(
    repo: Git, fast_tmp: Path
) -> None:
    for name in ("task/g-1", "task/g-2"):
        wt = fast_tmp / name.replace("/", "-")
        repo.add_worktree(wt, name, "HEAD")
        (wt / "src" / "app.py").write_text("a = 5\n")
        repo.commit_all(wt, f"the same change on {name}")
        repo.remove_worktree(wt)
    assert repo.squash_merge("task/g-1", "first\n").merged
    head = repo.rev_parse("HEAD")
    (repo.root / "notes.txt").write_text("a person's file\n")
    asked: list[str] = []

    def plan(where: Path, dirty: frozenset[str]) -> list[str]:
        asked.append(str(where))
        return []

    # With a step before the commit (asked first: it never runs) and without one (the
    # commit finds nothing to commit).
    for before_commit in (plan, None):
        again = repo.squash_merge("task/g-2", "second\n", before_commit=before_commit)
        assert (again.merged, again.commit, again.reason) == (True, head, "already merged")
        assert repo.rev_parse("HEAD") == head and not repo.has_staged()
        assert not repo.is_merging() and repo.merge_messages() == ""
        assert repo.dirty_paths() == ["notes.txt"]
    assert asked == []
