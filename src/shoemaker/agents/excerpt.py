"""Short excerpts of long texts that read only as much of each text as they show.

A tool result can be megabytes; its condensed line shows its first hundred characters. Each
function here works on a growing prefix of its text (:class:`Prefix`) and returns as soon as
the prefix settles the answer, which is then exactly what the whole text would give:
whitespace collapsed as ``" ".join(text.split())`` does it, lines as ``str.splitlines``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Prefix = Callable[[int], tuple[str, bool]]
"""Gives the first ``size`` characters of a text (fewer where they are not known for
certain), and whether that is the whole text."""

_FIRST_WINDOW = 256
_DIRECT = 2048


def excerpt(text: str, limit: int) -> str:
    """``text`` on one line, whitespace collapsed, at most ``limit`` characters (an ellipsis
    ends a cut one)."""
    if len(text) <= _DIRECT:  # short texts, the most of them, the straightforward way
        flat = " ".join(text.split())
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return excerpt_of(lambda size: (text[:size], size >= len(text)), limit)


def excerpt_of(prefix: Prefix, limit: int) -> str:
    """:func:`excerpt` of the text ``prefix`` gives."""
    size = max(_FIRST_WINDOW, 2 * limit)
    while True:
        part, whole = prefix(size)
        # The collapsed form of a prefix is a prefix of the collapsed whole.
        flat = " ".join(part.split())
        if len(flat) > limit:
            return flat[: limit - 1] + "…"
        if whole:
            return flat
        size *= 4


def first_line_excerpt(text: str, limit: int) -> str:
    """:func:`excerpt` of the first line of ``text`` stripped; empty if it is all blank."""
    if len(text) <= _DIRECT:
        return _first_line(text, limit)
    return first_line_excerpt_of(lambda size: (text[:size], size >= len(text)), limit)


def _first_line(text: str, limit: int) -> str:
    stripped = text.strip()
    # The first line ends at the first line break: at the first "\n", or before it.
    return excerpt(stripped.partition("\n")[0].splitlines()[0], limit) if stripped else ""


def first_line_excerpt_of(prefix: Prefix, limit: int) -> str:
    """:func:`first_line_excerpt` of the text ``prefix`` gives."""
    size = max(_FIRST_WINDOW, 2 * limit)
    while True:
        part, whole = prefix(size)
        if whole:
            return _first_line(part, limit)
        start = part.lstrip()
        if start:
            # ``start`` begins where the stripped whole begins, so its first line begins the
            # whole's first line; trailing blanks the whole loses to strip() collapse anyway.
            lines = start.splitlines()
            flat = " ".join(lines[0].split())
            if len(flat) > limit:
                return flat[: limit - 1] + "…"
            if len(lines) > 1:
                return flat
        size *= 4


def replaced_prefix(prefix: Prefix, old: str) -> Prefix:
    """``prefix`` of the text with every ``old`` removed, as ``text.replace(old, "")``."""

    def cut(size: int) -> tuple[str, bool]:
        part, whole = prefix(size)
        done = part.replace(old, "")
        if whole:
            return done, True
        # An ``old`` may straddle the end of the prefix: its start is not known yet.
        return done[: max(0, len(done) - len(old) + 1)], False

    return cut


def joined_prefix(pieces: list[Any]) -> Prefix:
    """``prefix`` of ``" ".join(pieces)`` (each piece a string), copying only that prefix."""

    def cut(size: int) -> tuple[str, bool]:
        taken: list[str] = []
        length = 0
        for piece in pieces:
            if taken:
                taken.append(" ")
                length += 1
            if length + len(piece) > size:
                taken.append(piece[: max(0, size - length)])
                return "".join(taken), False
            taken.append(piece)
            length += len(piece)
        return "".join(taken), True

    return cut
