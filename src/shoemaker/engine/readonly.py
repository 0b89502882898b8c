"""A project opened to read its store: the repository, the store and the few settings that
find it, without the configuration's models, the event bus, the secrets or the engine.

``Project.open`` builds all of those, which is most of the start-up of a command that only
lists rows (``shoemaker tasks``). Both open the repository and the state directory the same
way, with the same messages (``open_git``, ``make_state_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from shoemaker.config_glance import Glance, glance_config
from shoemaker.engine.run_lock_owner import run_lock_holder
from shoemaker.errors import BadInput
from shoemaker.git import Git, GitError
from shoemaker.store import Store

if TYPE_CHECKING:
    from shoemaker.config import Config
    from shoemaker.model import Generation

STORE_FILE = "shoemaker.db"


class ProjectError(BadInput):
    """The directory cannot be used as a shoemaker project; the message says why and what to do."""


def open_git(directory: Path) -> Git:
    """The repository containing ``directory``."""
    try:
        return Git(directory.resolve())
    except GitError as exc:
        raise ProjectError(
            f"{directory} is not inside a git repository ({exc}); run `git init` or use -C"
        ) from None


def make_state_dir(root: Path, state_dir: str) -> Path:
    """shoemaker's own directory in the repository at ``root``, created when missing."""
    state = root / state_dir
    try:
        state.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ProjectError(
            f"{state}: is a file, where shoemaker keeps its state directory; move it away "
            "(or set state_dir in configuration.yaml)"
        ) from None
    return state


def exclude_own_files(git: Git, state_dir: str, secrets_dir: str) -> None:
    """shoemaker's own files never make the tree look dirty or end up in a commit, and
    credentials are never committed."""
    git.ensure_excluded(f"/{state_dir.strip('/')}/")
    git.ensure_excluded(f"/{secrets_dir.strip('/')}/")


@dataclass
class ReadOnlyProject:
    """A repository's store opened for reading, with the settings that found it."""

    root: Path
    settings: Glance
    git: Git
    store: Store

    @classmethod
    def open(cls, directory: Path) -> ReadOnlyProject:
        """Open the repository containing ``directory`` as ``Project.open`` does."""
        git = open_git(directory)
        root = git.root
        settings = glance_config(root)
        state = make_state_dir(root, settings.state_dir)
        # Nothing is written through this store, so no secret can reach it: no redactor.
        store = Store(
            state / STORE_FILE,
            wait_sec=settings.store_wait_sec,
            holder=lambda: run_lock_holder(state),
        )
        exclude_own_files(git, settings.state_dir, settings.secrets_dir)
        return cls(root=root, settings=settings, git=git, store=store)

    @cached_property
    def config(self) -> Config:
        """The whole configuration, loaded and checked at first use (e.g. the gates)."""
        from shoemaker.config import load_config

        return load_config(self.root)

    def current_generation(self) -> Generation:
        """The generation commands act on (``engine.current.pick_generation``)."""
        from shoemaker.engine.current import pick_generation

        return pick_generation(self.store, self.git, self.settings.generation_branch)

    def close(self) -> None:
        self.store.close()
