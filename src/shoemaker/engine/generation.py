"""The generation lifecycle: start (tag, branch, optional source reset), pause, switch, and
reverting a merged task; stop and reset, which end a generation, are in ``ending``.

Each verb checks everything it can before it changes anything, so a refusal leaves the
repository and the store as they were, and says why.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from shoemaker.confined import Refused, leaves, read_text
from shoemaker.engine.current import pick_generation
from shoemaker.engine.project import Project, RunLock, run_lock_holder
from shoemaker.errors import GenerationError
from shoemaker.events import Notice
from shoemaker.git import GitError
from shoemaker.globs import matches_any
from shoemaker.model import (
    DRIVEN_GENERATION_STATES,
    Generation,
    GenerationState,
    TaskState,
    task_branch,
)
from shoemaker.store import StoreError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def current_generation(project: Project) -> Generation:
    """The generation commands act on: the configured one, else the one checked out, else the
    only open one."""
    return pick_generation(project.store, project.git, project.config.generation_branch)


def find_generation(project: Project, name: str) -> Generation:
    """A generation by name or branch, with a clear error when there is none."""
    for gen in project.store.list_generations():
        if name in (gen.name, gen.branch):
            return gen
    raise GenerationError(f"no generation named {name!r}; see `shoemaker list`")


@contextmanager
def no_run_in_progress(project: Project, doing: str) -> Iterator[None]:
    """Hold the project's run lock while a lifecycle verb changes branches, so no run can
    start meanwhile; refuse when a run holds it."""
    lock = RunLock(project)
    if not lock.acquire():
        holder = run_lock_holder(project.state_dir) or "another shoemaker process"
        raise GenerationError(
            f"a run is in progress in {holder}; pause it with "
            f"`shoemaker pause` and wait for it to end before you {doing}"
        )
    try:
        yield
    finally:
        lock.release()


def refuse_dirty(project: Project, doing: str) -> None:
    dirty = project.git.dirty_entries()
    if dirty:
        shown = ", ".join(path for _, path in dirty[:5]) + (" …" if len(dirty) > 5 else "")
        # An untracked file is often one never to commit (.env): ignoring it is the way on.
        untracked = any(xy == "??" for xy, _ in dirty)
        raise GenerationError(
            f"the working tree has uncommitted changes ({shown}); commit or stash them "
            + ("(or ignore untracked files in .gitignore) " if untracked else "")
            + f"before you {doing}"
        )


def start_generation(project: Project, name: str | None = None) -> Generation:
    """Tag the base, create the generation branch and check it out (then, when configured,
    reset the sources on it)."""
    git, store, cfg = project.git, project.store, project.config
    name = name or default_name()
    if not _NAME.match(name):
        raise GenerationError(
            f"generation name {name!r} is not usable: use letters, digits, '.', '_' or '-' "
            "(at most 64 characters)"
        )
    branch = f"{cfg.generation_prefix}{name}"
    _refuse_bad_ref_names(project, name, branch)
    with no_run_in_progress(project, "start a generation"):
        if not git.ref_exists("HEAD"):
            raise GenerationError(
                "the repository has no commit yet; commit something first (a generation "
                "starts from a commit, which it tags)"
            )
        refuse_dirty(project, "start a generation")
        base = git.current_branch()
        if base is None:
            raise GenerationError("HEAD is detached; check out the branch the generation builds on")
        if base.startswith(cfg.generation_prefix):
            raise GenerationError(
                f"{base} is itself a generation branch; check out the base branch"
            )
        for ref in (f"refs/heads/{branch}", f"refs/tags/{name}-start"):
            if git.ref_exists(ref):
                raise GenerationError(f"{ref} already exists; choose another generation name")
        if any(g.name == name for g in store.list_generations()):
            raise GenerationError(f"a generation named {name} existed before; choose another name")
        seeds = _seed_texts(project, name, base) if cfg.reset_sources else {}

        head = git.rev_parse("HEAD")
        generation, _ = store.create_generation(name, branch, base, head)
        git.tag(f"{name}-start", head, f"shoemaker generation {name} starts from {base}")
        git.create_branch(branch, head)
        git.checkout(branch)
        if cfg.reset_sources:
            _reset_sources(project, name, seeds)
    return generation


#: Suffixes of the tags a generation's life creates (start, stop, reset).
_TAG_SUFFIXES = ("start", "finished", "merged", "abandoned")


def _refuse_bad_ref_names(project: Project, name: str, branch: str) -> None:
    """Refuse, before anything is written, a name that git would refuse for one of the refs
    the generation creates: its branch, its tags, its task and attempt branches."""
    refs = [
        branch,
        *(f"{name}-{suffix}" for suffix in _TAG_SUFFIXES),
        task_branch(name, 1),
        f"attempt/{name}-1-1",
    ]
    for ref in refs:
        if not project.git.is_valid_branch_name(ref):
            raise GenerationError(
                f"generation name {name!r} is not usable: git refuses the name {ref!r} "
                "(see `git help check-ref-format`); choose another name"
            )


def _seed_texts(project: Project, name: str, base: str) -> dict[str, str]:
    """Render the configured seed files before anything changes (a bad template refuses)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    root = project.root
    # A template is a file of the repository, which agents change: rendered in a sandbox, so
    # that it can only fill in text, never reach Python.
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    out = {}
    for dest, template in project.config.seed_files.items():
        path = root / template
        if leaves(root, root / dest):
            raise GenerationError(
                f"seed_files: {dest}: leads out of the repository (a link on the way?); "
                "write seed files inside it: fix seed_files or remove the link"
            )
        try:
            text = read_text(root, path, template)
            out[dest] = env.from_string(text).render(generation=name, base_branch=base)
        except Refused as exc:
            raise GenerationError(
                f"seed_files: {dest}: template {exc}; templates are read only from inside the "
                "repository: replace the link with the file"
            ) from None
        except OSError as exc:
            raise GenerationError(
                f"seed_files: {dest}: cannot read its template {template}: {exc.strerror}"
            ) from None
        except jinja2.TemplateError as exc:
            raise GenerationError(f"seed_files: {dest}: template {template}: {exc}") from None
    return out


def _reset_sources(project: Project, name: str, seeds: dict[str, str]) -> None:
    """Delete the tracked files of ``source_dirs`` (but ``reset_keep``), write the seed files,
    and commit that as the generation's first commit."""
    git, cfg = project.git, project.config
    removed = [
        path for path in git.tracked_files(cfg.source_dirs) if not matches_any(path, cfg.reset_keep)
    ]
    for path in removed:
        (project.root / path).unlink(missing_ok=True)
    for dest, text in seeds.items():
        target = project.root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git.commit_all(
        project.root,
        f"Reset sources for generation {name}",
        f"Removed {len(removed)} file(s) under {', '.join(cfg.source_dirs)}; "
        f"wrote {len(seeds)} seed file(s).",
        {"Shoemaker-Generation": name},
    )
    project.bus.emit(
        Notice(
            generation=name,
            message=f"reset sources: removed {len(removed)} file(s), wrote {len(seeds)} seed(s)",
        )
    )


#: The reasons a person's pause leaves (``shoemaker pause``, the dashboard's key): the first
#: while a run winds down, the second once paused.
HAND_PAUSES = ("pause requested", "paused")


def paused_by_hand(gen: Generation) -> bool:
    """Whether a person paused ``gen``: only ``resume`` (or ``run``) by a person goes on."""
    return gen.state == GenerationState.PAUSED and gen.reason in HAND_PAUSES


def pause_generation(project: Project, generation: Generation | None = None) -> str:
    """Ask the generation to pause: a run in progress (here or in another process) starts no
    new task and ends once its running agents finish; an idle one is marked paused so that
    only ``resume`` (or ``run``) goes on. Returns what happened, for people."""
    gen = generation or current_generation(project)
    if gen.state == GenerationState.PAUSED:
        return f"generation {gen.name} is already paused; `shoemaker resume` goes on"
    running = gen.state in DRIVEN_GENERATION_STATES and not RunLock(project).free()
    project.store.set_generation_state(
        gen.name, GenerationState.PAUSED, HAND_PAUSES[0] if running else HAND_PAUSES[1]
    )
    if running:
        return (
            f"generation {gen.name}: pause requested; running agents finish, no new task "
            "starts, then the run ends"
        )
    return f"generation {gen.name} paused; `shoemaker resume` goes on"


def switch_generation(project: Project, name: str) -> Generation:
    """Check out another open generation's branch; later commands act on it."""
    git, cfg = project.git, project.config
    gen = find_generation(project, name)
    if gen.state in (GenerationState.STOPPED, GenerationState.ABANDONED):
        raise GenerationError(f"generation {gen.name} is {gen.state}; only open ones can be used")
    if cfg.generation_branch and cfg.generation_branch not in (gen.name, gen.branch):
        raise GenerationError(
            f"configuration.yaml pins generation_branch {cfg.generation_branch!r}; "
            "remove that setting to switch"
        )
    with no_run_in_progress(project, "switch"):
        if gen.state in DRIVEN_GENERATION_STATES:
            raise GenerationError(
                f"generation {gen.name} is marked {gen.state}; `shoemaker resume` recovers it first"
            )
        refuse_dirty(project, "switch")
        if not git.ref_exists(f"refs/heads/{gen.branch}"):
            raise GenerationError(f"the branch {gen.branch} of generation {gen.name} is gone")
        git.checkout(gen.branch)
    return gen


def revert_task(project: Project, task_id: int, retry: bool = False) -> str:
    """Revert a merged task on the generation branch with a new commit; the task becomes
    ``cancelled`` (or ``ready`` with ``retry``). Refuses, changing nothing, when later tasks
    build on it. Returns the revert commit."""
    git, store = project.git, project.store
    try:
        task = store.get_task(task_id)
    except StoreError:
        raise GenerationError(f"no task #{task_id}; see `shoemaker tasks`") from None
    gen = store.get_generation(task.generation)
    if gen.state in (GenerationState.STOPPED, GenerationState.ABANDONED):
        raise GenerationError(f"task #{task_id} belongs to generation {gen.name}, {gen.state}")
    if task.state != TaskState.DONE or not task.merged_commit:
        raise GenerationError(f"task #{task_id} is {task.state}, not merged; nothing to revert")
    building = [
        store.get_task(d)
        for d in store.dependents(task_id)
        if store.get_task(d).state
        not in (TaskState.PROPOSED, TaskState.READY, TaskState.BLOCKED, TaskState.CANCELLED)
    ]
    if building:
        listed = ", ".join(f"#{t.id} {t.title} ({t.state})" for t in building)
        raise GenerationError(
            f"task #{task_id} cannot be reverted: later tasks build on it: {listed}; "
            "revert those first"
        )
    with no_run_in_progress(project, "revert a task"):
        refuse_dirty(project, "revert a task")
        if git.current_branch() != gen.branch:
            raise GenerationError(f"check out {gen.branch} first (`shoemaker switch {gen.name}`)")
        try:
            commit = git.revert(
                task.merged_commit,
                f"Revert task #{task_id}: {task.title}",
                "Reverted by `shoemaker task revert`.",
                {"Shoemaker-Reverts-Task": str(task_id)},
            )
        except GitError as exc:
            raise GenerationError(
                f"task #{task_id} cannot be reverted cleanly; later commits changed the same "
                f"lines ({exc.stderr.strip()[:200]})"
            ) from None
        new = TaskState.READY if retry else TaskState.CANCELLED
        store.transition_task(task_id, new, f"reverted by {commit[:10]}", merged_commit="")
        if not retry:
            store.block_dependents(gen.name, task_id, "was reverted")
    return commit
