"""The dashboard's first frame, drawn before Textual and the engine are imported.

Importing them and opening the project takes about a second on a loaded machine; the splash
puts the program's name and what it is doing on the terminal's alternate screen at once. The
dashboard takes that screen over with its own first frame; if opening fails, the splash is
taken down before the error is printed.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from typing import TextIO

ENTER = "\x1b[?1049h\x1b[?25l"
"""The alternate screen, cursor hidden (as the dashboard's own driver sets them)."""
LEAVE = "\x1b[?25h\x1b[?1049l"


def _printable(text: str, width: int) -> str:
    # A directory name is data: no escape sequence of its own reaches the terminal.
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= width else clean[: max(width - 1, 0)] + "…"


def draw(stream: TextIO, detail: str) -> None:
    """Clear the (alternate) screen and centre the name and ``detail`` on it."""
    cols, rows = shutil.get_terminal_size()
    lines = [("\x1b[1m", "shoemaker"), ("\x1b[2m", _printable(detail, cols - 2))]
    top = max(rows // 2 - 1, 1)
    out = ["\x1b[H\x1b[2J"]
    for n, (style, text) in enumerate(lines):
        col = max((cols - len(text)) // 2, 0) + 1
        out.append(f"\x1b[{top + n};{col}H{style}{text}\x1b[0m")
    stream.write("".join(out))
    stream.flush()


@contextlib.contextmanager
def splash(stream: TextIO, detail: str) -> Iterator[Callable[[str], None]]:
    """Show the splash on a terminal (nothing otherwise) while the body opens the dashboard;
    yields a function that changes the line under the name. An error in the body takes the
    splash down, so its message lands on the normal screen."""
    shown = stream.isatty()
    if shown:
        stream.write(ENTER)
        draw(stream, detail)

    def say(text: str) -> None:
        if shown:
            draw(stream, text)

    try:
        yield say
    except BaseException:
        if shown:
            stream.write(LEAVE)
            stream.flush()
        raise
