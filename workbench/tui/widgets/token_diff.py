"""One passage's token diff: the passage coloured by change, a cursor over its tokens, and
both models' top-k at the cursor below.

Attributes down: the pane hands a finished ``PassageDiff`` to ``show`` (or a line to
``say``). The widget does no model work; left/right (and home/end) move the cursor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from workbench.inspector.render_diff import cursor_panel, passage_strip

if TYPE_CHECKING:  # imports torch: the worker builds the diff, this widget only shows it
    from workbench.inspector.tokendiff import PassageDiff


class TokenDiffView(Vertical, can_focus=True):
    DEFAULT_CSS = """
    TokenDiffView {
        height: 1fr;
        border: round $panel;
    }
    TokenDiffView:focus {
        border: heavy $accent;
    }
    TokenDiffView .diff-title {
        height: auto;
        text-style: bold;
    }
    TokenDiffView .diff-passage {
        height: 1fr;
    }
    TokenDiffView .diff-cursor {
        height: auto;
        max-height: 8;
        border-top: solid $panel;
    }
    """

    BINDINGS = [
        Binding("left", "move(-1)", "Token ←", tooltip="Diff view: the cursor to the previous token"),
        Binding("right", "move(1)", "Token →", tooltip="Diff view: the cursor to the next token (its top-k shows below)"),
        Binding("home", "move_to(0)", "First", show=False, tooltip="Diff view: the cursor to the first token"),
        Binding("end", "move_to(-1)", "Last", show=False, tooltip="Diff view: the cursor to the last token"),
    ]

    def __init__(self, title: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.diff: PassageDiff | None = None
        self.cursor = 0

    def compose(self) -> ComposeResult:
        yield Static(Text(self.title), classes="diff-title")
        with VerticalScroll(classes="diff-passage"):
            yield Static("", classes="diff-text")
        yield Static("", classes="diff-cursor")

    def say(self, title: str, text: str = "") -> None:
        """No diff (yet): a title and a line instead."""
        self.diff = None
        self.query_one(".diff-title", Static).update(Text(title))
        self.query_one(".diff-text", Static).update(Text(text, style="dim"))
        self.query_one(".diff-cursor", Static).update("")

    def show(self, title: str, diff: PassageDiff) -> None:
        self.diff = diff
        self.cursor = 0
        mean = diff.mean_change
        figure = f"mean {mean:+.3f} nats/token over {len(diff.scored)} tokens" if mean is not None else "no token scored"
        windows = f", {diff.windows} windows" if diff.windows > 1 else ""
        self.query_one(".diff-title", Static).update(Text(f"{title}: {figure}{windows}"))
        self._draw()

    def _draw(self) -> None:
        if self.diff is None:
            return
        self.query_one(".diff-text", Static).update(passage_strip(self.diff, self.cursor))
        self.query_one(".diff-cursor", Static).update(cursor_panel(self.diff, self.cursor, k=5))

    def action_move(self, step: int) -> None:
        if self.diff is not None and self.diff.tokens:
            self.cursor = max(0, min(len(self.diff.tokens) - 1, self.cursor + step))
            self._draw()

    def action_move_to(self, index: int) -> None:
        if self.diff is not None and self.diff.tokens:
            self.cursor = index % len(self.diff.tokens)
            self._draw()
