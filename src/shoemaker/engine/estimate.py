"""Estimates: the tokens and dollars a task is expected to cost, before it runs.

From history when there is some: the done tasks of this repository (every generation) whose
descriptions are closest in length, their stitch runs summed per task. Otherwise from the
prompt: its size, sent again on each of an assumed number of turns, plus assumed output, at
the configured prices. Every estimate says which way it was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoemaker.config import ModelPrice
from shoemaker.engine.project import Project
from shoemaker.engine.prompts import render_stitch_prompt
from shoemaker.model import Generation, Task, TaskState, Usage

#: Characters per token, roughly, for English prose and code.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class TaskEstimate:
    task_id: int
    title: str
    usage: Usage
    """Input and output tokens (an estimate leaves the cache out)."""
    usd: float
    basis: str
    """``history`` or ``prompt size``."""


@dataclass
class Estimate:
    tasks: list[TaskEstimate] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    model: str | None = None
    """The model whose prices an estimate from the prompt's size used (None: from history)."""

    @property
    def total_tokens(self) -> int:
        return sum(t.usage.input_tokens + t.usage.output_tokens for t in self.tasks)

    @property
    def total_usd(self) -> float:
        return sum(t.usd for t in self.tasks)


def _history(project: Project) -> list[tuple[int, int, int, float]]:
    """(description length, input tokens, output tokens, dollars) of every done task."""
    store = project.store
    out = []
    for gen in store.list_generations():
        usage = store.task_usage(gen.name)
        for task in store.list_tasks(gen.name, [TaskState.DONE]):
            u = usage.get(task.id)
            if u and u.cost_usd > 0:
                out.append(
                    (
                        len(task.description),
                        u.usage.input_tokens,
                        u.usage.output_tokens,
                        u.cost_usd,
                    )
                )
    return out


def estimate_tasks(project: Project, gen: Generation, tasks: list[Task]) -> Estimate:
    """Expected spend of ``tasks`` (blocking: reads the store and renders prompts)."""
    cfg = project.config
    history = _history(project)
    result = Estimate(model=None if history else cfg.priced_model())
    similar = min(cfg.estimate.similar, len(history))
    if history:
        result.assumptions.append(
            f"history: each task is the mean of the {similar} done task(s), of "
            f"{len(history)} in this repository, whose descriptions are closest in length"
        )
    else:
        result.assumptions += [
            "no done task to learn from: estimated from the prompt's size",
            f"{cfg.estimate.turns} turns per task, each sending the prompt again "
            f"(~{CHARS_PER_TOKEN} characters per token), {cfg.estimate.output_tokens:,} "
            "output tokens",
        ]
    priced: set[str] = set()
    for task in tasks:
        if history:
            nearest = sorted(history, key=lambda h: abs(h[0] - len(task.description)))[:similar]
            result.tasks.append(
                TaskEstimate(
                    task.id,
                    task.title,
                    Usage(
                        round(sum(h[1] for h in nearest) / len(nearest)),
                        round(sum(h[2] for h in nearest) / len(nearest)),
                    ),
                    sum(h[3] for h in nearest) / len(nearest),
                    "history",
                )
            )
            continue
        # A task that names another kind runs with that kind's model, at its price.
        model, name, price = _task_price(project, task)
        if model not in priced:
            priced.add(model)
            result.assumptions.append(
                f"prices of {name!r} for the model {model}: ${price.input:g} in / "
                f"${price.output:g} out per million tokens (configuration: prices)"
            )
        prompt = render_stitch_prompt(project, task, task.attempts + 1)
        usage = Usage(
            len(prompt) // CHARS_PER_TOKEN * cfg.estimate.turns, cfg.estimate.output_tokens
        )
        result.tasks.append(
            TaskEstimate(task.id, task.title, usage, price.cost(usage), "prompt size")
        )
    return result


def _task_price(project: Project, task: Task) -> tuple[str, str, ModelPrice]:
    """The model ``task`` runs with, and the name and price it is priced by."""
    cfg = project.config
    agent = cfg.agent_for(_str(task.extras.get("agent")))
    if agent is cfg.agent:
        return (cfg.priced_model(), *cfg.price())
    if agent.model:
        return (agent.model, *cfg.price(agent.model))
    # Its CLI's default model is not known here: the default price stands for it.
    return (
        f"{agent.kind}'s default",
        "default",
        cfg.prices.get("default", ModelPrice(input=0, output=0)),
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def open_tasks(project: Project, gen: Generation) -> list[Task]:
    """The tasks an estimate is about: those that may still run."""
    waiting = (TaskState.PROPOSED, TaskState.READY, TaskState.BLOCKED, TaskState.FAILED)
    return project.store.list_tasks(gen.name, list(waiting))
