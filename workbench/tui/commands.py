"""Command palette (ctrl+p): every key's action by name, from the same table as the help.

The entries are ``workbench.tui.keys`` entries (the app's and the panes' ``BINDINGS``): the
title says what the action does (the key's tooltip), the help line which key does it where.
A pane's action first shows its pane, then runs there.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from workbench.tui.keys import ANYWHERE, KeyEntry


def palette_entries(app: Any) -> list[KeyEntry]:
    """The key table's entries the palette can run."""
    return [entry for entry in app.key_table() if entry.runnable]


def help_line(app: Any, entry: KeyEntry) -> str:
    keys = ", ".join(app.get_key_display(b) for b in entry.bindings)
    return f"key {keys}" + ("" if entry.where == ANYWHERE else f" in the {entry.where} pane")


async def run_entry(app: Any, entry: KeyEntry) -> None:
    if entry.where != ANYWHERE:
        app.action_show_tab(entry.where)
    await app.run_action(entry.action, default_namespace=entry.namespace)


class WorkbenchCommands(Provider):
    async def discover(self) -> Hits:
        for entry in palette_entries(self.app):
            yield DiscoveryHit(entry.text, partial(run_entry, self.app, entry), help=help_line(self.app, entry))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in palette_entries(self.app):
            score = matcher.match(entry.text)
            if score > 0:
                yield Hit(score, matcher.highlight(entry.text), partial(run_entry, self.app, entry),
                          help=help_line(self.app, entry))
