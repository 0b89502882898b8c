"""The footer: every key of the screen, with help and quit always in view.

Textual's footer lists keys from the left and cuts what does not fit; at 80 columns that cut
help and quit, the two keys a person looks for first. Here they (and the command palette's
key) are pinned to the right end, and the other keys fill the room left of them.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: Actions whose keys stay in view whatever the width.
PINNED = ("help", "quit")


class PinnedFooter(Footer):
    """A footer whose help and quit keys never scroll out of view."""

    DEFAULT_CSS = """
    PinnedFooter HorizontalGroup.pinned {
        dock: right;
        width: auto;
        border-left: vkey $foreground 20%;
    }
    PinnedFooter HorizontalGroup.pinned FooterKey.-command-palette {
        dock: none;
        border-left: none;
    }
    """

    def compose(self) -> ComposeResult:
        pinned: list[FooterKey] = []
        palette: list[Widget] = []
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.has_class("-command-palette"):
                palette.append(widget)
            elif isinstance(widget, FooterKey) and widget.action in PINNED:
                pinned.append(widget)
            else:
                yield widget
        if pinned or palette:
            pinned.sort(key=lambda key: PINNED.index(key.action))
            with HorizontalGroup(classes="pinned"):
                yield from pinned
                yield from palette
