"""The footer: every key of the screen, with help and quit always in view.

Textual's footer lists keys from the left and cuts what does not fit; at 80 columns that cut
help and quit, the two keys a person looks for first. Here they (and the command palette's
key) are pinned to the right end, and the other keys fill the room left of them: as many as
fit whole, in their order (a key cut in half reads as another key).

The other keys are drawn as one line by one widget of a fixed size (`FooterKeys`), not a
widget each: in Textual a widget that is added, removed, shown or hidden lays the whole
screen out again, and keys appear and go as the cursor, the focus and the run's state change.
Changing, adding or removing one of these keys only repaints that line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: Actions whose keys stay in view whatever the width.
PINNED = ("help", "quit")


@dataclass(frozen=True)
class Key:
    """One key as the footer shows it."""

    key: str
    display: str
    description: str
    action: str
    enabled: bool
    tooltip: str


class FooterKeys(Widget):
    """The footer's keys left of the pinned ones, drawn as one line: as many as fit whole, in
    their order, each looking and acting as Textual's `FooterKey` in a footer that is not
    compact (a click presses it, a disabled one is dim and rings the bell, the mouse over one
    shows its tooltip). Binding groups are not drawn as groups: no key here has one."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {
        "footer-keys--key",
        "footer-keys--description",
        "footer-keys--hover",
    }
    DEFAULT_CSS = """
    FooterKeys {
        width: 1fr;
        height: 1;
        text-wrap: nowrap;
        text-overflow: clip;
        .footer-keys--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .footer-keys--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .footer-keys--hover {
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
    }
    """

    def __init__(self, keys: Sequence[Key] = ()) -> None:
        super().__init__()
        self.keys: tuple[Key, ...] = tuple(keys)
        self._hover: int | None = None
        #: (first column, column after, key) of each key drawn, for the mouse.
        self._spans: list[tuple[int, int, Key]] = []

    def show(self, keys: Sequence[Key]) -> None:
        """Show these keys: a repaint of this line, no layout."""
        keys = tuple(keys)
        if keys != self.keys:
            self.keys = keys
            self._hover = None  # the key under the mouse may be another now
            self.tooltip = None
            self.refresh()

    @property
    def drawn(self) -> list[Key]:
        """The keys on the line at its current width."""
        self._spans = self._fit(self.size.width)
        return [key for _, _, key in self._spans]

    def _fit(self, width: int) -> list[tuple[int, int, Key]]:
        spans: list[tuple[int, int, Key]] = []
        x = 0
        for key in self.keys:
            end = x + _width(key)
            if end > width:
                break
            spans.append((x, end, key))
            x = end
        return spans

    def render(self) -> Text:
        key_style = self.get_component_rich_style("footer-keys--key")
        description_style = self.get_component_rich_style("footer-keys--description")
        base = self.rich_style
        line = Text(no_wrap=True, overflow="crop")
        self._spans = self._fit(self.size.width)
        for index, (_, _, key) in enumerate(self._spans):
            # As `FooterKey.render`: the key and its description over the key's own style.
            style = base
            if index == self._hover:
                style = self.get_component_rich_style("footer-keys--hover")
            if not key.enabled:
                style += Style(dim=True)
            if key.description:
                part = Text.assemble(
                    (f" {key.display} ", key_style), (f"{key.description} ", description_style)
                )
            else:
                part = Text(key.display, key_style)
            part.stylize_before(style)
            line.append_text(part)
        return line

    def _at(self, x: int) -> int | None:
        for index, (start, end, _) in enumerate(self._spans):
            if start <= x < end:
                return index
        return None

    def on_mouse_move(self, event: events.MouseMove) -> None:
        hover = self._at(event.x)
        if hover != self._hover:
            self._hover = hover
            self.tooltip = None if hover is None else self._spans[hover][2].tooltip or None
            self.refresh()

    def on_leave(self, event: events.Leave) -> None:
        if self._hover is not None:
            self._hover = None
            self.tooltip = None
            self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        index = self._at(event.x)
        if index is None:
            return
        key = self._spans[index][2]
        if key.enabled:
            self.app.simulate_key(key.key)
        else:
            self.app.bell()


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

    #: The pinned keys composed, and every key last shown (the palette's key last).
    _pinned: tuple[Key, ...] | None = None
    _shown: tuple[tuple[Key, ...], tuple[Key, ...]] | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        # The app refreshes its bindings with every snapshot and cursor move. Only the pinned
        # keys are widgets of their own, and they do not change once composed but for being
        # enabled; the others are one line that is repainted, so keys appearing and going lay
        # nothing out.
        shown = self._keys(screen)
        if shown == self._shown:
            return
        others, pinned = shown
        current = self.is_attached and screen is self.screen and screen.app.app_focus
        if current and self._pinned is not None and _same(pinned, self._pinned):
            enabled = {key.action: key.enabled for key in pinned}
            for widget in self.query(FooterKey):
                on = enabled.get(widget.action)
                if on is not None and widget.disabled == on:
                    widget.disabled = not on
            # Before the footer is (re)composed there is no line yet: compose draws these.
            for line in self.query_children(FooterKeys):
                line.show(others)
            self._shown = shown
            return
        if current:
            self._shown = shown
            self._pinned = pinned
        super().bindings_changed(screen)

    def _keys(self, screen: Screen[object]) -> tuple[tuple[Key, ...], tuple[Key, ...]]:
        """The keys to show as Textual's footer shows them, a key for each action (its first
        binding): the others, and the pinned ones with the command palette's key last."""
        app = screen.app
        bindings = screen.active_bindings
        keys: dict[str, Key] = {}
        for _, binding, enabled, tooltip in bindings.values():
            if binding.show and binding.action not in keys:
                keys[binding.action] = Key(
                    binding.key,
                    app.get_key_display(binding),
                    binding.description,
                    binding.action,
                    bool(enabled),
                    tooltip or "",
                )
        pinned = [keys.pop(action) for action in PINNED if action in keys]
        palette = bindings.get(app.COMMAND_PALETTE_BINDING)
        if palette is not None and self.show_command_palette and app.ENABLE_COMMAND_PALETTE:
            binding = palette.binding
            pinned.append(
                Key(
                    binding.key,
                    app.get_key_display(binding),
                    binding.description,
                    binding.action,
                    bool(palette.enabled),
                    binding.tooltip or binding.description,
                )
            )
        return tuple(keys.values()), tuple(pinned)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            # Built with the keys known now. Textual's footer is empty until the screen first
            # refreshes its bindings and is then rebuilt: the screen was laid out once more
            # for every screen shown.
            self.set_reactive(Footer._bindings_ready, True)
            self._shown = self._keys(self.screen)
            self._pinned = self._shown[1]
        pinned: list[FooterKey] = []
        palette: list[Widget] = []
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.has_class("-command-palette"):
                palette.append(widget)
            elif isinstance(widget, FooterKey) and widget.action in PINNED:
                pinned.append(widget)
        # The other keys Textual's footer made are left unmounted: `FooterKeys` draws them.
        others, _ = self._shown if self._shown is not None else self._keys(self.screen)
        yield FooterKeys(others)
        if pinned or palette:
            pinned.sort(key=lambda key: PINNED.index(key.action))
            with HorizontalGroup(classes="pinned"):
                yield from pinned
                yield from palette


def _same(keys: tuple[Key, ...], others: tuple[Key, ...]) -> bool:
    """Whether two rows of keys differ only in which are enabled."""
    return [(k.key, k.action, k.description) for k in keys] == [
        (k.key, k.action, k.description) for k in others
    ]


def _width(key: Key) -> int:
    if not key.description:
        return cell_len(key.display)
    return cell_len(key.display) + cell_len(key.description) + 3
