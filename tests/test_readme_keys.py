"""The README's key tables are the dashboard's keys: every key of the main screen and the task
screen is there, and no key is there that the screen does not have."""

from __future__ import annotations

import re
from collections.abc import Iterable

from textual.binding import Binding

from conftest import REPO_ROOT
from shoemaker.tui.app import ShoemakerApp
from shoemaker.tui.task_screen import TaskScreen


def _keys(bindings: Iterable[object]) -> set[str]:
    keys = set()
    for b in bindings:
        assert isinstance(b, Binding)
        keys.add(b.key_display or b.key)
    return keys


def _dashboard_section() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index("## The dashboard")
    return text[start : text.index("\n## ", start + 1)]


def test_the_main_screen_table_names_every_key() -> None:
    rows = [line for line in _dashboard_section().splitlines() if line.startswith("| `")]
    documented = {k for row in rows for k in re.findall(r"`([^`]+)`", row.split("|")[1])}
    # ctrl+p is Textual's command palette, which the app fills with its verbs.
    assert documented == _keys(ShoemakerApp.BINDINGS) | {"ctrl+p"}


def test_the_task_screen_sentence_names_every_key() -> None:
    section = _dashboard_section()
    sentence = section[section.index("On the task screen:") :].split(".")[0]
    assert set(re.findall(r"`([^`]+)`", sentence)) == _keys(TaskScreen.BINDINGS)
