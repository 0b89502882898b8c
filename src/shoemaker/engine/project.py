"""A repository opened for shoemaker: its configuration, store, git layer, paths and event bus."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from shoemaker.clock import Clock, SystemClock
from shoemaker.config import Config, load_config
from shoemaker.engine.bus import EventBus
from shoemaker.engine.readonly import STORE_FILE as STORE_FILE
from shoemaker.engine.readonly import ProjectError as ProjectError
from shoemaker.engine.readonly import exclude_own_files, make_state_dir, open_git
from shoemaker.engine.run_lock_owner import RUN_LOCK_FILE, lock_owner
from shoemaker.engine.run_lock_owner import run_lock_holder as run_lock_holder
from shoemaker.git import Git
from shoemaker.model import Usage
from shoemaker.secrets import NO_SECRETS, Redactor, collect_secrets
from shoemaker.store import Store

if TYPE_CHECKING:
    from shoemaker.agents.runner import AgentRunner, LineSink, PidSink, RunResult, RunSpec
    from shoemaker.notify import Notifier

MERGE_LOCK_FILE = "merge.lock"


class _ProcessRunner:
    """The default runner, :class:`~shoemaker.agents.runner.ProcessRunner`, imported at the
    first agent run: a command that only reads the project never loads asyncio for it."""

    async def run(
        self, spec: RunSpec, on_lines: LineSink | None = None, on_pid: PidSink | None = None
    ) -> RunResult:
        from shoemaker.agents.runner import ProcessRunner

        return await ProcessRunner().run(spec, on_lines=on_lines, on_pid=on_pid)


@dataclass
class Project:
    """Everything the engine needs about one repository."""

    root: Path
    config: Config
    git: Git
    store: Store
    bus: EventBus
    runner: AgentRunner = field(default_factory=_ProcessRunner)
    redactor: Redactor = NO_SECRETS
    """Keeps secret values out of everything stored or shown (``shoemaker.secrets``)."""
    notifier: Notifier | None = None
    """Sends the notifications of this process's events (``notify:``; None without channels)."""
    clock: Clock = field(default_factory=SystemClock)
    """The wall clock rate-limit resets are waited on (tests move it themselves)."""
    spent_so_far: dict[int, tuple[str | None, Usage | None]] = field(default_factory=dict)
    """By run id, what each agent this process runs reported so far: its model and its
    messages' usage, as its parser read them (``engine/agent_call.py``). The dashboard's live
    costs read it here rather than parse the transcript a second time (``LiveUsage``)."""

    @classmethod
    def open(cls, directory: Path, config: Config | None = None) -> Project:
        """Open the repository containing ``directory`` (its configuration is loaded from it)."""
        git = open_git(directory)
        root = git.root
        cfg = config if config is not None else load_config(root)
        state = make_state_dir(root, cfg.state_dir)
        redactor = Redactor(collect_secrets(root, cfg))
        store = Store(
            state / STORE_FILE,
            redactor,
            wait_sec=cfg.store_wait_sec,
            holder=lambda: run_lock_holder(state),
        )
        # (Only now: a store that cannot be opened leaves the repository as it was.)
        exclude_own_files(git, cfg.state_dir, cfg.secrets_dir)
        bus = EventBus(store, redactor)
        store.on_commit = bus.announce_all  # the store announces every write it commits
        project = cls(root=root, config=cfg, git=git, store=store, bus=bus, redactor=redactor)
        if cfg.notify:
            # Here, not in the engine: a stop or an approval from the command line notifies too.
            from shoemaker.notify import Notifier

            project.notifier = Notifier.for_project(project)
            bus.add_listener(project.notifier)
        return project

    def close(self) -> None:
        self.store.close()

    # -- paths --------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.root / self.config.state_dir

    @property
    def runs_dir(self) -> Path:
        """Raw transcripts of running agents (moved into the store when a run ends)."""
        return self.state_dir / "runs"

    @property
    def history_dir(self) -> Path:
        return self.state_dir / "history"

    @property
    def worktree_root(self) -> Path:
        """Where task worktrees go: configured, or a per-repository directory in the user cache."""
        if self.config.worktree_dir:
            path = Path(os.path.expanduser(self.config.worktree_dir))
            return path if path.is_absolute() else (self.root / path).resolve()
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:10]
        return cache / "shoemaker" / "worktrees" / f"{self.root.name}-{digest}"


@contextmanager
def merge_file_lock(project: Project) -> Iterator[None]:
    """Held while anything merges into a generation branch, by any shoemaker process (a run,
    an approval from the command line), so that merges never interleave."""
    path = project.state_dir / MERGE_LOCK_FILE
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RunLock:
    """Held by the one process that runs a project's engine; another run is refused.

    The kernel drops the lock when its holder dies, however it dies, which is what tells a
    new run that the store may describe work nobody is doing any more.
    """

    def __init__(self, project: Project) -> None:
        self.path = project.state_dir / RUN_LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        # Who holds it, for the messages of processes that find it taken.
        handle.truncate(0)
        handle.write(f"{os.getpid()} {_command_line()}\n")
        handle.flush()
        return True

    def free(self) -> bool:
        """Whether no process holds the lock now (checked by taking it for a moment)."""
        if not self.acquire():
            return False
        self.release()
        return True

    def holder(self) -> int | None:
        """The pid of the process that holds the lock now (None when free, or unknown)."""
        owner = lock_owner(self.path)
        return owner[0] if owner else None

    def release(self) -> None:
        if self._handle is not None:
            self._handle.truncate(0)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _command_line() -> str:
    name = Path(sys.argv[0]).name if sys.argv else "python"
    if name in ("__main__.py", "shoemaker"):
        name = "shoemaker"
    return " ".join([name, *sys.argv[1:]])[:120]
