"""The metrics panel: spend, tasks, time and an ETA, each on a row of its own.

Rows never wrap and never move: a long row is cut with an ellipsis, and the budgets and what
running agents spent so far share one row, so a configured budget cannot push the sparklines
(or anything else) out of the panel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from shoemaker.engine.budgets import BudgetLine
from shoemaker.engine.views import Snapshot
from shoemaker.model import ACTIVE_TASK_STATES, Usage
from shoemaker.tui.guard import Guarded
from shoemaker.tui.widgets import duration, tokens

#: Bars of a sparkline, from the smallest non-zero value to the largest.
BARS = "▁▂▃▄▅▆▇█"
#: Names of the metrics rows, top to bottom.
ROWS = ("cost", "tokens", "tasks", "time", "extra", "sparks")
#: A rate over less active time than this says more about start-up than about spending.
MIN_RATE_S = 60.0


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as bars scaled from zero to the largest: a zero is a blank,
    no values (or only zeros) is all blank, never a row of bars that looks like data."""
    values = list(values)[-width:] if width > 0 else []
    top = max(values, default=0.0)
    if top <= 0:
        return " " * max(0, width)
    bars = "".join(
        " " if v <= 0 else BARS[min(len(BARS) - 1, math.ceil(v / top * len(BARS)) - 1)]
        for v in values
    )
    return bars.ljust(width)


def _budget(line: BudgetLine) -> Text:
    """``gen $0.28/$5.00`` in green, red once crossed."""

    def fmt(value: float) -> str:
        if line.metric == "usd":
            return f"${value:.2f}"
        if line.metric == "wall_sec":
            return duration(value)
        return tokens(value)

    scope = "gen" if line.scope == "generation" else line.scope
    unit = " tok" if line.metric == "tokens" else ""
    return Text(
        f"{scope} {fmt(line.spent)}/{fmt(line.limit)}{unit}",
        style="red" if line.crossed else "green",
    )


def _joined(parts: Sequence[Text | str]) -> Text:
    return Text(" · ").join(Text(p) if isinstance(p, str) else p for p in parts)


class MetricsPanel(Guarded, Vertical):
    """Tokens, cost, burn rate, tasks, LOC, time and ETA, with per-task sparklines."""

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.clock = clock
        self.parallel = 1
        #: What notifications were sent, as one line (None: no channel is configured).
        self.notifications: Callable[[], str] | None = None
        self._snap = Snapshot()
        # Held, not queried: the once-a-second tick may fire while the app tears its
        # screens down, and a query then finds nothing.
        self.rows = {name: Static(id=f"metrics-{name}", classes="metrics-row") for name in ROWS}
        self._shown: dict[str, Text] = {}
        """What each row shows: a row whose text did not change is not redrawn."""

    def compose(self) -> ComposeResult:
        yield from self.rows.values()

    def on_mount(self) -> None:
        self.border_title = "Metrics"

    def on_resize(self) -> None:
        self.show(self._snap)  # the sparklines take the width there is

    def text(self) -> str:
        """Every row as plain text, top to bottom (what tests and the benchmark read)."""
        return "\n".join(str(row.render()) for row in self.rows.values())

    def show(self, snap: Snapshot) -> None:
        self._snap = snap
        if not self.is_attached or not all(r.is_attached for r in self.rows.values()):
            return  # not composed yet, or being torn down
        now = self.clock()
        for name, content in self.lines(snap, now).items():
            content.no_wrap, content.overflow = True, "ellipsis"
            if self._shown.get(name) != content:
                self._shown[name] = content
                # A row is one line of the panel's fixed width whatever it says: redrawn
                # alone, without laying the dashboard out again (several times a second).
                self.rows[name].update(content, layout=False)

    def lines(self, snap: Snapshot, now: float) -> dict[str, Text]:
        t = snap.totals
        gen = snap.current
        elapsed = 0.0
        if gen is not None:
            end = gen.stopped_at if gen.stopped_at else now
            elapsed = max(0.0, end - gen.created_at)
        active = snap.active_s(now)
        # Spending happens while agents work: the rate is over that time, not idle hours.
        rate = f"${t.cost_usd / (active / 3600):.2f}/h" if active >= MIN_RATE_S else "—/h"
        u = t.usage
        cost = Text.assemble(("cost ", "bold"), f"${t.cost_usd:.2f} · {rate} · ", ("LOC ", "bold"))
        cost.append(f"+{t.insertions}", "green")
        cost.append(" ")
        cost.append(f"−{t.deletions}", "red")
        usage = Text.assemble(
            ("in ", "bold"),
            tokens(u.input_tokens),
            " · ",
            ("out ", "bold"),
            tokens(u.output_tokens),
            " · ",
            ("cache read ", "bold"),
            tokens(u.cache_read_input_tokens),
            " · ",
            ("created ", "bold"),
            tokens(u.cache_creation_input_tokens),
        )
        tasks = Text.assemble(
            (f"{t.done}/{t.total} done", "green"),
            ", ",
            (f"{t.failed} failed", "red" if t.failed else ""),
            ", ",
            (f"{t.blocked} blocked", "yellow" if t.blocked else ""),
        )
        if t.conflict:
            tasks.append(", ")
            tasks.append(f"{t.conflict} conflict", "red")
        clock = Text.assemble(
            ("time ", "bold"),
            duration(elapsed),
            " · ",
            ("active ", "bold"),
            duration(active),
        )
        eta = snap.eta_s(now, self.parallel)
        if eta is not None:  # nothing will run: no ETA at all
            clock.append(" · ")
            clock.append("ETA ", "bold")
            clock.append("—" if math.isnan(eta) else duration(eta))
        return {
            "cost": cost,
            "tokens": usage,
            "tasks": tasks,
            "time": clock,
            "extra": self._extra(snap),
            "sparks": self._sparks(snap),
        }

    def _extra(self, snap: Snapshot) -> Text:
        """Spend against each budget, then what running agents spent so far (their queue rows
        show it too, where a narrow panel cuts this row), then the notifications sent."""
        parts: list[Text | str] = []
        if snap.budgets:
            # Crossed budgets first: what the width cuts off is never the one that stopped work.
            ordered = sorted(snap.budgets, key=lambda b: not b.crossed)
            parts.append(Text.assemble(("budget ", "bold"), _joined([_budget(b) for b in ordered])))
        running = [r.so_far for r in snap.tasks if r.so_far and r.state in ACTIVE_TASK_STATES]
        if running:
            spent = sum((s.usage for s in running), Usage())
            cost = sum(s.cost_usd for s in running)
            parts.append(
                Text.assemble(
                    ("running ", "bold"),
                    f"{tokens(spent.input_tokens + spent.output_tokens)} tok ~${cost:.3f} so far",
                )
            )
        notified = self.notifications() if self.notifications is not None else ""
        if notified:
            parts.append(Text.assemble(("notify ", "bold"), notified))
        return _joined(parts)

    def _sparks(self, snap: Snapshot) -> Text:
        width = max(0, (self.content_size.width - len("$/task  s/task ")) // 2)
        row = Text.assemble(
            ("$/task ", "dim"),
            (sparkline(snap.cost_per_task, width), "green"),
            (" s/task ", "dim"),
            (sparkline(snap.duration_per_task, width), "cyan"),
        )
        return row
