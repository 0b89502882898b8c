"""What a notification says: one builder per event type, each turning an event of the stream
into the message a person away from the terminal reads (or into nothing, for the events of
that type no one is told about).

Adding a notification is one entry in :data:`BUILDERS` (and its name in
``config.models.NOTIFY_EVENTS``, the fixed list people choose from).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from shoemaker.clock import utc
from shoemaker.events import (
    BatchFinished,
    BudgetCrossed,
    Event,
    GenerationStateChanged,
    RateLimitCleared,
    RateLimited,
    Recovered,
    TaskStateChanged,
)
from shoemaker.model import GenerationState, TaskState

#: How urgent a message looks where the channel shows it (apprise's notify types).
Urgency = Literal["info", "success", "warning", "failure"]


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: which event it is (a name of ``NOTIFY_EVENTS``), its title and its
    body, which names the repository, generation and task, with the reason."""

    event: str
    title: str
    body: str
    urgency: Urgency = "info"


#: A builder: the event and the repository's name, to the message (None: nothing to tell).
Builder = Callable[[Any, str], Message | None]


def _where(repository: str, generation: str | None, task: str = "") -> str:
    parts = [f"repository {repository}", f"generation {generation or '-'}"]
    if task:
        parts.append(task)
    return ", ".join(parts)


#: Task states a person is told about: the event name, what the title says, how urgent.
_TASK_STATES: dict[TaskState, tuple[str, str, Urgency]] = {
    TaskState.FAILED: ("task_failed", "failed", "failure"),
    TaskState.BLOCKED: ("task_blocked", "is blocked", "warning"),
    TaskState.NEEDS_REVIEW: ("needs_review", "needs review", "warning"),
    TaskState.CONFLICT: ("conflict_parked", "conflicts: parked", "failure"),
}


def _task(event: TaskStateChanged, repository: str) -> Message | None:
    told = _TASK_STATES.get(event.new)
    if told is None or event.old == event.new:
        return None
    name, says, urgency = told
    task = f"task #{event.task_id} {event.title!r}"
    reason = event.reason or str(event.new)
    return Message(
        name,
        f"shoemaker: task #{event.task_id} {says}",
        f"{_where(repository, event.generation, task)}: {reason}",
        urgency,
    )


def _generation(event: GenerationStateChanged, repository: str) -> Message | None:
    told: tuple[str, str, Urgency]
    if event.new == GenerationState.PAUSED and event.old != GenerationState.PAUSED:
        told = ("generation_paused", "paused", "warning")
    elif event.new == GenerationState.STOPPED:
        told = ("generation_stopped", "stopped", "success")
    elif event.old == GenerationState.RUNNING and event.new == GenerationState.ACTIVE:
        told = ("generation_finished", "finished its run", "success")
    else:
        return None
    name, says, urgency = told
    reason = event.reason or str(event.new)
    return Message(
        name,
        f"shoemaker: generation {event.generation} {says}",
        f"{_where(repository, event.generation)}: {reason}",
        urgency,
    )


def _budget(event: BudgetCrossed, repository: str) -> Message:
    return Message(
        "budget_crossed",
        f"shoemaker: {event.scope} budget reached",
        f"{_where(repository, event.generation)}: {event.message}",
        "warning",
    )


def _recovered(event: Recovered, repository: str) -> Message:
    return Message(
        "run_crashed",
        "shoemaker: a run died; recovered",
        f"{_where(repository, event.generation)}: {event.summary}",
        "warning",
    )


def _rate_limited(event: RateLimited, repository: str) -> Message:
    task = f"task #{event.task_id}" if event.task_id is not None else ""
    if event.status == "rejected":
        says = f"paused by the provider's rate limit until {utc(event.resets_at)}"
        detail = "no agent starts before then; it resumes by itself"
        urgency: Urgency = "warning"
    else:
        says = f"slowed by the provider's rate limit until {utc(event.resets_at)}"
        detail = f"at most {event.parallel} agent(s) at once until then"
        urgency = "info"
    reason = f"{detail} ({event.reason})" if event.reason else detail
    return Message(
        "rate_limited",
        f"shoemaker: generation {event.generation} {says}",
        f"{_where(repository, event.generation, task)}: {reason}",
        urgency,
    )


def _rate_limit_cleared(event: RateLimitCleared, repository: str) -> Message:
    again = "runs again" if event.status == "rejected" else "runs at its full parallelism again"
    return Message(
        "rate_limited",
        f"shoemaker: generation {event.generation} {again}",
        f"{_where(repository, event.generation)}: the rate limit reset at {utc(event.resets_at)}",
        "success",
    )


_BATCH_URGENCY: dict[str, Urgency] = {"finished": "success", "skipped": "info", "failed": "failure"}


def _batch(event: BatchFinished, repository: str) -> Message | None:
    if not event.notify:
        return None  # the schedule did not ask (notify_on_complete: false)
    counts = f"{event.tasks_done} done, {event.tasks_failed} failed"
    urgency = _BATCH_URGENCY[event.outcome]
    return Message(
        "batch_finished",
        f"shoemaker: batch {event.schedule} {event.outcome}",
        f"{_where(repository, event.generation)}: {event.reason} ({counts})",
        urgency,
    )


#: Event type → its message builder. One entry per kind of event people can be told about.
BUILDERS: dict[type[Any], Builder] = {
    TaskStateChanged: _task,
    GenerationStateChanged: _generation,
    BudgetCrossed: _budget,
    Recovered: _recovered,
    BatchFinished: _batch,
    RateLimited: _rate_limited,
    RateLimitCleared: _rate_limit_cleared,
}


def message_for(event: Event, repository: str) -> Message | None:
    """The notification ``event`` makes, if any."""
    builder = BUILDERS.get(type(event))
    return None if builder is None else builder(event, repository)


def trial_message(repository: str) -> Message:
    """What ``shoemaker notify test`` sends."""
    return Message(
        "test",
        "shoemaker: test notification",
        f"repository {repository}: notifications reach this channel",
    )
