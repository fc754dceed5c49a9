"""A line or two of markup that repaints without a layout pass.

``Static.update`` asks for a layout refresh, and a layout refresh repaints every widget on
the screen, the loss chart included; readouts that change several times a second must
only repaint themselves, so they are a fixed-height widget with a non-layout reactive.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class Readout(Widget):
    DEFAULT_CSS = """
    Readout {
        height: 1;
    }
    """

    text: reactive[str] = reactive("", layout=False)

    def __init__(self, text: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(Readout.text, text)

    def update(self, text: str) -> None:
        self.text = text

    def render(self) -> Text:
        return Text.from_markup(self.text, overflow="ellipsis")
