"""Tabs whose underline jumps to the active tab instead of sliding there.

Textual slides the underline of its ``Tabs`` for 0.3 s after each switch: a dozen redraws
of the screen on top of the switch's own layout, a quarter of the CPU of switching tabs on
the task screen. The app's ``animation_level`` would stop it, and every other animation with
it (the why pane's scroll to the end of a failed gate's output among them); this stops only
the underline's.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Tabs


def still_underline(tabs: Tabs) -> None:
    """Make the underline of ``tabs`` move at once; call it once ``tabs`` is mounted."""
    # Textual's underline is not public (widgets._tabs.Underline): found by its name.
    underline = tabs.query_one("Underline")

    def jump(attribute: str, value: Any, *args: Any, **kwargs: Any) -> None:
        setattr(underline, attribute, value)

    # The tabs ask the underline to animate its ends; it takes them as they are instead.
    setattr(underline, "animate", jump)  # noqa: B010 - an instance's method, on purpose
