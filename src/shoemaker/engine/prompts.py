"""What the agents are told: the measure and stitch prompts and the context they carry.

measure's prompt holds the documents of ``doc_globs`` (read without following a link out of the
repository) and the generation's tasks; stitch's holds the task, its gates and, for a retry,
what went wrong the last time. Templates come from ``prompts/`` (``resources.render_prompt``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shoemaker.confined import Refused, read_text
from shoemaker.engine.gates import describe_command, gates_for_title, plan_gates
from shoemaker.engine.project import Project
from shoemaker.errors import Failed
from shoemaker.model import Generation, Task, task_branch
from shoemaker.resources import render_prompt
from shoemaker.sources.context import plan_context

#: Where, relative to the measure worktree, the agent writes its proposals.
PROPOSALS_FILE = "shoemaker-proposals.json"

#: How much of a failure (or of a conflict's diff) the next prompt shows.
FAILURE_CONTEXT = 6_000


class MeasureError(Failed):
    """measure could not produce a valid set of tasks; nothing was added."""


@dataclass(frozen=True, slots=True)
class Doc:
    path: str
    text: str


def collect_docs(root: Path, globs: list[str], max_bytes: int) -> tuple[list[Doc], list[str]]:
    """Documents matching ``globs`` (sorted, de-duplicated), up to ``max_bytes`` in total.
    A link that leads out of the repository is refused (:class:`MeasureError` naming it):
    what it points to would go into the prompt, the store and the screen."""
    seen: set[Path] = set()
    paths: list[Path] = []
    for pattern in globs:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and path not in seen and ".git" not in path.parts:
                seen.add(path)
                paths.append(path)
    docs: list[Doc] = []
    omitted: list[str] = []
    used = 0
    for path in paths:
        rel = path.relative_to(root).as_posix()
        try:
            text = read_text(root, path, rel)
        except Refused as exc:
            raise MeasureError(
                f"doc_globs: {exc}; measure reads only files inside the repository: replace "
                "the link with the document itself, or remove it; nothing was measured"
            ) from None
        if used + len(text) > max_bytes:
            omitted.append(rel)
            continue
        used += len(text)
        docs.append(Doc(rel, text))
    return docs, omitted


def render_measure_prompt(
    project: Project, generation: Generation, cycle: int, tasks: Sequence[Task] | None = None
) -> str:
    """measure's prompt: the documents, the generation's tasks (``tasks``, when the caller
    has listed them) and the proposal limits."""
    cfg = project.config
    docs, omitted = collect_docs(project.root, cfg.doc_globs, cfg.max_doc_bytes)
    if tasks is None:
        tasks = project.store.list_tasks(generation.name)
    return render_prompt(
        "measure.md",
        {
            "project": project.root.name,
            "generation": generation.name,
            "cycle": cycle,
            "docs": docs,
            "omitted_docs": omitted,
            "tasks": [{"id": t.id, "state": t.state.value, "title": t.title} for t in tasks],
            "user_prompt": cfg.user_prompt,
            "output_path": PROPOSALS_FILE,
            "max_issues": cfg.max_issues,
            "lines_min": cfg.estimated_lines_min,
            "lines_max": cfg.estimated_lines_max,
        },
        repo=project.root,
        configured=cfg.measure_prompt,
    )


def failure_context(project: Project, task: Task) -> str:
    """What went wrong in the task's last attempt, for the next attempt's prompt."""
    runs = project.store.runs(task_id=task.id)
    if not runs:
        return task.reason
    last = runs[-1]
    parts = [task.reason or last.reason]
    if not last.ok:
        if last.result_text:
            parts.append(f"The agent's final message: {last.result_text}")
        if last.stderr_tail.strip():
            parts.append(f"stderr:\n{last.stderr_tail.strip()[-2000:]}")
    for gate in project.store.gate_results(task.id):
        if gate.run_id == last.id and not gate.passed:
            parts.append(f"gate {gate.name} output:\n{gate.output_tail[-3000:]}")
    return "\n\n".join(p for p in parts if p)[-FAILURE_CONTEXT:]


def render_stitch_prompt(
    project: Project, task: Task, attempt: int, continuing: bool = False
) -> str:
    """The stitch prompt of ``task``'s attempt ``attempt`` (also used for estimates);
    ``continuing``: the worktree holds earlier work to continue and fix."""
    cfg = project.config
    gates = [*gates_for_title(cfg.gates, task.title), *plan_gates(task)]
    return render_prompt(
        "stitch.md",
        {
            "task": {
                "id": task.id,
                "title": task.title,
                "description": task.description,
                "attempt": attempt,
            },
            "generation": task.generation,
            "branch": task_branch(task.generation, task.id),
            "gates": [{"name": g.name, "command": describe_command(g)} for g in gates],
            "previous_failure": failure_context(project, task) if attempt > 1 else "",
            "plan_context": plan_context(
                project.root,
                project.git,
                task,
                [project.store.get_task(d) for d in task.depends_on] if task.origin else [],
            ),
            "continuing": continuing,
            "require_done_signal": cfg.require_done_signal,
        },
        repo=project.root,
        configured=cfg.stitch_prompt,
    )
