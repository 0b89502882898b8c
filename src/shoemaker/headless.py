"""Headless presentation: the engine's events as a Rich story, or as NDJSON.

Both are plain event listeners, so ``shoemaker run`` prints the same story the dashboard shows.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shoemaker.events import (
    AgentFinished,
    AgentOutput,
    AgentStarted,
    BudgetCrossed,
    CycleFinished,
    CycleStarted,
    Event,
    GateResult,
    GenerationStateChanged,
    MeasureFinished,
    MergeResult,
    MetricsRecorded,
    Notice,
    RateLimitCleared,
    RateLimited,
    Recovered,
    TaskStateChanged,
)
from shoemaker.palette import STATE_STYLE


class NdjsonPrinter:
    """Prints each event as one JSON object per line (``shoemaker run --events ndjson``)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, event: Event) -> None:
        # The bytes the store wrote to its log, when the event came through it; agent output
        # with its lines condensed here, as they are printed.
        data = event.ndjson_bytes() if isinstance(event, AgentOutput) else event.json_bytes()
        self.out.write(data.decode("utf-8") + "\n")
        self.out.flush()


class StoryPrinter:
    """Prints a condensed, coloured story of the events for a person at a terminal."""

    def __init__(self, console: Console, show_agent: bool = True) -> None:
        self.console = console
        self.show_agent = show_agent
        self.titles: dict[int, str] = {}

    def _task(self, task_id: int | None) -> str:
        if task_id is None:
            return "[bold]measure[/]"
        return f"[bold]#{task_id}[/]"

    def __call__(self, event: Event) -> None:
        c = self.console
        match event:
            case GenerationStateChanged():
                c.print(
                    f"[bold blue]generation {escape(event.generation or '')}[/]: "
                    f"{event.old or '—'} → [bold]{event.new}[/] {escape(event.reason)}"
                )
            case CycleStarted():
                c.rule(f"cycle {event.cycle}")
            case CycleFinished():
                c.print(
                    f"[blue]cycle {event.cycle} finished[/]: {event.merged} merged, "
                    f"{event.failed} failed, {event.loc_delta} lines changed"
                )
            case MeasureFinished():
                c.print(
                    f"[blue]measure[/] added {len(event.task_ids)} task(s) from "
                    f"{escape(event.source)}"
                )
            case TaskStateChanged():
                self.titles[event.task_id] = event.title
                style = STATE_STYLE[event.new]
                deps = (
                    f" after {', '.join(f'#{d}' for d in event.depends_on)}"
                    if (event.old is None and event.depends_on)
                    else ""
                )
                reason = f" [dim]({escape(event.reason)})[/]" if event.reason else ""
                c.print(
                    f"{self._task(event.task_id)} [{style}]{event.new}[/] "
                    f"{escape(event.title)}{deps}{reason}"
                )
            case AgentStarted():
                c.print(
                    f"{self._task(event.task_id)} [dim]agent started ({event.phase}, "
                    f"attempt {event.attempt}"
                    f"{f', on worker {escape(event.worker)}' if event.worker else ''})[/]"
                )
            case AgentOutput():
                if self.show_agent:
                    task = self._task(event.task_id)
                    for text in event.texts:
                        c.print(
                            f"{task}   [dim]{escape(text)}[/]", overflow="ellipsis", no_wrap=True
                        )
            case AgentFinished():
                status = "[green]ok[/]" if event.ok else f"[red]{escape(event.reason)}[/]"
                c.print(
                    f"{self._task(event.task_id)} agent finished: {status} "
                    f"[dim]{event.usage.input_tokens + event.usage.output_tokens} tokens, "
                    f"{'~' if event.cost_estimated else ''}${event.cost_usd:.4f}, "
                    f"{event.wall_s:.1f}s[/]"
                )
            case GateResult():
                mark = "[green]passed[/]" if event.passed else f"[red]{escape(event.reason)}[/]"
                c.print(f"{self._task(event.task_id)} gate {escape(event.name)}: {mark}")
            case MergeResult():
                if event.merged:
                    c.print(f"{self._task(event.task_id)} [green]merged[/] {event.commit[:10]}")
                else:
                    c.print(
                        f"{self._task(event.task_id)} [red]not merged[/]: {escape(event.reason)}"
                    )
            case MetricsRecorded():
                c.print(
                    f"{self._task(event.task_id)} [dim]+{event.insertions} −{event.deletions} "
                    f"in {event.files_changed} file(s)[/]"
                )
            case BudgetCrossed():
                c.print(f"[bold red]budget[/]: {escape(event.message)}")
            case RateLimited():
                c.print(f"[bold yellow]rate limit {event.status}[/]: {escape(event.reason)}")
            case RateLimitCleared():
                c.print(f"[yellow]rate limit {event.status} reset[/]: agents start again")
            case Recovered():
                c.print(f"[bold yellow]recovered[/]: {escape(event.summary)}")
            case Notice():
                style = {"warning": "yellow", "error": "bold red"}.get(event.level, "dim")
                c.print(f"[{style}]{escape(event.message)}[/]")


def summary_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(escape(key), escape(value))
    return table
