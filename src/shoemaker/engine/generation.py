"""The generation lifecycle: start (tag, branch), stop (tag, merge into the base, tag, delete).

Each verb checks everything it can before it changes anything, so a refusal leaves the
repository and the store as they were, and says why.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass

from shoemaker.engine.project import Project
from shoemaker.model import ACTIVE_TASK_STATES, Generation, GenerationState, TaskState

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class GenerationError(Exception):
    """A lifecycle verb refused; nothing was changed. The message says why and what to do."""


def default_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def current_generation(project: Project) -> Generation:
    """The generation commands act on: the configured one, else the only open one."""
    store = project.store
    wanted = project.config.generation_branch
    open_ = store.open_generations()
    if wanted:
        for gen in open_:
            if wanted in (gen.branch, gen.name):
                return gen
        raise GenerationError(
            f"configuration.yaml names generation_branch {wanted!r}, which is not an open "
            "generation; see `shoemaker generation list`"
        )
    if not open_:
        raise GenerationError("no generation is open; start one with `shoemaker generation start`")
    if len(open_) > 1:
        names = ", ".join(g.name for g in open_)
        raise GenerationError(
            f"several generations are open ({names}); set generation_branch in configuration.yaml"
        )
    return open_[0]


def start_generation(project: Project, name: str | None = None) -> Generation:
    """Tag the base, create the generation branch and check it out."""
    git, store, cfg = project.git, project.store, project.config
    name = name or default_name()
    if not _NAME.match(name):
        raise GenerationError(
            f"generation name {name!r} is not usable: use letters, digits, '.', '_' or '-' "
            "(at most 64 characters)"
        )
    branch = f"{cfg.generation_prefix}{name}"
    open_ = store.open_generations()
    if open_:
        raise GenerationError(
            f"generation {open_[0].name} is still open; stop it with `shoemaker generation stop` "
            "before starting another"
        )
    dirty = git.dirty_paths()
    if dirty:
        shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
        raise GenerationError(
            f"the working tree has uncommitted changes ({shown}); commit or stash them first"
        )
    base = git.current_branch()
    if base is None:
        raise GenerationError("HEAD is detached; check out the branch the generation builds on")
    if base.startswith(cfg.generation_prefix):
        raise GenerationError(f"{base} is itself a generation branch; check out the base branch")
    for ref in (f"refs/heads/{branch}", f"refs/tags/{name}-start"):
        if git.ref_exists(ref):
            raise GenerationError(f"{ref} already exists; choose another generation name")
    if any(g.name == name for g in store.list_generations()):
        raise GenerationError(f"a generation named {name} existed before; choose another name")

    head = git.rev_parse("HEAD")
    generation, event = store.create_generation(name, branch, base, head)
    git.tag(f"{name}-start", head, f"shoemaker generation {name} starts from {base}")
    git.create_branch(branch, head)
    git.checkout(branch)
    project.bus.announce(event)
    return generation


@dataclass(frozen=True, slots=True)
class StopReport:
    generation: Generation
    merge_commit: str
    kept_branches: list[str]


def stop_generation(project: Project, generation: Generation | None = None) -> StopReport:
    """Tag the finished generation, merge it into its base branch, tag that, delete its branch."""
    git, store, cfg = project.git, project.store, project.config
    gen = generation or current_generation(project)
    busy = [t for t in store.list_tasks(gen.name) if t.state in ACTIVE_TASK_STATES]
    if busy:
        ids = ", ".join(f"#{t.id}" for t in busy)
        raise GenerationError(f"tasks {ids} are still running; wait for them or stop the run first")
    if gen.state == GenerationState.RUNNING:
        raise GenerationError(f"generation {gen.name} is running; stop the run first")
    dirty = git.dirty_paths()
    if dirty:
        raise GenerationError(
            f"the working tree has uncommitted changes ({', '.join(dirty[:5])}); "
            "commit or stash them before stopping"
        )
    for tag in (f"{gen.name}-finished", f"{gen.name}-merged"):
        if git.ref_exists(f"refs/tags/{tag}"):
            raise GenerationError(f"tag {tag} already exists; remove it or rename the generation")
    if not git.ref_exists(f"refs/heads/{gen.base_branch}"):
        raise GenerationError(f"the base branch {gen.base_branch} no longer exists")
    clean, conflicts = git.would_merge_cleanly(gen.branch, gen.base_branch)
    if not clean:
        raise GenerationError(
            f"merging {gen.branch} into {gen.base_branch} would conflict in "
            f"{', '.join(conflicts) or 'some files'}; resolve that on {gen.base_branch} first"
        )

    git.tag(f"{gen.name}-finished", gen.branch, f"shoemaker generation {gen.name} finished")
    git.checkout(gen.base_branch)
    outcome = git.merge(
        gen.branch, f"Merge generation {gen.name}", {"Shoemaker-Generation": gen.name}
    )
    if not outcome.merged:
        git.checkout(gen.branch)
        raise GenerationError(
            f"merging {gen.branch} into {gen.base_branch} failed: {outcome.reason}"
        )
    git.tag(f"{gen.name}-merged", outcome.commit, f"shoemaker generation {gen.name} merged")
    git.delete_branch(gen.branch, force=True)
    event = store.set_generation_state(gen.name, GenerationState.STOPPED, "merged")
    project.bus.announce(event)
    for directory in cfg.cleanup_dirs:
        shutil.rmtree(project.root / directory, ignore_errors=True)
    kept = [
        t.branch
        for t in store.list_tasks(gen.name)
        if t.state in (TaskState.CONFLICT, TaskState.FAILED)
        and t.branch
        and git.ref_exists(f"refs/heads/{t.branch}")
    ]
    return StopReport(store.get_generation(gen.name), outcome.commit, kept)
