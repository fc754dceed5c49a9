"""A text field that edits its value instead of replacing it, and says why it refuses a key.

Textual's ``Input`` selects its whole text on focus, so the first key typed replaces the
value; and a value set from code leaves the cursor where it was (often at the start).
``FieldInput`` puts the cursor at the end whenever it gets focus, selects nothing, and,
when its ``restrict`` pattern refuses a key, notifies ``refusal`` (e.g. "learning rate takes
a number: 1e-3, 0.001") instead of only ringing the bell.
"""

from __future__ import annotations

import time
from typing import Any

from textual import events
from textual.widgets import Input


class FieldInput(Input):
    REFUSAL_EVERY = 2.0
    """Seconds between two notifications of the same refusal (a held key must not flood)."""

    def __init__(self, value: str | None = None, *, refusal: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("select_on_focus", False)
        super().__init__(value, **kwargs)
        self.refusal = refusal
        """What a refused key is told (empty: the bell only)."""
        self._refused_at = -self.REFUSAL_EVERY

    def on_focus(self, event: events.Focus) -> None:
        """Entering the field puts the cursor after the text: typing adds to the value (the
        terminal window getting the focus back leaves the cursor where it was)."""
        if not event.from_app_focus:
            self.cursor_position = len(self.value)

    def restricted(self) -> None:
        super().restricted()
        now = time.monotonic()
        if self.refusal and now - self._refused_at >= self.REFUSAL_EVERY:
            self._refused_at = now
            self.notify(self.refusal, severity="warning", timeout=3, markup=False)
