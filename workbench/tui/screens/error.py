"""A modal that shows an engine error (bad corpus, NaN, out of memory) as one readable message."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ErrorScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", tooltip="Close this message"),
        Binding("enter", "dismiss", "Close", show=False),
    ]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            yield Static(f"[b]{self.title_text}[/b]", id="error-title", markup=True)
            yield Static(self.message, id="error-message", markup=False)
            yield Button("OK (Esc)", id="error-ok", variant="error", compact=True)

    def on_button_pressed(self) -> None:
        self.dismiss()

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()
