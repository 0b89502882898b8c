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


def count_lines(data: bytes) -> int:
    """Non-blank lines of one file's contents; 0 for a binary file (it is skipped)."""
    if b"\0" in data[:8000]:
        return 0
    return sum(1 for line in data.splitlines() if line.strip())


def sum_loc(lines: Mapping[str, int], test_globs: Sequence[str]) -> Loc:
    """The count over files already counted (path → non-blank lines): a path matching
    ``test_globs`` is test code, anything else production."""
    production = test = 0
    for path, count in lines.items():
        if matches_any(path, test_globs):
            test += count
        else:
            production += count
    return Loc(production, test)


def count_loc(
    files: Mapping[str, bytes], source_globs: Sequence[str], test_globs: Sequence[str]
) -> Loc:
    """The count over ``files`` (path → contents): a path matching ``test_globs`` is test
    code, anything else production; binary files are skipped."""
    return sum_loc({path: count_lines(data) for path, data in files.items()}, test_globs)
