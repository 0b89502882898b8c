"""measure: ask the agent for the next tasks and add the valid ones to the task graph.

The agent runs in a throw-away detached worktree of the generation head, so that a measure run
that edits files anyway changes nothing that matters. Its proposals are read from the JSON file
the prompt asked for, or else from a fenced ```yaml list in its final text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from shoemaker.agents.ratelimit import RateLimit, rate_limit_of
from shoemaker.confined import Refused, read_bytes
from shoemaker.engine.agent_call import AgentCall, call_agent
from shoemaker.engine.history import write_measure_history
from shoemaker.engine.project import Project
from shoemaker.engine.prompts import (
    PROPOSALS_FILE,
    Doc,
    MeasureError,
    collect_docs,
    render_measure_prompt,
)
from shoemaker.engine.proposals import (
    Proposal,
    ProposalError,
    check_proposals,
    find_yaml_proposals,
    limit_proposals,
    parse_json_proposals,
    title_key,
)
from shoemaker.engine.worktrees import WorktreePool
from shoemaker.errors import GenerationError
from shoemaker.events import MeasureFinished, Notice
from shoemaker.model import Generation, Phase, Task, TaskState
from shoemaker.store import NewTask


class MeasureRateLimited(MeasureError):
    """The provider refused measure's agent (a rate limit): nothing was added; a run waits
    for the reset and measures again."""

    def __init__(self, message: str, limit: RateLimit, run_id: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.run_id = run_id


async def measure(
    project: Project,
    generation: Generation,
    cycle: int,
    pool: WorktreePool | None = None,
    plan_id: int | None = None,
) -> list[Task]:
    """Run measure once; returns the tasks it added (possibly none), held by ``plan_id``
    until that plan is approved when one is given."""
    # One listing serves the prompt and the check against what exists: only measure adds
    # tasks, and a run's measure holds the run lock.
    known = await asyncio.to_thread(project.store.list_tasks, generation.name)
    prompt = await asyncio.to_thread(render_measure_prompt, project, generation, cycle, known)
    own_pool = pool is None
    pool = pool or WorktreePool(
        project.git, project.worktree_root, generation.name, project.config.reuse_worktrees
    )
    worktree = await asyncio.to_thread(pool.reserve)
    head = await asyncio.to_thread(project.git.rev_parse, generation.branch)
    await asyncio.to_thread(pool.prepare, worktree, None, head)
    try:
        run, result = await call_agent(
            project,
            AgentCall(Phase.MEASURE, generation.name, None, 0, prompt, worktree),
        )
        run_id = run.id
        file_text, refused = await asyncio.to_thread(_read_proposals, worktree)
    finally:
        await asyncio.to_thread(pool.release, worktree)
        if own_pool:
            await asyncio.to_thread(pool.close)

    if refused is not None:
        raise MeasureError(
            f"measure run {run_id}: {refused}; the proposals must be a file the agent writes "
            "in its worktree; nothing was added"
        )
    if not result.ok:
        limit = rate_limit_of(result.summary)
        if limit is not None and limit.status == "rejected":
            raise MeasureRateLimited(f"measure run {run_id}: {result.reason}", limit, run_id)
        raise MeasureError(f"measure run {run_id} failed: {result.reason}")
    try:
        if file_text is not None:
            source = f"{PROPOSALS_FILE} (run {run_id})"
            raw = parse_json_proposals(file_text, source)
        else:
            source = f"the final text of run {run_id}"
            found = find_yaml_proposals(result.summary.result_text or "")
            raw = found if found is not None else []
            if found is None:
                source = "none"
        checked = check_proposals(raw, source, _existing(known))
    except ProposalError as exc:
        project.bus.emit(Notice(generation=generation.name, level="error", message=str(exc)))
        raise MeasureError(str(exc)) from None
    proposals = checked.proposals
    for notice in checked.notices:
        project.bus.emit(Notice(generation=generation.name, level="warning", message=notice))

    kept, dropped = limit_proposals(proposals, project.config.max_issues)
    if dropped:
        project.bus.emit(
            Notice(
                generation=generation.name,
                level="warning",
                message=f"measure proposed {len(proposals)} tasks; kept {len(kept)} "
                f"(max_issues {project.config.max_issues}), dropped: "
                + ", ".join(repr(p.title) for p in dropped),
            )
        )
    tasks = await asyncio.to_thread(_insert, project, generation, cycle, kept, plan_id)
    project.bus.emit(
        MeasureFinished(
            generation=generation.name,
            run_id=run_id,
            task_ids=[t.id for t in tasks],
            source=source,
        )
    )
    await asyncio.to_thread(write_measure_history, project, generation, cycle, run, tasks)
    return tasks


def _existing(tasks: Sequence[Task]) -> dict[str, int]:
    """The generation's tasks by :func:`title_key` (a cancelled task may be proposed again)."""
    return {title_key(t.title): t.id for t in tasks if t.state != TaskState.CANCELLED}


def _read_proposals(worktree: Path) -> tuple[bytes | None, Refused | None]:
    """The proposals file's bytes, decoded when parsed (None when there is none), or why it
    was refused."""
    output = worktree / PROPOSALS_FILE
    if not output.is_symlink() and not output.exists():
        return None, None
    try:
        return read_bytes(worktree, output, PROPOSALS_FILE), None
    except Refused as exc:
        return None, exc
    except FileNotFoundError:
        return None, None  # a link to nothing: no file


def _insert(
    project: Project,
    generation: Generation,
    cycle: int,
    kept: list[Proposal],
    plan_id: int | None = None,
) -> list[Task]:
    """Insert the proposals in one transaction; they arrive in dependency order."""
    if not kept:
        return []
    position = {p.index: n for n, p in enumerate(kept)}
    news = [
        NewTask(
            p.title,
            p.description,
            p.priority,
            depends_on=p.depends_on_tasks,
            after=tuple(position[d] for d in p.depends_on),
            extras=p.extras,
        )
        for p in kept
    ]
    tasks, _ = project.store.add_tasks(
        generation.name, news, cycle, source="measure", plan_id=plan_id
    )
    return tasks


__all__ = [
    "PROPOSALS_FILE",
    "Doc",
    "MeasureError",
    "collect_docs",
    "measure",
    "measure_once",
    "render_measure_prompt",
]


async def measure_once(project: Project) -> list[Task]:
    """One measure call on the current generation, outside of a run (``shoemaker measure``,
    the dashboard's ``m``): after the same preflight a run makes."""
    from shoemaker.engine.doctor import preflight
    from shoemaker.engine.generation import current_generation

    gen = await asyncio.to_thread(current_generation, project)
    if project.config.require_approval:
        # Its tasks would belong to no plan, and only planned tasks run.
        raise GenerationError(
            "require_approval is on: `shoemaker plan` proposes tasks for approval"
        )
    await asyncio.to_thread(preflight, project)
    cycle = await asyncio.to_thread(project.store.next_cycle, gen.name)
    return await measure(project, gen, cycle)
