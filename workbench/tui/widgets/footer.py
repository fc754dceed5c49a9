"""Textual's ``Footer``, updated in place instead of recomposed (Textual 8.2).

Textual's footer recomposes on every change of the screen's bindings, which Textual signals
twice per focus change (once at once, once after the next refresh): each time it removed its
~10 ``FooterKey`` widgets and mounted new ones, restyled and laid out, two extra frames of
~15 ms of CPU after every pane switch, even when the keys did not change. It also leaked:
``Footer.compose`` binds each key to the footer's ``compact`` with ``data_bind``, which leaves
a watcher ``(key, callback)`` on the footer that Textual drops only when ``compact`` changes,
which it never does (textual#6666), so every recompose kept ~15 dead widgets alive and each
full garbage collection walked more of them.

This footer works out the keys to show (what ``Footer.compose`` would show) once per burst of
signals, before the next frame, and when they changed it rewrites the existing keys in place,
mounting or removing only the difference (no ``data_bind``: the keys get the footer's
``compact`` when made). Grouped bindings, which the workbench does not use, fall back to
Textual's recompose (without its leak).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, NamedTuple

from textual.widgets import Footer
from textual.widgets._footer import FooterKey

if TYPE_CHECKING:
    from textual.screen import Screen

PALETTE = "-command-palette"


class KeySpec(NamedTuple):
    """What one ``FooterKey`` shows (its constructor's arguments)."""

    key: str
    key_display: str
    description: str
    action: str
    disabled: bool
    tooltip: str
    classes: str = ""


class WorkbenchFooter(Footer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._update_pending = False
        self._shown: tuple[KeySpec, ...] | None = None
        """The keys on show (``None``: not known, e.g. after a recompose)."""

    def bindings_changed(self, screen: Screen) -> None:
        """The screen's bindings may have changed: update once, after the current message
        (several signals in a row, e.g. a focus change's two, make one update)."""
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._update_pending:
            self._update_pending = True
            self.call_next(self._update_keys)

    def key_specs(self) -> tuple[KeySpec, ...] | None:
        """The keys ``Footer.compose`` would show, in order (``None`` if some are grouped)."""
        active_bindings = self.screen.active_bindings
        by_action: defaultdict[str, list] = defaultdict(list)
        for _, binding, enabled, tooltip in active_bindings.values():
            if binding.show:
                by_action[binding.action].append((binding, enabled, tooltip))
        specs = []
        for (binding, enabled, tooltip), *_same_action in by_action.values():  # the first of each action
            if binding.group is not None:
                return None
            specs.append(KeySpec(binding.key, self.app.get_key_display(binding), binding.description,
                                 binding.action, not enabled, tooltip))
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            found = active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
            if found is not None:
                _, binding, enabled, _ = found
                specs.append(KeySpec(binding.key, self.app.get_key_display(binding), binding.description,
                                     binding.action, not enabled, binding.tooltip or binding.description, PALETTE))
        return tuple(specs)

    async def _update_keys(self) -> None:
        self._update_pending = False
        if not self.is_attached or not self._bindings_ready:
            return
        specs = self.key_specs()
        if specs is not None and specs == self._shown:
            return
        children = list(self.children)
        if specs is None or not all(isinstance(child, FooterKey) for child in children):
            await self.recompose()
            self._shown = specs if specs is not None and all(isinstance(c, FooterKey) for c in self.children) else None
            return
        columns = sum(1 for spec in specs if spec.classes != PALETTE)
        if self.styles.grid_size_columns != columns:  # as Footer.compose sets it (a change means a layout)
            self.styles.grid_size_columns = columns
        old_keys = [child for child in children if not child.has_class(PALETTE)]
        old_palette = [child for child in children if child.has_class(PALETTE)]
        new_keys = [spec for spec in specs if spec.classes != PALETTE]
        new_palette = [spec for spec in specs if spec.classes == PALETTE]
        for widgets, wanted in ((old_keys, new_keys), (old_palette, new_palette)):
            for widget, spec in zip(widgets, wanted):
                self._rewrite(widget, spec)
                if not widget.display:
                    widget.display = True
            for widget in widgets[len(wanted):]:  # hidden, kept for the next pane with more keys
                if widget.display:
                    widget.display = False
        self._shown = specs
        missing = [self._make(spec) for spec in new_keys[len(old_keys):]]
        if missing:  # only the first few times: mounting takes frames of its own
            await self.mount(*missing, before=old_palette[0] if old_palette else None)
        if new_palette[len(old_palette):]:
            await self.mount(*[self._make(spec) for spec in new_palette[len(old_palette):]])

    def _make(self, spec: KeySpec) -> FooterKey:
        classes = spec.classes
        if spec.classes != PALETTE:
            # Footer.compose's data_bind(compact=...), without its watcher: the value, and the
            # class its watcher would set (the palette's key keeps FooterKey's own default)
            classes = f"{classes} -compact" if self.compact else classes
        key = FooterKey(spec.key, spec.key_display, spec.description, spec.action, disabled=spec.disabled,
                        tooltip=spec.tooltip, classes=classes.strip())
        if spec.classes != PALETTE:
            key.set_reactive(FooterKey.compact, self.compact)
        return key

    @staticmethod
    def _rewrite(widget: FooterKey, spec: KeySpec) -> None:
        """Make ``widget`` show ``spec`` (as a new ``FooterKey(*spec)`` would)."""
        if (widget.key, widget.key_display, widget.description, widget.action, widget._disabled,
                widget.tooltip or "") == spec[:6]:
            return
        widget.key, widget.key_display, widget.description, widget.action = spec[:4]
        widget._disabled = spec.disabled
        widget.set_class(spec.disabled, "-disabled")
        widget.tooltip = spec.tooltip or None
        widget.refresh(layout=True)  # its width follows its text

    async def recompose(self) -> None:
        await super().recompose()
        self._shown = None
        self.forget_removed()

    def forget_removed(self) -> int:
        """Drop the watchers left by widgets that have been removed; how many went
        (``Footer.compose``'s ``data_bind``: textual#6666)."""
        dropped = 0
        for entries in getattr(self, "__watchers", {}).values():  # where textual.reactive keeps them
            kept = [(node, callback) for node, callback in entries if not node._closing]
            dropped += len(entries) - len(kept)
            entries[:] = kept
        return dropped
