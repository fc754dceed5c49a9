"""Placeholder for the Inspector pane; another engineer replaces this module."""

from __future__ import annotations

from textual.widgets import Static


class InspectorPane(Static):
    """Base vs fine-tuned predictions will live here."""

    def __init__(self, **kwargs) -> None:
        super().__init__("The inspector is coming: base vs fine-tuned predictions side by side.", **kwargs)
