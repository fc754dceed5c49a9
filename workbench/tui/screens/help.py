"""The `?` screen: every key of the app and its panes, generated from their bindings.

The entries come from ``workbench.tui.keys`` (the same table the command palette reads).
The text wraps to the screen's width and scrolls only up and down: nothing is cut off and
nothing is out of sight to the right.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from workbench.tui.keys import KeyEntry


def keys_text(entry: KeyEntry, display: Callable[[Binding], str] | None = None) -> str:
    """The entry's keys as the footer writes them (``u, ⏎``)."""
    return ", ".join(display(b) if display else b.key for b in entry.bindings)


def help_renderable(entries: list[KeyEntry], headings: dict[str, str],
                    display: Callable[[Binding], str] | None = None) -> RenderableType:
    """A heading per place and a two-column grid under it; the description column wraps."""
    parts: list[RenderableType] = []
    for where, heading in headings.items():
        rows = [entry for entry in entries if entry.where == where]
        if not rows:
            continue
        grid = Table.grid(padding=(0, 2), expand=True)
        grid.add_column("key", no_wrap=True, min_width=7, style="bold")
        grid.add_column("does", ratio=1, overflow="fold")
        for entry in rows:
            grid.add_row(Text(keys_text(entry, display)), Text(entry.text))
        parts += [Text(heading, style="bold underline") if not parts else Text("\n" + heading, style="bold underline"), grid]
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", tooltip="Close help"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, entries: list[KeyEntry], headings: dict[str, str],
                 key_display: Callable[[Binding], str] | None = None) -> None:
        super().__init__()
        self.entries = entries
        self.headings = headings
        """``where`` -> its heading, in the order shown."""
        self.key_display = key_display
        """How a key is written (the app's ``get_key_display``); the raw key name if not given."""

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static("[b]Keys[/b]  [dim](Esc closes · ctrl+p opens the command palette)[/dim]", id="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_renderable(self.entries, self.headings, self.key_display), id="help-keys")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()
