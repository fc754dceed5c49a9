"""Pick a run from the run root (for overlaying its curves)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class PickRunScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without choosing")]

    def __init__(self, title: str, runs: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.runs = runs  # (path, label)

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-box"):
            yield Static(f"[b]{self.title_text}[/b]")
            if self.runs:
                yield OptionList(*[Option(label, id=path) for path, label in self.runs], id="pick-list")
            else:
                yield Static("No other runs in the run root yet.")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
