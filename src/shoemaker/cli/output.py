"""Printing for people: the console, escaping data for Rich, states and the estimate table."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from shoemaker.model import TaskState


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _esc(text: object) -> str:
    """``text`` as data for Rich: a title like ``Fix [/] and [bold]`` is printed, not parsed."""
    from rich.markup import escape

    return escape(str(text))


def _state_text(state: str, reason: str, rate_limited_until: float | None = None) -> str:
    """A generation's state for people; a paused one says why (a budget, a pause, a stop), a
    rate-limited one until when."""
    if state == "rate_limited" and rate_limited_until is not None:
        from shoemaker.clock import utc

        return f"rate_limited until {utc(rate_limited_until)}"
    if state != "paused" or not reason or reason == "paused":
        return state
    return reason if reason.startswith("paused") else f"paused: {reason}"


def _task_state_markup(state: TaskState) -> str:
    """A task's state as Rich markup in the colour the story and the dashboard give it."""
    from shoemaker.palette import STATE_STYLE

    return f"[{STATE_STYLE[state]}]{state.value}[/]"


def _print_estimate(estimate: Any, as_json: bool) -> None:
    from rich.table import Table

    if as_json:
        print(
            json.dumps(
                {
                    "tasks": [
                        {
                            "id": t.task_id,
                            "title": t.title,
                            "input_tokens": t.usage.input_tokens,
                            "output_tokens": t.usage.output_tokens,
                            "usd": round(t.usd, 6),
                            "basis": t.basis,
                        }
                        for t in estimate.tasks
                    ],
                    "total_tokens": estimate.total_tokens,
                    "total_usd": round(estimate.total_usd, 6),
                    "model": estimate.model,
                    "assumptions": estimate.assumptions,
                },
                indent=2,
            )
        )
        return
    table = Table("id", "task", "tokens in", "tokens out", "cost", "from", title="estimate")
    for t in estimate.tasks:
        table.add_row(
            str(t.task_id),
            _esc(t.title),
            f"{t.usage.input_tokens:,}",
            f"{t.usage.output_tokens:,}",
            f"${t.usd:.4f}",
            t.basis,
        )
    table.add_section()
    table.add_row(
        "", "total", f"{estimate.total_tokens:,} tokens", "", f"${estimate.total_usd:.4f}", ""
    )
    console = _console()
    console.print(table)
    for line in estimate.assumptions:
        console.print(f"[dim]assumes {_esc(line)}[/]")
