"""How epics are named: the file names people give them (``epic-NN-slug.md``,
``NN-epic-slug.md``, ``epic-<prefix>-NN-slug.md``, ``epic-P.E-slug.md``) and the short ids
that name them in ``depends_on`` and README tables (``E04``, ``CLI02``, ``E2.1``, a bare
number meaning the epic's own prefix)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_NAMES = (
    # epic-P.E-slug.md: a phase and an epic number.
    re.compile(r"^epic-(?P<phase>\d+)\.(?P<num>\d+)(?:-.*)?\.md$", re.IGNORECASE),
    # epic-<prefix>-NN-slug.md
    re.compile(r"^epic-(?P<prefix>[a-z]+)-(?P<num>\d+)(?:-.*)?\.md$", re.IGNORECASE),
    # epic-NN-slug.md
    re.compile(r"^epic-(?P<num>\d+)(?:-.*)?\.md$", re.IGNORECASE),
    # NN-epic-slug.md
    re.compile(r"^(?P<num>\d+)-epic(?:-.*)?\.md$", re.IGNORECASE),
)
_SHORT_ID = re.compile(r"^(?P<prefix>[A-Za-z]+)?(?P<num>\d+(?:\.\d+)?)$")
FULL_ID = re.compile(r"^(?P<module>[^/\s]+)/(?P<short>[A-Za-z]*\d+(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class EpicName:
    """What an epic's file name (or front matter) says: its prefix and number."""

    prefix: str
    number: tuple[int, ...]

    @property
    def short(self) -> str:
        if len(self.number) == 2:
            return f"{self.prefix}{self.number[0]}.{self.number[1]}"
        return f"{self.prefix}{self.number[0]:02d}"


def epic_name(file_name: str) -> EpicName | None:
    for pattern in _NAMES:
        m = pattern.match(file_name)
        if m:
            groups = m.groupdict()
            if groups.get("phase"):
                return EpicName("E", (int(groups["phase"]), int(m["num"])))
            return EpicName((groups.get("prefix") or "E").upper(), (int(m["num"]),))
    return None


def name_of(text: str, own_prefix: str) -> EpicName | None:
    """``E4``, ``cli2``, ``2.1``, ``4`` (a bare number: the epic's own prefix) → its name."""
    m = _SHORT_ID.match(text.strip())
    if not m:
        return None
    return EpicName((m["prefix"] or own_prefix).upper(), tuple(int(x) for x in m["num"].split(".")))


def short_id(text: str, own_prefix: str) -> str | None:
    """The canonical short id (``E04``, ``CLI02``, ``E2.01``) of what :func:`name_of` reads."""
    name = name_of(text, own_prefix)
    return name.short if name else None


def is_epic_file(path: Path) -> bool:
    return path.suffix.lower() == ".md" and epic_name(path.name) is not None
