"""The git layer: branches, tags, worktrees, commits with trailers, merges, diff stats, LOC.

For LOC it reads the files from git or a worktree; ``loc.py`` counts them.

GitPython opens the repository and answers simple questions; everything else is plain ``git``
with argv lists, because that is where GitPython is thin (worktrees, trailers, merge-tree).
Calls are blocking and take an explicit working directory, so threads may work on different
worktrees of one repository at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shoemaker.crashpoints import crash_point
from shoemaker.errors import Failed
from shoemaker.globs import matches_any
from shoemaker.loc import Loc, count_lines, count_loc, sum_loc

IDENTITY_ENV = {
    "GIT_AUTHOR_NAME": "shoemaker",
    "GIT_AUTHOR_EMAIL": "shoemaker@localhost",
    "GIT_COMMITTER_NAME": "shoemaker",
    "GIT_COMMITTER_EMAIL": "shoemaker@localhost",
}
GIT_OWNER_MARKER = "SHOEMAKER_GIT_OWNER"
"""Set in every git process shoemaker starts, to the pid of the shoemaker that started it."""
#: Commits whose source listing ``Git`` keeps (a generation's last heads, tasks' bases): a
#: listing is needed again right after it is read, and one is as large as the source tree.
_LISTINGS_KEPT = 8
#: What git says when it reads another worktree's admin directory that a concurrent
#: `git worktree add` has made but not yet filled: it stops before changing anything.
_HALF_MADE_WORKTREE = re.compile(r"failed to read .*worktrees/[^/\s]+/(commondir|gitdir)")
#: Pauses before trying such a command again (the other add fills it within milliseconds).
_HALF_MADE_RETRIES = (0.05, 0.2, 0.5)
#: One `git worktree add` at a time in this process: each reads the others' admin dirs.
_ADDING = threading.Lock()
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# Variables a parent (a git hook, another tool) may set that would redirect our commands.
_INHERITED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_PREFIX")
# Branch names valid by every rule of `git check-ref-format --branch` without asking it:
# components of letters, digits, "_", "." and "-" that start with neither "." nor "-", joined
# by single slashes, with no "..", and no component ending in "." or ".lock". Anything else
# is asked of git.
_PLAIN_REF_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
_PLAIN_REF_EXCEPTIONS = re.compile(r"\.\.|\.lock(?:/|$)|\.(?:/|$)")
# Options that make commits and merges independent of a user's signing or hooks setup.
_QUIET_CONFIG = [
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
    "-c",
    "core.hooksPath=/dev/null",
]


class GitError(Failed, RuntimeError):
    """A git command failed; the message says which and why in one line."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        lines = stderr.strip().splitlines()
        detail = lines[-1] if lines else f"exit {returncode}"
        super().__init__(f"git {' '.join(self.argv[1:4])} failed: {detail}")


@dataclass(frozen=True, slots=True)
class FileStat:
    path: str
    insertions: int
    deletions: int
    binary: bool = False


@dataclass(frozen=True, slots=True)
class DiffStat:
    files: tuple[FileStat, ...]

    @property
    def files_changed(self) -> int:
        return len(self.files)

    @property
    def insertions(self) -> int:
        return sum(f.insertions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions for f in self.files)


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    merged: bool
    commit: str = ""
    conflict_files: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Worktree:
    path: Path
    branch: str | None
    head: str


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    subject: str
    trailers: dict[str, str]
    parents: tuple[str, ...]


class Git:
    """One repository, addressed through its main worktree."""

    def __init__(self, root: Path) -> None:
        # One `git rev-parse` finds the repository (from a subdirectory too): the same answer
        # as a library would give, for a process instead of a long import.
        argv = ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"]
        where = self._discover(root, [*argv, "--is-bare-repository", "--show-toplevel"])
        if where is None:
            # No work tree here: a bare repository, its .git directory, or no repository.
            bare = self._discover(root, [*argv, "--is-bare-repository"])
            if bare is None:
                raise GitError(["git", "rev-parse"], 128, f"{root} is not inside a git repository")
            if bare[1] == "true":
                raise GitError(
                    ["git", "rev-parse"], 128, f"{root} is a bare repository; use a clone"
                )
            where = [*bare, str(Path(bare[0]).parent)]  # in .git: its work tree is above
        common, _, top = where
        self.root = Path(top)
        self._loc_cache: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Loc] = {}
        self._listings: OrderedDict[tuple[str, tuple[str, ...]], dict[str, str]] = OrderedDict()
        self._listings_lock = threading.Lock()
        self._blob_lines: dict[str, int] = {}
        self.common_dir = Path(common).resolve()
        self._admins: dict[Path, Path] = {}  # a worktree's path → its git directory
        self._identity: bool | None = None  # asked at the first commit: a reader never needs it

    @staticmethod
    def _discover(where: Path, argv: list[str]) -> list[str] | None:
        """The lines ``git rev-parse`` answers in ``where`` (searching the directories above,
        unlike every other command here), or None when it fails."""
        if not where.is_dir():
            return None
        proc = subprocess.run(argv, cwd=where, env=Git._env(), capture_output=True, text=True)
        return proc.stdout.splitlines() if proc.returncode == 0 else None

    @staticmethod
    def init_repo(path: Path, branch: str = "main") -> Git:
        path.mkdir(parents=True, exist_ok=True)
        Git._run_in(path, ["init", "-q", "-b", branch])
        return Git(path)

    # -- plumbing -----------------------------------------------------------------------------

    @staticmethod
    def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["LC_ALL"] = "C"  # messages we parse are in English
        # Which process ran this git: recovery waits for the gits of a shoemaker that died,
        # which go on (and hold their lock files) for a moment after it.
        env[GIT_OWNER_MARKER] = str(os.getpid())
        if extra:
            env.update(extra)
        return env

    @staticmethod
    def _run_in(
        cwd: Path,
        args: Sequence[str],
        *,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = ["git", *args]
        # Every command runs at the top of a checkout: git must find the repository right
        # there, never in a directory above (a worktree whose .git an agent removed would
        # otherwise act on whatever repository contains it).
        ceiling = {"GIT_CEILING_DIRECTORIES": str(Path(cwd).resolve().parent)}
        if not Path(cwd).is_dir():
            raise GitError(argv, 128, f"{cwd} is not a directory any more")
        for pause in (*_HALF_MADE_RETRIES, None):
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=Git._env({**ceiling, **(env or {})}),
                capture_output=True,
                text=True,
                input=input,
                check=False,
            )
            if pause is None or not (
                proc.returncode == 128 and _HALF_MADE_WORKTREE.search(proc.stderr)
            ):
                break
            time.sleep(pause)  # another worktree is being added: it is complete in a moment
        if check and proc.returncode != 0:
            raise GitError(argv, proc.returncode, proc.stderr)
        return proc

    def _run_binary(self, args: Sequence[str], data: bytes) -> bytes:
        argv = ["git", *args]
        proc = subprocess.run(
            argv, cwd=self.root, env=self._env(), capture_output=True, input=data, check=False
        )
        if proc.returncode != 0:
            raise GitError(argv, proc.returncode, proc.stderr.decode("utf-8", "replace"))
        return proc.stdout

    def _run(
        self,
        args: Sequence[str],
        cwd: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> str:
        return self._run_in(cwd or self.root, args, env=env, input=input).stdout

    def _commit_env(self) -> dict[str, str] | None:
        if self._identity is None:
            # Asked of git itself, which honours GIT_CONFIG_GLOBAL and friends as commits will.
            email = self._run_in(self.root, ["config", "user.email"], check=False)
            self._identity = email.returncode != 0 or not email.stdout.strip()
        return dict(IDENTITY_ENV) if self._identity else None

    def is_valid_branch_name(self, name: str) -> bool:
        """Whether git accepts ``name`` as a branch (or tag) name: its own rules, asked of it."""
        proc = self._run_in(self.root, ["check-ref-format", "--branch", name], check=False)
        return proc.returncode == 0

    def _check_ref_name(self, name: str) -> None:
        if _PLAIN_REF_NAME.fullmatch(name) and not _PLAIN_REF_EXCEPTIONS.search(name):
            return  # valid by every rule of git's (shoemaker's own names): no process asked
        if self._run_in(self.root, ["check-ref-format", "--branch", name], check=False).returncode:
            raise GitError(
                ["git", "check-ref-format", name], 1, f"{name!r} is not a valid branch or tag name"
            )

    # -- questions ----------------------------------------------------------------------------

    def current_branch(self, cwd: Path | None = None) -> str | None:
        proc = self._run_in(
            cwd or self.root, ["symbolic-ref", "--quiet", "--short", "HEAD"], check=False
        )
        return proc.stdout.strip() or None if proc.returncode == 0 else None

    def rev_parse(self, ref: str, cwd: Path | None = None) -> str:
        return self._run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd).strip()

    def ref_tips(self, refs: Sequence[str]) -> dict[str, str]:
        """The commits of ``refs`` (full names, ``refs/heads/…``) that exist, in one process:
        ref → commit; a missing ref is left out."""
        out = self._run(["for-each-ref", "--format=%(objectname) %(refname)", "--", *refs])
        # A pattern matches the refs below it as well: only the exact names are answered.
        wanted = set(refs)
        tips = {}
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            if ref in wanted:
                tips[ref] = sha
        return tips

    def ref_exists(self, ref: str) -> bool:
        return (
            self._run_in(
                self.root, ["rev-parse", "--verify", "--quiet", ref], check=False
            ).returncode
            == 0
        )

    def dirty_paths(self, cwd: Path | None = None) -> list[str]:
        """Changed, staged and untracked paths (ignored files do not count)."""
        return [path for _, path in self.dirty_entries(cwd)]

    def dirty_entries(self, cwd: Path | None = None) -> list[tuple[str, str]]:
        """``(XY, path)`` of :meth:`dirty_paths`, with git's two-letter status (``??``:
        untracked)."""
        out = self._run(["status", "--porcelain", "-z", "--untracked-files=all"], cwd)
        found = []
        entries = out.split("\0")
        i = 0
        while i < len(entries):
            entry = entries[i]
            if len(entry) > 3:
                found.append((entry[:2], entry[3:]))
                if entry[0] in "RC":
                    i += 1  # the rename's source path follows
            i += 1
        return found

    def checkout_state(self, cwd: Path | None = None) -> tuple[str | None, list[str]]:
        """The branch checked out in ``cwd`` (None: detached) and its changed, staged and
        untracked paths (as :meth:`dirty_paths`), from one ``git status``."""
        out = self._run(
            [
                "status",
                "--porcelain=v2",
                "--branch",
                "--no-ahead-behind",
                "-z",
                "--untracked-files=all",
            ],
            cwd,
        )
        branch: str | None = None
        paths = []
        entries = iter(out.split("\0"))
        for entry in entries:
            kind, _, rest = entry.partition(" ")
            if kind == "#":
                key, _, value = rest.partition(" ")
                if key == "branch.head":
                    branch = None if value == "(detached)" else value
            elif kind in ("?", "1", "2", "u"):
                # Fields before the path: none, 7 (changed), 8 (renamed), 9 (unmerged).
                fields = {"?": 0, "1": 7, "2": 8, "u": 9}[kind]
                paths.append(rest.split(" ", fields)[fields])
                if kind == "2":
                    next(entries, None)  # the rename's source path follows
        return branch, paths

    def is_clean(self, cwd: Path | None = None) -> bool:
        return not self.dirty_paths(cwd)

    def is_ancestor(self, a: str, b: str) -> bool:
        return (
            self._run_in(self.root, ["merge-base", "--is-ancestor", a, b], check=False).returncode
            == 0
        )

    def merge_base(self, a: str, b: str) -> str:
        return self._run(["merge-base", a, b]).strip()

    def branches(self, pattern: str | None = None) -> list[str]:
        args = ["for-each-ref", "--format=%(refname:short)"]
        args.append(f"refs/heads/{pattern}" if pattern else "refs/heads/")
        return [b for b in self._run(args).splitlines() if b]

    def tags(self, pattern: str | None = None) -> list[str]:
        return [
            t
            for t in self._run(["tag", "--list", *([pattern] if pattern else [])]).splitlines()
            if t
        ]

    # -- branches and tags --------------------------------------------------------------------

    def create_branch(self, name: str, start: str) -> None:
        self._check_ref_name(name)
        self._run(["branch", name, start])

    def delete_branch(self, name: str, force: bool = False, missing_ok: bool = False) -> None:
        try:
            self._run(["branch", "-D" if force else "-d", name])
        except GitError:
            if not missing_ok or self.ref_exists(f"refs/heads/{name}"):
                raise  # there, and still not deleted; with missing_ok a branch gone is fine

    def move_branch(self, name: str, commit: str, old: str) -> None:
        """Point branch ``name`` at ``commit``, provided it still points at ``old``."""
        self._check_ref_name(name)
        self._run(["update-ref", f"refs/heads/{name}", commit, old])

    def rename_branch(self, old: str, new: str) -> None:
        self._check_ref_name(new)
        self._run(["branch", "-m", old, new])

    def checkout(self, ref: str) -> None:
        self._run(["checkout", "-q", ref])

    def tag(self, name: str, ref: str = "HEAD", message: str | None = None) -> None:
        self._check_ref_name(name)
        args = ["tag", "-a", name, ref, "-m", message] if message else ["tag", name, ref]
        self._run([*_QUIET_CONFIG, *args], env=self._commit_env())

    # -- worktrees ----------------------------------------------------------------------------

    def add_worktree(self, path: Path, branch: str, start: str) -> None:
        """A new worktree at ``path`` on a new branch ``branch`` starting at ``start``."""
        self._check_ref_name(branch)
        with _ADDING:
            self._run(["worktree", "add", "-q", "-b", branch, str(path), start])

    def add_detached_worktree(self, path: Path, start: str) -> None:
        with _ADDING:
            self._run(["worktree", "add", "-q", "--detach", str(path), start])

    def remove_worktree(self, path: Path, force: bool = True) -> None:
        """Remove a worktree (uncommitted changes in it are lost: commit them first)."""
        if path.exists():
            args = ["worktree", "remove", *(["--force", "--force"] if force else []), str(path)]
            proc = self._run_in(self.root, args, check=False)
            if proc.returncode != 0 and path.exists():
                raise GitError(["git", *args], proc.returncode, proc.stderr)
        self.prune_worktrees()

    def reset_worktree(
        self, path: Path, branch: str | None, base: str, keep: Sequence[str] = ()
    ) -> None:
        """Turn an existing worktree into a clean checkout of ``base`` on a new ``branch``
        (``None``: detached), rewriting only the files that differ. ``keep``: untracked
        paths that survive the clean (what its setup installed)."""
        if branch is None:
            self._run(["checkout", "-q", "-f", "--detach", base], path)
        else:
            self._check_ref_name(branch)
            self._run(["checkout", "-q", "-f", "-B", branch, base], path)
        self._clean(path, keep)

    def _clean(self, path: Path, keep: Sequence[str]) -> None:
        # With -x git clean ignores every standard ignore rule but still honours -e.
        kept = [arg for entry in keep for arg in ("-e", "/" + literal_pattern(entry))]
        self._run(["clean", "-q", "-ffdx", *kept], path)

    def move_branch_here(self, path: Path, branch: str) -> None:
        """Point ``branch`` (created or moved) at the worktree's HEAD and check it out there."""
        self._check_ref_name(branch)
        self._run(["checkout", "-q", "-B", branch], path)

    def checkout_branch(self, path: Path, branch: str, keep: Sequence[str] = ()) -> None:
        """Check out an existing branch in a worktree, discarding local changes (``keep``:
        untracked paths that stay, as for :meth:`reset_worktree`)."""
        self._run(["checkout", "-q", "-f", branch], path)
        self._clean(path, keep)

    def bundle(self, commit: str) -> bytes:
        """A git bundle holding ``commit`` and its history (under a ref of its own, made for
        the bundle and deleted after: git bundles refs, not bare commits)."""
        ref = f"refs/shoemaker/bundles/{uuid.uuid4().hex}"
        self._run(["update-ref", ref, commit])
        try:
            return self._run_binary(["bundle", "create", "-q", "-", ref], b"")
        finally:
            self._run(["update-ref", "-d", ref])

    def fetch_bundle(self, path: Path, branch: str) -> None:
        """Create or move ``branch`` to the branch of that name in the bundle at ``path``."""
        self._check_ref_name(branch)
        # Neither `git fetch` nor `git bundle unbundle`: both check connectivity against every
        # ref and every worktree's HEAD, and a worktree another task's attempt is adding
        # meanwhile (its HEAD a null placeholder for a moment) fails them: "bad object
        # worktrees/…/HEAD". The bundle's pack goes to index-pack, which reads only the pack;
        # the commits the bundle builds on are looked up by id.
        argv = ["git", "bundle", "unbundle", str(path)]
        header, _, pack = path.read_bytes().partition(b"\n\n")
        lines = header.decode("utf-8", "replace").splitlines()
        if not lines or lines[0] not in ("# v2 git bundle", "# v3 git bundle"):
            raise GitError(argv, 1, f"{path} is not a git bundle")
        wanted, tip, needs = f"refs/heads/{branch}", None, []
        for line in lines[1:]:
            if line.startswith("-"):
                needs.append(line[1:].split(" ", 1)[0])  # "-<id> <subject>"
            elif not line.startswith("@"):  # "@<capability>" (v3)
                sha, _, ref = line.partition(" ")
                tip = sha if ref == wanted else tip
        if tip is None:
            raise GitError(argv, 1, f"the bundle holds no branch {branch}")
        if needs:
            asked = "".join(f"{sha}\n" for sha in needs).encode()
            listed = self._run_binary(["cat-file", "--batch-check"], asked).decode()
            lacked = [ln.split()[0][:12] for ln in listed.splitlines() if ln.endswith(" missing")]
            if lacked:
                said = ", ".join(lacked)
                raise GitError(argv, 1, f"the bundle builds on commits not here: {said}")
        self._run_binary(["index-pack", "--fix-thin", "--stdin"], pack)
        self._run(["update-ref", wanted, tip])

    def rebase(self, path: Path, onto: str) -> tuple[bool, tuple[str, ...]]:
        """Rebase the branch checked out in ``path`` onto ``onto``. On a conflict the rebase
        is aborted at once (the branch is as it was) and the conflicted files returned."""
        proc = self._run_in(
            path, [*_QUIET_CONFIG, "rebase", "-q", onto], check=False, env=self._commit_env()
        )
        if proc.returncode == 0:
            return True, ()
        conflicts = self._conflicted(path)
        self._run_in(path, ["rebase", "--abort"], check=False)
        return False, conflicts

    def restore_gitfile(self, path: Path) -> bool:
        """Make the ``.git`` of worktree ``path`` the file git wrote when it added it, pointing
        into this repository. What ran in the worktree (an agent, a gate) may have replaced it
        with a repository of its own, whose configuration (``core.fsmonitor``, hooks) the next
        git command there would execute. Returns whether it had to be restored."""
        dotgit = path / ".git"
        admin = self._admin_dir(path)
        if admin is None:
            return False  # not a worktree of this repository
        expected = f"gitdir: {admin}\n".encode()
        with contextlib.suppress(OSError):
            if not dotgit.is_symlink() and dotgit.is_file():
                with dotgit.open("rb") as f:
                    if f.read(len(expected) + 1) == expected:
                        return False
        if dotgit.is_dir() and not dotgit.is_symlink():
            shutil.rmtree(dotgit)
        else:
            dotgit.unlink(missing_ok=True)
        dotgit.write_bytes(expected)
        return True

    def _pinned(self, cwd: Path) -> dict[str, str]:
        """GIT_DIR and GIT_WORK_TREE for git in worktree ``cwd`` (none for the main one)."""
        admin = None if cwd.resolve() == self.root.resolve() else self._admin_dir(cwd)
        return {} if admin is None else {"GIT_DIR": str(admin), "GIT_WORK_TREE": str(cwd)}

    def admin_dir(self, path: Path) -> Path | None:
        """The worktree's own git directory (``.git/worktrees/NAME``); None when ``path`` is
        no linked worktree of this repository."""
        return self._admin_dir(path)

    def untracked_entries(self, cwd: Path) -> list[str]:
        """Untracked paths in worktree ``cwd``, ignored ones included; a directory holding
        nothing tracked is one entry (``dir/``)."""
        out = self._run(["ls-files", "-z", "--others", "--directory"], cwd)
        return [p for p in out.split("\0") if p]

    def tracked_among(self, paths: Sequence[str]) -> list[str]:
        """Which of ``paths`` (relative to the main checkout) git tracks."""
        if not paths:
            return []
        out = self._run(["ls-files", "-z", "--", *(f":(literal){p}" for p in paths)])
        return [p for p in out.split("\0") if p]

    def excludes_file(self) -> Path | None:
        """The ignore file git reads besides ``.gitignore`` and ``info/exclude`` in the main
        checkout: ``core.excludesFile``, else ``$XDG_CONFIG_HOME/git/ignore``."""
        args = ["config", "--path", "--get", "core.excludesFile"]
        proc = self._run_in(self.root, args, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return Path(proc.stdout.strip()).expanduser()
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(config) / "git" / "ignore"

    def set_worktree_excludes_file(self, path: Path, excludes: Path) -> None:
        """Make ``excludes`` the ignore file of worktree ``path`` alone, through per-worktree
        configuration: neither the repository's shared ``info/exclude`` nor another
        worktree's (the main checkout's included) changes."""
        ext = self._run_in(self.root, ["config", "--get", "extensions.worktreeConfig"], check=False)
        if ext.stdout.strip() != "true":
            self._run(["config", "extensions.worktreeConfig", "true"])
        self._run(["config", "--worktree", "core.excludesFile", str(excludes)], path)

    def _admin_dir(self, path: Path) -> Path | None:
        """The directory under ``.git/worktrees`` of the worktree at ``path``."""
        real = path.resolve()
        # Asked several times per task: the one found last time is checked, not every
        # worktree's (a removed worktree's name may have been given to another since).
        known = self._admins.get(real)
        if known is not None and _registered_at(known) == real:
            return known
        with contextlib.suppress(OSError):
            for admin in (self.common_dir / "worktrees").iterdir():
                if _registered_at(admin) == real:
                    self._admins[real] = admin
                    return admin
        return None

    def is_detached(self, path: Path) -> bool:
        """Whether worktree ``path``'s HEAD is detached, read from its HEAD file (no
        process); False whenever that file does not say so plainly."""
        admin = self._admin_dir(path)
        try:
            head = (admin / "HEAD").read_text() if admin else ""
        except OSError:
            return False
        return _FULL_SHA.fullmatch(head.strip()) is not None

    def detach_worktree(self, path: Path) -> None:
        """Leave a worktree detached at its commit, so its branch is free. What it holds
        besides (files git ignores) stays until it is prepared again, which cleans it."""
        self._run(["checkout", "-q", "-f", "--detach"], path)

    def clear_worktree_path(self, path: Path) -> Path | None:
        """Make ``path`` free for a new worktree.

        A registered worktree there is removed; a directory git does not know (left by an
        earlier clone of the repository, say) is moved aside, never deleted. Returns where it
        went, if it was moved.
        """
        self.prune_worktrees()
        if any(w.path == path for w in self.worktrees()):
            self.remove_worktree(path)
            return None
        if path.exists():
            aside = path.with_name(f"{path.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
            path.rename(aside)
            return aside
        return None

    def prune_worktrees(self) -> None:
        self._run(["worktree", "prune"])

    def worktrees(self) -> list[Worktree]:
        out = self._run(["worktree", "list", "--porcelain"])
        result: list[Worktree] = []
        for block in out.strip().split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                key, _, value = line.partition(" ")
                fields[key] = value
            if "worktree" in fields:
                branch = fields.get("branch", "").removeprefix("refs/heads/") or None
                result.append(Worktree(Path(fields["worktree"]), branch, fields.get("HEAD", "")))
        return result

    # -- commits ------------------------------------------------------------------------------

    @staticmethod
    def format_message(
        subject: str, body: str = "", trailers: Mapping[str, str] | None = None
    ) -> str:
        # git refuses a message with a NUL in it, and a subject is one line: text that reached
        # here from elsewhere (an older store) must not stop a commit.
        subject, body = " ".join(subject.replace("\0", "").split()), body.replace("\0", "")
        parts = [subject]
        if body.strip():
            parts.append(body.strip())
        if trailers:
            parts.append("\n".join(f"{k}: {' '.join(str(v).split())}" for k, v in trailers.items()))
        return "\n\n".join(parts) + "\n"

    def commit_all(
        self, cwd: Path, subject: str, body: str = "", trailers: Mapping[str, str] | None = None
    ) -> str | None:
        """Stage everything in ``cwd`` and commit it; the new sha, or None if nothing changed."""
        self._run(["add", "-A"], cwd)
        if self._run_in(cwd, ["diff", "--cached", "--quiet"], check=False).returncode == 0:
            return None
        message = self.format_message(subject, body, trailers)
        self._run(
            [*_QUIET_CONFIG, "commit", "-q", "--no-verify", "-F", "-"],
            cwd,
            env=self._commit_env(),
            input=message,
        )
        return self.rev_parse("HEAD", cwd)

    def commit_index(
        self, cwd: Path, parent: str, message: str, branch: str, *, detach: bool = False
    ) -> str:
        """Commit what is staged in worktree ``cwd`` as a child of ``parent``, and point
        ``branch`` at it; the new sha. ``detach``: the worktree's HEAD is left detached at
        the commit in the same step (nothing more happens there; its branch is free).

        Plumbing, three processes (``write-tree``, ``commit-tree``, ``update-ref``): no
        reset to ``parent`` first and no look-up of the sha after. Like every commit here, no
        hook runs; the message is cleaned up as ``git commit -F`` cleans it."""
        self._check_ref_name(branch)
        tree = self._run(["write-tree"], cwd).strip()
        sha = self._run(
            [*_QUIET_CONFIG, "commit-tree", tree, "-p", parent, "-F", "-"],
            cwd,
            env=self._commit_env(),
            input=cleanup_message(message),
        ).strip()
        updates = [f"update refs/heads/{branch} {sha}"]
        admin = self._admin_dir(cwd) if detach else None
        if admin is not None:
            # Named from the main checkout: git refuses a transaction that moves a branch
            # and, apart, the HEAD that points to it, when that HEAD is its own.
            updates += ["option no-deref", f"update worktrees/{admin.name}/HEAD {sha}"]
        self._run(["update-ref", "--stdin"], input="".join(f"{u}\n" for u in updates))
        return sha

    def revert(
        self,
        commit: str,
        subject: str,
        body: str = "",
        trailers: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> str:
        """Undo ``commit`` with a new commit on what ``cwd`` has checked out; its sha."""
        where = cwd or self.root
        head = self.rev_parse("HEAD", where)
        before = self.dirty_paths(where)
        proc = self._run_in(where, [*_QUIET_CONFIG, "revert", "--no-commit", commit], check=False)
        if proc.returncode != 0:
            self._undo(where, head, before)
            raise GitError(["git", "revert", commit], proc.returncode, proc.stderr)
        self._run(
            [*_QUIET_CONFIG, "commit", "-q", "--no-verify", "-F", "-"],
            where,
            env=self._commit_env(),
            input=self.format_message(subject, body, trailers),
        )
        return self.rev_parse("HEAD", where)

    def commit_message(self, ref: str) -> str:
        return self._run(["log", "-1", "--format=%B", ref])

    def log(
        self, rev_range: str, first_parent: bool = False, max_count: int | None = None
    ) -> list[CommitInfo]:
        """Commits of ``rev_range``, newest first, with their trailers parsed."""
        sep, end = "\x1f", "\x1e"
        fmt = f"%H{sep}%P{sep}%s{sep}%(trailers:only,unfold){end}"
        args = [
            "log",
            f"--format={fmt}",
            *(["--first-parent"] if first_parent else []),
            *([f"--max-count={max_count}"] if max_count else []),
            rev_range,
        ]
        commits = []
        for record in self._run(args).split(end):
            record = record.strip("\n")
            if not record:
                continue
            sha, parents, subject, trailer_text = record.split(sep)
            trailers = {}
            for line in trailer_text.splitlines():
                key, _, value = line.partition(":")
                if value:
                    trailers[key.strip()] = value.strip()
            commits.append(CommitInfo(sha, subject, trailers, tuple(parents.split())))
        return commits

    def commits_with_trailer(
        self, ref: str, key: str, value: str | None = None
    ) -> list[CommitInfo]:
        return [
            c
            for c in self.log(ref)
            if key in c.trailers and (value is None or c.trailers[key] == value)
        ]

    # -- merges -------------------------------------------------------------------------------

    def is_merging(self, cwd: Path | None = None) -> bool:
        return (
            self._run_in(
                cwd or self.root, ["rev-parse", "-q", "--verify", "MERGE_HEAD"], check=False
            ).returncode
            == 0
        )

    def has_staged(self, cwd: Path | None = None) -> bool:
        """Whether the index differs from HEAD (a squash merge left before its commit)."""
        proc = self._run_in(cwd or self.root, ["diff", "--cached", "--quiet"], check=False)
        return proc.returncode != 0

    def staged_paths(self, cwd: Path | None = None) -> list[str]:
        """Paths whose index entry differs from HEAD, unmerged ones included."""
        out = self._run(["diff", "--cached", "--name-only", "-z"], cwd)
        return sorted({p for p in out.split("\0") if p})

    def merge_messages(self, cwd: Path | None = None) -> str:
        """What a merge in progress will say: MERGE_MSG and SQUASH_MSG ("" when neither)."""
        texts = []
        for name in ("MERGE_MSG", "SQUASH_MSG"):
            where = self._run(["rev-parse", "--git-path", name], cwd).strip()
            path = Path(where) if Path(where).is_absolute() else (cwd or self.root) / where
            with contextlib.suppress(OSError):
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "\n".join(texts)

    def abort_merge(self, cwd: Path | None = None) -> None:
        self._run_in(cwd or self.root, ["merge", "--abort"], check=False)
        self._run_in(cwd or self.root, ["reset", "-q", "--merge"], check=False)

    def _conflicted(self, cwd: Path) -> tuple[str, ...]:
        out = self._run(["diff", "--name-only", "--diff-filter=U", "-z"], cwd)
        return tuple(p for p in out.split("\0") if p)

    def _undo(self, cwd: Path, head: str, before: Sequence[str] = ()) -> None:
        """Back to ``head`` without what the failed merge left. ``before``: the paths a person
        had changed before it (git never merges over them); those are never reset."""
        self.abort_merge(cwd)
        if not before:
            if self.rev_parse("HEAD", cwd) != head or self.dirty_paths(cwd):
                self._run(["reset", "-q", "--hard", head], cwd)
            return
        if self.rev_parse("HEAD", cwd) != head:
            self._run(["reset", "-q", "--keep", head], cwd)  # refuses to touch local changes
        left = [p for p in self.dirty_paths(cwd) if p not in set(before)]
        if left:
            tracked = self._run(["ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *left], cwd)
            known = [p for p in tracked.split("\0") if p]
            if known:
                self._run(["checkout", "-q", "HEAD", "--", *known], cwd)
            self._run(["clean", "-q", "-f", "--", *[p for p in left if p not in known]], cwd)

    def merge(
        self,
        branch: str,
        subject: str,
        trailers: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> MergeOutcome:
        """``git merge --no-ff branch`` into what ``cwd`` has checked out; aborted on conflict."""
        where = cwd or self.root
        head = self.rev_parse("HEAD", where)
        before = self.dirty_paths(where)
        message = self.format_message(subject, "", trailers)
        proc = self._run_in(
            where,
            [*_QUIET_CONFIG, "merge", "--no-ff", "--no-edit", "-m", message, branch],
            check=False,
            env=self._commit_env(),
        )
        if proc.returncode == 0:
            return MergeOutcome(True, self.rev_parse("HEAD", where))
        conflicts = self._conflicted(where)
        self._undo(where, head, before)
        return MergeOutcome(False, "", conflicts, _merge_reason(proc, conflicts))

    def squash_merge(
        self,
        branch: str,
        message: str,
        cwd: Path | None = None,
        before_commit: Callable[[Path, frozenset[str]], Sequence[str]] | None = None,
        dirty: Sequence[str] | None = None,
    ) -> MergeOutcome:
        """Land ``branch`` as one commit with ``message``; on conflict, nothing changes (a
        person's uncommitted changes there neither: git refuses to merge over them).
        ``before_commit(where, dirty)`` may change more files once the merge is staged (never
        the ``dirty`` ones, a person's); the paths it returns go into the same commit.
        ``dirty``: the changed paths in ``cwd`` when the caller has just asked
        (:meth:`checkout_state`), else they are asked here."""
        where = cwd or self.root
        # HEAD moves only when the commit lands: until then, a failure resolves it once to
        # go back to it, and a success costs no look-up before the merge.
        before = list(dirty) if dirty is not None else self.dirty_paths(where)
        proc = self._run_in(
            where,
            [*_QUIET_CONFIG, "merge", "--squash", "--no-commit", branch],
            check=False,
            env=self._commit_env(),
        )
        if proc.returncode != 0:
            conflicts = self._conflicted(where)
            self._undo(where, self.rev_parse("HEAD", where), before)
            return MergeOutcome(False, "", conflicts, _merge_reason(proc, conflicts))
        # Nothing staged: the branch's changes are there already. Asked before the plan's
        # progress is written (it must not land alone); without that step, only when the
        # commit finds nothing to commit.
        if before_commit is not None and not self.has_staged(where):
            return self._already_merged(where, before)
        if before_commit is not None:
            try:
                extra = list(before_commit(where, frozenset(before)))
                if extra:
                    self._run(["add", "--", *extra], where)
            except (OSError, GitError) as exc:
                self._undo(where, self.rev_parse("HEAD", where), before)
                return MergeOutcome(False, "", (), f"writing the plan's progress failed: {exc}")
        crash_point("squash-staged")
        try:
            self._run(
                [*_QUIET_CONFIG, "commit", "-q", "--no-verify", "-F", "-"],
                where,
                env=self._commit_env(),
                input=message,
            )
        except GitError as exc:
            if before_commit is None and not self.has_staged(where):
                return self._already_merged(where, before)
            self._undo(where, self.rev_parse("HEAD", where), before)
            return MergeOutcome(False, "", (), str(exc))
        return MergeOutcome(True, self.rev_parse("HEAD", where))

    def squash_onto(self, branch: str, onto: str, message: str) -> MergeOutcome:
        """``branch``'s work as one commit on ``onto`` with ``message``, merged without a
        worktree (``git merge-tree``): what :meth:`squash_merge` would commit there. No ref
        moves; on a conflict, nothing is made."""
        proc = self._run_in(
            self.root,
            ["merge-tree", "--write-tree", "--name-only", "--no-messages", onto, branch],
            check=False,
        )
        if proc.returncode == 1:
            conflicts = tuple(proc.stdout.strip().splitlines()[1:])
            return MergeOutcome(False, "", conflicts, _merge_reason(proc, conflicts))
        if proc.returncode != 0:
            raise GitError(["git", "merge-tree", onto, branch], proc.returncode, proc.stderr)
        tree = proc.stdout.split("\n", 1)[0].strip()
        if tree == self._run(["rev-parse", f"{onto}^{{tree}}"]).strip():
            return MergeOutcome(True, self.rev_parse(onto), (), "already merged")
        commit = self._run(
            ["commit-tree", tree, "-p", onto, "-F", "-"], env=self._commit_env(), input=message
        ).strip()
        return MergeOutcome(True, commit)

    def _already_merged(self, where: Path, before: Sequence[str]) -> MergeOutcome:
        """A squash merge that staged nothing: undone, and HEAD is the answer."""
        head = self.rev_parse("HEAD", where)
        self._undo(where, head, before)
        return MergeOutcome(True, head, (), "already merged")

    def would_merge_cleanly(self, branch: str, into: str) -> tuple[bool, tuple[str, ...]]:
        """Predict a merge without touching any worktree (``git merge-tree --write-tree``)."""
        proc = self._run_in(
            self.root,
            ["merge-tree", "--write-tree", "--name-only", "--no-messages", into, branch],
            check=False,
        )
        if proc.returncode == 0:
            return True, ()
        if proc.returncode == 1:
            lines = proc.stdout.strip().splitlines()
            return False, tuple(lines[1:])
        raise GitError(["git", "merge-tree", into, branch], proc.returncode, proc.stderr)

    # -- diffs and LOC ------------------------------------------------------------------------

    @staticmethod
    def _numstat(out: str) -> DiffStat:
        files = []
        for line in out.splitlines():
            added, deleted, path = line.split("\t", 2)
            binary = added == "-"
            files.append(
                FileStat(path, 0 if binary else int(added), 0 if binary else int(deleted), binary)
            )
        return DiffStat(tuple(files))

    def diff_stat(self, base: str, head: str) -> DiffStat:
        return self._numstat(self._run(["diff", "--numstat", "--no-renames", base, head]))

    def _with_untracked_index(self, cwd: Path) -> dict[str, str]:
        """A temporary index holding the worktree's files, untracked ones included, so a diff
        can show them without touching the worktree's own index."""
        # The live diff runs while an agent may still work there: git is told the repository
        # instead of reading the worktree's .git, which the agent could point elsewhere.
        pinned = self._pinned(cwd)
        index = self._run(["rev-parse", "--git-path", "index"], cwd, env=pinned).strip()
        tmp_index = (cwd / index).with_name(f"shoemaker-diff-{os.getpid()}-{id(cwd)}.index")
        env = {**pinned, "GIT_INDEX_FILE": str(tmp_index)}
        self._run(["read-tree", "HEAD"], cwd, env=env)
        self._run(["add", "-A"], cwd, env=env)
        return env

    def diff_stat_worktree(self, cwd: Path, base: str) -> DiffStat:
        env = self._with_untracked_index(cwd)
        try:
            return self._numstat(
                self._run(["diff", "--cached", "--numstat", "--no-renames", base], cwd, env=env)
            )
        finally:
            Path(env["GIT_INDEX_FILE"]).unlink(missing_ok=True)

    def diff_text(
        self, base: str, head: str | None = None, cwd: Path | None = None, paths: Sequence[str] = ()
    ) -> str:
        """A unified diff; ``head`` None means the working tree of ``cwd``, untracked included."""
        tail = ["--", *paths] if paths else []
        if head is not None:
            return self._run(["diff", "--no-color", base, head, *tail], cwd)
        where = cwd or self.root
        env = self._with_untracked_index(where)
        try:
            return self._run(["diff", "--cached", "--no-color", base, *tail], where, env=env)
        finally:
            Path(env["GIT_INDEX_FILE"]).unlink(missing_ok=True)

    def loc(self, ref: str, source_globs: Sequence[str], test_globs: Sequence[str]) -> Loc:
        """Non-blank lines of the files at ``ref`` that match ``source_globs``.

        Cached per commit: a generation head is counted once, however many tasks start there.
        """
        # A full commit id is its own answer; only a name is resolved.
        sha = ref if _FULL_SHA.fullmatch(ref) else self.rev_parse(ref)
        key = (sha, tuple(source_globs), tuple(test_globs))
        if key not in self._loc_cache:
            self._loc_cache[key] = self._count_blobs(self._listing(sha, source_globs), test_globs)
        return self._loc_cache[key]

    def _listing(self, sha: str, source_globs: Sequence[str]) -> dict[str, str]:
        """The source files at commit ``sha`` (path → blob), kept for the last few commits
        counted: the LOC after a change reads the changed files' blobs at its base here."""
        key = (sha, tuple(source_globs))
        with self._listings_lock:
            if key in self._listings:
                self._listings.move_to_end(key)
                return self._listings[key]
        blobs = self._source_blobs(sha, None, source_globs)
        with self._listings_lock:
            self._listings[key] = blobs
            while len(self._listings) > _LISTINGS_KEPT:
                self._listings.popitem(last=False)
        return blobs

    def _source_blobs(
        self, ref: str, paths: Sequence[str] | None, source_globs: Sequence[str]
    ) -> dict[str, str]:
        """path → blob of the files at ``ref`` (under ``paths``, if given) that match
        ``source_globs``."""
        listing = self._run(
            ["ls-tree", "-r", "-z", "--full-tree", ref, *(["--", *paths] if paths else [])]
        )
        wanted: dict[str, str] = {}
        for entry in listing.split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            _mode, kind, sha = meta.split()
            if kind == "blob" and matches_any(path, source_globs):
                wanted[path] = sha
        return wanted

    def _count_blobs(self, blobs: Mapping[str, str], test_globs: Sequence[str]) -> Loc:
        """The LOC of files given as path → blob. A blob is read and counted once per
        process: a file unchanged from one commit to the next is not read again."""
        missing = [sha for sha in dict.fromkeys(blobs.values()) if sha not in self._blob_lines]
        if missing:
            # One cat-file process for every blob, not one process per file.
            request = "".join(f"{sha}\n" for sha in missing).encode()
            out = self._run_binary(["cat-file", "--batch"], request)
            pos = 0
            for sha in missing:
                header_end = out.index(b"\n", pos)
                size = int(out[pos:header_end].split()[2])
                self._blob_lines[sha] = count_lines(out[header_end + 1 : header_end + 1 + size])
                pos = header_end + 1 + size + 1
        return sum_loc({path: self._blob_lines[sha] for path, sha in blobs.items()}, test_globs)

    def loc_after(
        self,
        base: str,
        changed: Sequence[str],
        source_globs: Sequence[str],
        test_globs: Sequence[str],
        *,
        head: str | None = None,
        cwd: Path | None = None,
    ) -> Loc:
        """LOC after a change touching only ``changed``: the base's count, minus those files
        at ``base``, plus those files at ``head`` (or in the working directory ``cwd``).
        Reads only the changed files, whatever the size of the repository."""
        sha = base if _FULL_SHA.fullmatch(base) else self.rev_parse(base)
        before = self.loc(sha, source_globs, test_globs)
        if not changed:
            return before
        # The base was just listed for ``before``: its changed files' blobs are known.
        at_base = self._listing(sha, source_globs)
        old = self._count_blobs({p: at_base[p] for p in changed if p in at_base}, test_globs)
        if head is not None:
            new = self._count_blobs(
                self._source_blobs(head, list(changed), source_globs), test_globs
            )
        else:
            assert cwd is not None
            # Never through a link: the agent's worktree may point one anywhere.
            files = {
                p: (cwd / p).read_bytes()
                for p in changed
                if matches_any(p, source_globs)
                and (cwd / p).is_file()
                and not (cwd / p).is_symlink()
            }
            new = count_loc(files, source_globs, test_globs)
        return Loc(
            before.production - old.production + new.production, before.test - old.test + new.test
        )

    def stage_all_stat(self, cwd: Path, base: str) -> DiffStat:
        """Stage everything in ``cwd`` (untracked included), as a commit of it would, and
        return what the staged tree changes against ``base``."""
        self._run(["add", "-A"], cwd)
        return self._numstat(
            self._run(["diff", "--cached", "--numstat", "--no-renames", base], cwd)
        )

    def tracked_files(self, dirs: Sequence[str], cwd: Path | None = None) -> list[str]:
        """Files git tracks under ``dirs`` (paths relative to the repository)."""
        out = self._run(["ls-files", "-z", "--", *dirs], cwd or self.root) if dirs else ""
        return [p for p in out.split("\0") if p]

    def loc_worktree(
        self, cwd: Path, source_globs: Sequence[str], test_globs: Sequence[str]
    ) -> Loc:
        """The same count over a working directory: tracked and untracked, not ignored."""
        listing = self._run(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd)
        contents = {}
        for path in dict.fromkeys(p for p in listing.split("\0") if p):
            if matches_any(path, source_globs):
                file = cwd / path
                if file.is_file() and not file.is_symlink():
                    contents[path] = file.read_bytes()
        return count_loc(contents, source_globs, test_globs)

    # -- housekeeping -------------------------------------------------------------------------

    def ensure_excluded(self, pattern: str) -> None:
        """Add ``pattern`` to ``.git/info/exclude`` (shared by all worktrees) if it is absent."""
        exclude = self.common_dir / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        lines = exclude.read_text().splitlines() if exclude.exists() else []
        if pattern not in lines:
            with exclude.open("a") as handle:
                prefix = "" if not lines or exclude.read_text().endswith("\n") else "\n"
                handle.write(f"{prefix}{pattern}\n")


def cleanup_message(message: str) -> str:
    """``message`` as ``git commit`` stores one given with ``-F`` (its "whitespace"
    clean-up): no trailing blanks on a line, no empty lines at either end, no two in a row."""
    lines: list[str] = []
    gap = False
    for line in message.split("\n"):
        line = line.rstrip(" \t\r")
        if not line:
            gap = bool(lines)
            continue
        if gap:
            lines.append("")
            gap = False
        lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def literal_pattern(path: str) -> str:
    """``path`` as an ignore pattern that matches it literally (a trailing space kept)."""
    escaped = re.sub(r"([\\*?\[\]!#])", r"\\\1", path)
    return escaped[:-1] + "\\ " if escaped.endswith(" ") else escaped


def _merge_reason(proc: subprocess.CompletedProcess[str], conflicts: tuple[str, ...]) -> str:
    if conflicts:
        return f"conflict in {', '.join(conflicts)}"
    text = (proc.stderr or proc.stdout).strip().splitlines()
    return text[-1] if text else f"git merge exited {proc.returncode}"


def _registered_at(admin: Path) -> Path | None:
    """The worktree a directory under ``.git/worktrees`` belongs to (its ``gitdir`` file
    names the worktree's ``.git``), resolved; None when it cannot be read."""
    try:
        return Path((admin / "gitdir").read_text().strip()).parent.resolve()
    except OSError:
        return None


__all__ = [
    "CommitInfo",
    "DiffStat",
    "FileStat",
    "Git",
    "GitError",
    "MergeOutcome",
    "Worktree",
]
