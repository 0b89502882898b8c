"""The footer: every key of the screen, with help and quit always in view.

Textual's footer lists keys from the left and cuts what does not fit; at 80 columns that cut
help and quit, the two keys a person looks for first. Here they (and the command palette's
key) are pinned to the right end, and the other keys fill the room left of them: as many as
fit whole, in their order (a key cut in half reads as another key).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.screen import Screen
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

    _shown: tuple[tuple[str, str, str, bool], ...] | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        # The app refreshes its bindings with every snapshot; a footer rebuilt each time
        # flickers, so it is rebuilt only when a key appears or goes. A key that is only
        # enabled or disabled is changed in place: a rebuild lays the whole screen out again,
        # which under load cost a moving cursor (keys enabled by the row under it) tens of ms.
        shown = tuple(
            (binding.key, binding.action, binding.description, enabled)
            for _, binding, enabled, _ in screen.active_bindings.values()
            if binding.show
        )
        if shown == self._shown:
            return
        current = self.is_attached and screen is self.screen and screen.app.app_focus
        if current and self._shown is not None and _keys(shown) == _keys(self._shown):
            enabled: dict[str, bool] = {}
            for _, action, _, on in shown:
                enabled.setdefault(action, bool(on))  # a key shows its action's first binding
            for key in self.query(FooterKey):
                if key.action in enabled and key.disabled == enabled[key.action]:
                    key.disabled = not enabled[key.action]
            self._shown = shown
            return
        if current:
            self._shown = shown
        super().bindings_changed(screen)

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

    def _unpinned(self) -> list[FooterKey]:
        return [key for key in self.query_children(FooterKey) if key.action not in PINNED]

    async def recompose(self) -> None:
        await super().recompose()
        self.call_after_refresh(self._fit)

    def on_resize(self) -> None:
        for key in self._unpinned():
            key.display = True
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        groups = self.query_children(".pinned")
        edge = groups.first().region.x if groups else self.region.right
        cut = False
        for key in self._unpinned():
            cut = cut or key.region.right > edge
            key.display = not cut


def _keys(shown: tuple[tuple[str, str, str, bool], ...]) -> tuple[tuple[str, str, str], ...]:
    return tuple((key, action, description) for key, action, description, _ in shown)
