"""Counting lines of code: non-blank lines, split into production and test code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shoemaker.globs import matches_any


@dataclass(frozen=True, slots=True)
class Loc:
    """Non-blank lines of code, split into production and test code."""

    production: int
    test: int


def _count_nonblank(data: bytes) -> int:
    return sum(1 for line in data.splitlines() if line.strip())


def count_loc(
    files: Mapping[str, bytes], source_globs: Sequence[str], test_globs: Sequence[str]
) -> Loc:
    """The count over ``files`` (path → contents): a path matching ``test_globs`` is test
    code, anything else production; binary files are skipped."""
    production = test = 0
    for path, data in files.items():
        if b"\0" in data[:8000]:
            continue  # binary
        lines = _count_nonblank(data)
        if matches_any(path, test_globs):
            test += lines
        else:
            production += lines
    return Loc(production, test)
