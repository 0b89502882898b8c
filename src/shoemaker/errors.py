"""The one error root, and how an error reaches a person.

Every error shoemaker expects is a :class:`ShoemakerError` whose message is one line: what is
wrong, which file, field or task, and what to do. Its kind decides the exit code: bad input
(a file, an argument, a refused verb; nothing was changed) exits 2, failed work exits 1. Each
front door (``cli.main``, the dashboard) catches the root once. Anything else is a bug:
``cli.main`` writes its traceback to a log file (``crashlog.py``) and prints one line.
"""

from __future__ import annotations

import reprlib

# Not typing's: the rehearsal agent imports this module and starts without typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: A budget paused the generation and ended the run.
EXIT_BUDGET = 3

#: The longest value an error message echoes back (a YAML alias bomb, a huge proposal).
ECHO_LIMIT = 80


class ShoemakerError(Exception):
    """An error shoemaker expects and explains; ``exit_code`` comes from its kind."""

    exit_code: ClassVar[int] = EXIT_FAILED


class BadInput(ShoemakerError):
    """The input cannot be used (a file, a setting, an argument, a refused verb); nothing
    was changed. Exit code 2."""

    exit_code: ClassVar[int] = EXIT_BAD_INPUT


class Failed(ShoemakerError):
    """The work failed (an agent, a gate, a merge, measure, git). Exit code 1."""

    exit_code: ClassVar[int] = EXIT_FAILED


class GenerationError(BadInput):
    """A lifecycle verb refused (start, run, stop, reset, switch, recovery before a run);
    nothing was changed. The message says why and what to do."""


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = ECHO_LIMIT
_REPR.maxother = ECHO_LIMIT
for _name in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque"):
    setattr(_REPR, _name, 6)


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def echo(value: Any, limit: int = ECHO_LIMIT) -> str:
    """A short repr of a value taken from input, safe for huge or self-referencing ones."""
    try:
        return clip(_REPR.repr(value), limit)
    except RecursionError:
        return f"<a {type(value).__name__} nested too deeply>"


#: The longest line a front door prints for an error (an agent's reason may be long).
LINE_LIMIT = 2000


def one_line(exc: BaseException) -> str:
    """An error's message as the one line a front door prints."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return clip(text, LINE_LIMIT) if text else type(exc).__name__
