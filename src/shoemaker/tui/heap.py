"""Keeps the full garbage collections of a running dashboard short.

A full collection walks every tracked object. Once the dashboard is up, most of them are
there for good — modules, classes, functions, Textual's widgets and styles, about 100,000
objects — and walking them took 40–90 ms on the development machine: the slowest key
presses of the task screen were those that ran into one (every twenty presses or so, as
the screens' renders allocate). ``freeze_heap`` moves what is alive once the dashboard is
drawn into the interpreter's permanent generation, which collections skip; what is made
later is collected as before. ``thaw_heap`` gives it back when the dashboard ends, so that
a process that opens several dashboards (the tests) collects what each one left.
"""

from __future__ import annotations

import gc

_holders = 0


def freeze_heap() -> None:
    """Collect once, then leave today's survivors out of later collections."""
    global _holders
    _holders += 1
    gc.collect()
    gc.freeze()


def thaw_heap() -> None:
    """Undo ``freeze_heap`` once the last dashboard that froze has ended."""
    global _holders
    if _holders == 0:
        return
    _holders -= 1
    if _holders == 0:
        gc.unfreeze()
