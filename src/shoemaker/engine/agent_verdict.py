"""What an agent run's end says about its attempt beyond its exit code: the done signal it
gave (or did not give when one is required) and what the task's plan asked of it."""

from __future__ import annotations

from shoemaker.engine.agent_call import DoneChannel
from shoemaker.engine.attempts import Attempt
from shoemaker.engine.gates import Failure, fingerprint
from shoemaker.engine.project import Project
from shoemaker.sources.compliance import shortfall


def signal_failure_of(
    project: Project, run_id: int, ran_ok: bool, done: DoneChannel
) -> Failure | None:
    """A run that ended well by its exit but not by its signal: a signal file that is no
    signal, or none at all when ``require_done_signal`` asks for one."""
    if not ran_ok:
        return None  # the run's own failure says more
    if done.error:
        reason = project.redactor.text(f"agent run {run_id}: {done.error}")
        return Failure(reason, fingerprint("signal", done.error))
    if done.signal is None and project.config.require_done_signal:
        reason = (
            f"agent run {run_id} ended without signalling done (require_done_signal): "
            'it must run `"$SHOEMAKER" done` as its last step'
        )
        return Failure(reason, fingerprint("signal", "missing"))
    return None


def plan_shortfall(project: Project, attempt: Attempt) -> str:
    """What the task's plan requires that the attempt did not do ("" if nothing)."""
    task = attempt.task
    if not (task.extras.get("required_agents") or task.extras.get("notes_file")):
        return ""
    assert attempt.worktree is not None and attempt.run_id is not None
    return shortfall(task, project.store.transcript(attempt.run_id), attempt.worktree)
