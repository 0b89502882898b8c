"""The dashboard's theme, kept between sessions in the user's config directory, and the colours
the task screen's diff takes from it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from textual.theme import Theme

#: A theme name is one short line; anything longer is not a theme file.
MAX_BYTES = 200


def theme_path() -> Path:
    """``$XDG_CONFIG_HOME/shoemaker/theme`` (default ``~/.config/shoemaker/theme``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "shoemaker" / "theme"


class ThemeFile:
    """The name of the theme chosen last (ctrl+p → Change theme), one line in a file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or theme_path()

    def load(self, available: Collection[str]) -> tuple[str | None, str]:
        """The saved theme, or None; and what is wrong with the file ("" when nothing is)."""
        try:
            if self.path.is_dir():
                return None, f"{self.path} is a directory; remove it to keep a theme"
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return None, ""
        except OSError as exc:
            return None, f"{self.path}: cannot be read ({exc.strerror}); the default theme is used"
        try:
            name = raw.decode().strip()
        except UnicodeDecodeError:
            name = ""
        if len(raw) > MAX_BYTES or not name or not name.isprintable():
            return None, f"{self.path} does not hold a theme name; delete it or pick a theme"
        if name not in available:
            return None, (
                f"{self.path}: no theme named {name[:40]!r}; pick one with ctrl+p → Change theme"
            )
        return name, ""

    def save(self, name: str) -> str:
        """Keep ``name`` for the next session (written whole or not at all); what went wrong,
        or ""."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".theme-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(name + "\n")
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            return f"{self.path}: the theme cannot be kept ({exc.strerror or exc})"
        return ""


@dataclass(frozen=True, slots=True)
class DiffColours:
    """The styles of a diff's lines: added, removed, hunk headers, file headers."""

    added: str = "green"
    removed: str = "red"
    hunk: str = "cyan"
    header: str = "bold"


def diff_colours(theme: Theme) -> DiffColours:
    """The diff's colours from ``theme``: what it calls success, error, accent and primary."""
    return DiffColours(
        added=theme.success or "green",
        removed=theme.error or "red",
        hunk=theme.accent or theme.secondary or "cyan",
        header=f"bold {theme.primary}",
    )
