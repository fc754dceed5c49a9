"""Every key of the workbench in one table, read from the bindings themselves.

Keys are declared once, as ``BINDINGS`` on the app and on each pane (a pane's
``HELP_BINDINGS`` adds the keys its child widgets answer, such as Enter in a table). The
footer shows them as Textual finds them; the help screen (``?``) and the command palette
are both generated here from the same bindings, so what a key says is written once and
each key is listed once: a binding repeated further down (same key, same action) is left
out, and the keys of one action in one place share a line ("u, ⏎  Use the corpus").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding, BindingType
from textual.dom import DOMNode

ANYWHERE = "anywhere"

HELP_ONLY = (
    Binding("ctrl+p", "command_palette", "Palette", tooltip="Command palette: every action by name"),
    Binding("tab", "focus_next", "Next", tooltip="Move the focus to the next widget (shift+tab: back)"),
)
"""Textual's own keys, listed in the help with the app's."""

NOT_IN_PALETTE = frozenset({"command_palette", "focus_next", "leave_input"})
"""Actions that make no sense picked from the palette (it has the focus while it is open)."""


@dataclass(frozen=True)
class KeyEntry:
    """One line of the help: the keys of one action, in one place."""

    where: str
    """``anywhere`` or a pane's id."""
    bindings: tuple[Binding, ...]
    namespace: DOMNode
    """What runs the action: the app, or the pane."""

    @property
    def binding(self) -> Binding:
        return self.bindings[0]

    @property
    def action(self) -> str:
        return self.binding.action

    @property
    def text(self) -> str:
        """What the key does: its tooltip, else its footer description."""
        return self.binding.tooltip or self.binding.description or self.action

    @property
    def runnable(self) -> bool:
        """Whether the palette can run it: an action of its namespace (not a child widget's)."""
        name = self.action.split("(", 1)[0]
        return name not in NOT_IN_PALETTE and callable(getattr(self.namespace, f"action_{name}", None))


def pane_keys(pane: DOMNode) -> list[BindingType]:
    """A pane's keys: its ``HELP_BINDINGS`` if it has them, else the ``BINDINGS`` its own class
    declares (not those it inherits, such as a scrolling container's arrows)."""
    declared = getattr(type(pane), "HELP_BINDINGS", None)
    return list(declared if declared is not None else vars(type(pane)).get("BINDINGS", []))


def key_entries(sections: Iterable[tuple[str, DOMNode, Iterable[BindingType]]]) -> list[KeyEntry]:
    """``(where, namespace, bindings)`` sections -> one entry per action and place, each
    (key, action) once: the first place that declares it keeps it."""
    seen: set[tuple[str, str]] = set()
    entries: list[KeyEntry] = []
    for where, namespace, declared in sections:
        grouped: dict[str, list[Binding]] = {}
        for binding in declared:
            if not isinstance(binding, Binding) or (binding.key, binding.action) in seen:
                continue
            seen.add((binding.key, binding.action))
            grouped.setdefault(binding.action, []).append(binding)
        entries += [KeyEntry(where, tuple(group), namespace) for group in grouped.values()]
    return entries
