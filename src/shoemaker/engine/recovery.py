"""Recovery: after shoemaker was killed, make the store agree with git and the process table.

Run before any work on a generation (``Engine.run`` does it first; ``shoemaker resume`` is
recovery followed by a run). What it does, in order:

1. agents left by the dead process are killed: by the pid stored for each unfinished run, only
   if that process still runs the same command line and started with the run (a reused pid is
   left alone), with its process group; then every process that carries an unfinished run's
   ``SHOEMAKER_RUN`` marker in its environment;
2. a merge left half done in the main worktree is undone (the generation branch's last commit
   is what counts), only if shoemaker started it: its message (SQUASH_MSG, MERGE_MSG) names,
   by a ``Shoemaker-Task`` trailer or the reverted commit, a task the store has ``merging``.
   A person's staged files or merge are never touched: recovery refuses
   (``GenerationError``) before it changes anything (``check_main_checkout``);
3. a task whose squash commit is on the generation branch (its ``Shoemaker-Task`` trailer) but
   that the store does not call done is recorded as done, never run again;
4. every other task the dead process was working on goes back to ``ready`` (its attempt was
   counted when it started); its branch keeps whatever it had committed;
5. unfinished runs are closed with the reason; worktrees the dead process used are removed,
   after what an agent left uncommitted in one is committed to its task branch;
6. ``proposed`` tasks whose dependencies are all done are promoted to ``ready`` (a task's
   ``done`` and its promotions are one transaction; this catches stores written otherwise);
7. when more worktrees, branches and directories than ``gc_warn_threshold`` belong to no open
   generation, one warning says how many and names ``shoemaker gc``.

Each step is a Notice event, and a Recovered event sums them up (the dashboard shows it as a
notification, the headless story as a line).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoemaker.agents.leftovers import environments as _environments
from shoemaker.agents.leftovers import marked_processes as _marked_processes
from shoemaker.agents.run_dirs import remove_stale as _remove_stale_run_dirs
from shoemaker.agents.run_dirs import scratch_dir
from shoemaker.engine.agent_call import run_marker
from shoemaker.engine.gc import pile_up_warning
from shoemaker.engine.history import task_history_path, write_task_history
from shoemaker.engine.project import Project, merge_file_lock
from shoemaker.errors import GenerationError
from shoemaker.events import Notice, Recovered
from shoemaker.git import GIT_OWNER_MARKER, CommitInfo, GitError
from shoemaker.model import ACTIVE_TASK_STATES, Generation, TaskState
from shoemaker.store import TaskMoved


@dataclass
class RecoveryReport:
    """What recovery found and did (empty lists: nothing to do)."""

    killed: list[int] = field(default_factory=list)
    landed: dict[int, str] = field(default_factory=dict)
    """Task id → squash commit: merges that landed but were not recorded; their gates are
    still to run (``Stitcher.settle_landed``)."""
    requeued: list[int] = field(default_factory=list)
    closed_runs: list[int] = field(default_factory=list)
    worktrees_removed: list[str] = field(default_factory=list)
    merge_undone: bool = False
    promoted: list[int] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(
            self.killed
            or self.promoted
            or self.landed
            or self.requeued
            or self.closed_runs
            or self.worktrees_removed
            or self.merge_undone
        )

    def summary(self) -> str:
        parts = [
            f"{len(self.requeued)} task(s) back to ready",
            f"{len(self.landed)} landed merge(s) found",
            f"{len(self.killed)} agent(s) killed",
            f"{len(self.closed_runs)} run(s) closed",
            f"{len(self.worktrees_removed)} worktree(s) removed",
        ]
        if self.merge_undone:
            parts.append("a half-done merge undone")
        if self.promoted:
            parts.append(f"{len(self.promoted)} waiting task(s) promoted to ready")
        return ", ".join(parts)

    def event(self, generation: str) -> Recovered:
        return Recovered(
            generation=generation,
            killed_pids=self.killed,
            landed=sorted(self.landed),
            requeued=self.requeued,
            closed_runs=self.closed_runs,
            worktrees_removed=len(self.worktrees_removed),
            merge_undone=self.merge_undone,
            summary=self.summary(),
        )


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _started_at(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch (from /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration):
        return None
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time in clock ticks
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _kill_stale_agent(pid: int, argv: list[str], started: float) -> bool:
    """Kill the process group of ``pid`` if it is still the agent a run started: the same
    arguments, started within seconds of the run. A pid reused by anything else is left."""
    running = _cmdline(pid)
    began = _started_at(pid)
    if not running or began is None or abs(began - started) > 10:
        return False
    same_args = running[len(running) - len(argv) + 1 :] == argv[1:]
    same_program = any(Path(part).name == Path(argv[0]).name for part in running[:2])
    if not (same_args and same_program):
        return False
    try:
        os.killpg(pid, signal.SIGKILL)  # the agent leads its own process group
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _orphaned_gits() -> list[int]:
    """git processes whose shoemaker is dead (they finish on their own, holding locks)."""
    prefix = f"{GIT_OWNER_MARKER}=".encode()
    found = []
    for pid, env in _environments():
        owner = next((v[len(prefix) :] for v in env if v.startswith(prefix)), b"")
        if owner.isdigit() and not Path(f"/proc/{int(owner)}").exists():
            found.append(pid)
    return found


def _wait_for_orphaned_gits(limit: float = 30.0) -> list[int]:
    """Let the gits of a dead shoemaker finish (a killed git would leave its lock files);
    after ``limit`` seconds the stragglers are killed. Returns those that were found."""
    seen: set[int] = set()
    deadline = time.monotonic() + limit
    while gits := _orphaned_gits():
        seen.update(gits)
        if time.monotonic() > deadline:
            for pid in gits:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.02)  # another process's exit cannot be awaited
    return sorted(seen)


def landed_on(project: Project, gen: Generation) -> dict[int, str]:
    """:func:`landed_tasks` of ``gen``'s branch since it started."""
    return landed_tasks(project.git.log(f"{gen.start_commit}..{gen.branch}"))


def landed_tasks(newest_first: Sequence[CommitInfo]) -> dict[int, str]:
    """Task id → its squash commit, for the tasks whose work is on the branch: landed by a
    ``Shoemaker-Task`` commit and not undone by a later ``Shoemaker-Reverts-Task`` one."""
    landed: dict[int, str] = {}
    for commit in reversed(newest_first):
        reverted = commit.trailers.get("Shoemaker-Reverts-Task", "")
        if reverted.isdigit():
            landed.pop(int(reverted), None)
        elif commit.trailers.get("Shoemaker-Task", "").isdigit():
            landed[int(commit.trailers["Shoemaker-Task"])] = commit.sha
    return landed


def _refusal(message: str) -> Exception:
    return GenerationError(message)


_TASK_TRAILER = re.compile(r"^\s*Shoemaker-Task:\s*(\d+)\s*$", re.MULTILINE)
_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,64})")


def _own_merge(project: Project, gen: Generation) -> bool:
    """Whether what is staged on the generation branch is a merge shoemaker started: its
    message names a task of ``gen`` that the store has ``merging`` (a squash merge's
    SQUASH_MSG carries the task commit's trailers; a revert's MERGE_MSG the commit it undoes)."""
    git = project.git
    merging = {t.id for t in project.store.list_tasks(gen.name, [TaskState.MERGING])}
    if not merging:
        return False
    messages = git.merge_messages()
    named = {int(n) for n in _TASK_TRAILER.findall(messages)}
    for sha in _REVERTS.findall(messages):
        with contextlib.suppress(GitError, IndexError):
            named.update(int(n) for n in _TASK_TRAILER.findall(git.commit_message(sha)))
    return bool(named & merging)


def _foreign_git_state(project: Project, gen: Generation, current: str | None = None) -> str | None:
    """What in the main checkout is a person's and in the way: a merge in progress or staged
    files that shoemaker did not leave (None: nothing, or only shoemaker's own merge).
    ``current``: the branch checked out, when the caller has just asked git."""
    git = project.git
    if (current or git.current_branch()) != gen.branch:
        return None  # recovery touches no merge there; running checks the checkout
    merging, staged = git.is_merging(), git.staged_paths()
    if not (merging or staged) or _own_merge(project, gen):
        return None
    listed = ", ".join(staged[:5]) + (f" and {len(staged) - 5} more" if len(staged) > 5 else "")
    what = "a merge in progress that shoemaker did not start" if merging else "staged files"
    where = f" ({listed})" if listed else ""
    fix = "`git merge --continue` or `git merge --abort`" if merging else "commit or unstage them"
    return f"{gen.branch} has {what}{where}, which shoemaker never touches: {fix}, then run again"


def check_main_checkout(project: Project, gen: Generation) -> None:
    """Refuse a run (``GenerationError``, nothing changed) unless merges can land: the main
    checkout has the generation branch checked out and holds no merge or staged files of a
    person. Checked before anything runs, so no agent is paid for work that could not land.
    Call it holding the run lock: a git of a dead shoemaker is let finish first."""
    _wait_for_orphaned_gits()
    git = project.git
    current = git.current_branch()
    if current != gen.branch:
        raise _refusal(
            f"the repository at {git.root} has {current or 'a detached HEAD'} checked out; "
            f"shoemaker merges into {gen.branch} there: "
            f"`git checkout {gen.branch}` (or `shoemaker switch {gen.name}`) and run again"
        )
    problem = _foreign_git_state(project, gen, current)
    if problem:
        raise _refusal(problem)


def _leftover_worktrees(project: Project) -> bool:
    """Whether anything is in the worktree directory (a run removes its worktrees at its end)."""
    root = project.worktree_root
    return root.is_dir() and any(root.iterdir())


def recover(project: Project, gen: Generation, checked: bool = False) -> RecoveryReport:
    """Reconcile one generation after a crash (blocking; call it from a thread).

    ``checked``: ``check_main_checkout`` has just passed, holding the run lock, so the main
    checkout holds nothing of a person's. When the store has no unfinished run and no task at
    work, and the worktree directory is empty, there is nothing of a dead process for git to
    show: the git steps are skipped (a staged merge could only be shoemaker's if a task were
    ``merging``, and one that is not was refused already).
    """
    store, git = project.store, project.git
    report = RecoveryReport()

    def log(message: str) -> None:
        project.bus.emit(Notice(generation=gen.name, message=f"recovery: {message}"))

    gits = _wait_for_orphaned_gits()
    if gits:
        log(f"waited for {len(gits)} git process(es) of the stopped shoemaker to finish")
    if not checked:
        problem = _foreign_git_state(project, gen)
        if problem:
            raise _refusal(problem)  # before anything changes
    unfinished = [run for run in store.runs(generation=gen.name) if run.ended_at is None]
    tasks = store.list_tasks(gen.name)
    at_work = any(t.state in ACTIVE_TASK_STATES for t in tasks)
    for run in unfinished:
        if run.pid is not None and _kill_stale_agent(run.pid, run.argv, run.started_at):
            report.killed.append(run.pid)
            log(f"killed agent process {run.pid} left by run {run.id}")
    # The rest of those runs' processes: children that left the group, or agents whose pid
    # was never stored because shoemaker died right after starting them.
    markers = {run_marker(project, run.id) for run in unfinished}
    for pid in _marked_processes(markers) if markers else []:
        if pid in report.killed:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            report.killed.append(pid)
            log(f"killed process {pid} left by an interrupted agent run")
    for run in unfinished:
        transcript = project.runs_dir / f"{run.id}.jsonl"
        store.finish_run(
            run.id,
            transcript=transcript,
            ended="no_result",
            ok=False,
            reason="interrupted: shoemaker stopped while it ran",
        )
        with contextlib.suppress(FileNotFoundError):
            transcript.unlink()
        report.closed_runs.append(run.id)
    # What those runs' adapters made outside a sandbox (a codex home with a login's copy).
    for stale in _remove_stale_run_dirs(scratch_dir(project.state_dir)):
        log(f"removed {stale.name}, left by a stopped shoemaker")

    # Worktrees the dead process used: what an agent left uncommitted is committed to its
    # task branch (kept, never thrown away), then the worktree goes.
    look_at_worktrees = bool(unfinished) or at_work or bool(gits) or _leftover_worktrees(project)
    for wt in git.worktrees() if look_at_worktrees else []:
        if wt.path == git.root or project.worktree_root not in wt.path.parents:
            continue
        if wt.branch and wt.path.is_dir():
            # What the agent left may have replaced .git with a repository of its own, whose
            # configuration the git calls below would execute.
            with contextlib.suppress(OSError):
                if git.restore_gitfile(wt.path):
                    log(f"restored {wt.path / '.git'}, which the agent had replaced")
        if wt.branch and wt.path.is_dir() and git.dirty_paths(wt.path):
            with contextlib.suppress(GitError):
                git.commit_all(
                    wt.path,
                    f"Unfinished work on {wt.branch}",
                    "Left in its worktree when shoemaker stopped.",
                    {"Shoemaker-Outcome": "interrupted"},
                )
                log(f"committed unfinished work on {wt.branch}")
        git.remove_worktree(wt.path)
        report.worktrees_removed.append(str(wt.path))

    landed: dict[int, str] = {}
    # A half-done merge or a landed one to find needs a task the dead process was working on.
    with merge_file_lock(project) if at_work else contextlib.nullcontext():
        current = git.current_branch() if at_work else None
        if current == gen.branch and (git.is_merging() or git.has_staged()):
            problem = _foreign_git_state(project, gen, current)
            if problem:  # appeared since the first check; still not shoemaker's to undo
                raise _refusal(problem)
            git.abort_merge()  # shoemaker's staged merge goes; a person's unstaged edits stay
            report.merge_undone = True
            log(f"undid a merge left half done on {gen.branch}")
        if at_work:
            landed = landed_on(project, gen)

    for task in tasks:
        if task.state == TaskState.DONE:
            # Squash-merged work never makes its branch an ancestor: a done task's branch left
            # by a crash between the merge and its deletion holds nothing that did not land.
            if task.branch and git.ref_exists(f"refs/heads/{task.branch}"):
                git.delete_branch(task.branch, force=True)
                log(f"removed branch {task.branch} of task {task.id}, which had merged")
            if not task_history_path(project, task).exists():
                write_task_history(project, task)  # the crash came before its record
            continue
        if task.id in landed and task.state in ACTIVE_TASK_STATES:
            # Recorded as merging with its squash commit; the run that follows runs its
            # post-merge gates and records it done (``Stitcher.settle_landed``). Its branch
            # stays until then: a gate failure reverts the merge and the work is kept.
            for state in (TaskState.VERIFYING, TaskState.MERGING):
                if state != store.get_task(task.id).state:
                    with contextlib.suppress(ValueError):
                        store.transition_task(
                            task.id,
                            state,
                            "merged before a crash; found by recovery",
                            merged_commit=landed[task.id],
                        )
            report.landed[task.id] = landed[task.id]
            log(f"task {task.id} had merged ({landed[task.id][:10]}); its gates run next")
        elif task.state in ACTIVE_TASK_STATES:
            try:
                # Only from the state listed above: another process (an approval landing its
                # task) may have moved it since, to done say, which must stay done.
                store.transition_task(
                    task.id,
                    TaskState.READY,
                    "interrupted; recovered",
                    interrupted=True,
                    expect=(task.state,),
                )
            except TaskMoved as exc:
                log(f"task {task.id} left alone: {exc}")
                continue
            report.requeued.append(task.id)
            log(f"task {task.id} was {task.state.value}; back to ready")
    # Recovery moves no task to done, so the proposed ones are those listed above.
    if any(t.state == TaskState.PROPOSED for t in tasks):
        promoted = store.promote_unblocked(gen.name)
        if promoted:
            report.promoted = [event.task_id for event in promoted]
            log(f"task(s) {', '.join(map(str, report.promoted))}: dependencies done; now ready")
    if look_at_worktrees:
        git.prune_worktrees()
    if report.anything:
        project.bus.emit(report.event(gen.name))
    pile_up = pile_up_warning(project)
    if pile_up:
        project.bus.emit(
            Notice(generation=gen.name, level="warning", message=f"recovery: {pile_up}")
        )
    return report
