"""The `?` screen: every key of the app and its panes, generated from their bindings."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


def key_rows(sections: list[tuple[str, list[BindingType]]], display=None) -> list[tuple[str, str, str]]:
    rows = []
    for where, bindings in sections:
        for binding in bindings:
            if not isinstance(binding, Binding):
                continue
            keys = display(binding) if display else binding.key
            label = binding.tooltip or binding.description or binding.action
            rows.append((where, keys, label))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", tooltip="Close help"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, sections: list[tuple[str, list[BindingType]]],
                 key_display: Callable[[Binding], str] | None = None) -> None:
        super().__init__()
        self.sections = sections
        self.key_display = key_display
        """How a key is written (the app's ``get_key_display``); the raw key name if not given."""

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static("[b]Keys[/b]  [dim](Esc closes · ctrl+p opens the command palette)[/dim]", id="help-title")
            table = DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("where", "key", "does")
            for row in key_rows(self.sections, self.key_display):
                table.add_row(*row)
            yield table

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()
