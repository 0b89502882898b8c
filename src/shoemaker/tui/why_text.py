"""What the task screen says of an attempt: which agent ran it, and why it failed (a gate's
verdict with the tail of its output, a run's ending with its error and stderr)."""

from __future__ import annotations

from rich.text import Text

from shoemaker.engine.task_detail import GateRow, gate_verdict
from shoemaker.store import RunRecord


def gate_why(g: GateRow) -> Text:
    """A gate's verdict and the tail of its output."""
    head = gate_verdict(g.name, g.where, g.passed, g.exit_code, g.duration_s).removeprefix("» ")
    attempt = f"attempt {g.attempt} · " if g.attempt is not None else ""
    text = Text(f"{attempt}{head}\n", style="bold red" if not g.passed else "bold green")
    text.append(g.output_tail.strip() or "(no output)", style="" if g.output_tail else "dim")
    return text


def agent_of(r: RunRecord) -> str:
    """The agent kind a run ran as, and its model (configured, else as its stream named it)."""
    model = r.model if len(r.model) <= 24 else r.model[:23] + "…"
    return f"{r.agent_kind} {model}" if model else r.agent_kind


def run_why(r: RunRecord) -> Text:
    """How an agent run ended: its reason, its error result and its stderr."""
    if r.ended_at is None:
        return Text(f"attempt {r.attempt} · run {r.id} · still running", style="dim")
    state = "ok" if r.ok else r.reason or "not ok"
    text = Text(
        f"attempt {r.attempt} · run {r.id} · {state}\n", style="bold" if r.ok else "bold red"
    )
    if r.result_text and (r.is_error or not r.ok):
        text.append("result: ", style="bold")
        text.append(r.result_text.strip() + "\n")
    if r.stderr_tail.strip():
        text.append("stderr:\n", style="bold")
        text.append(r.stderr_tail.rstrip() + "\n")
    return text
