"""The workbench's footer: the keys that work where the focus is, updated in place.

Built on Textual's public API only (Textual 8.2). Textual's ``Footer`` recomposes on every
change of the screen's bindings, which Textual signals twice per focus change (once at once,
once after the next refresh): each time it removed its ~10 key widgets and mounted new ones,
restyled and laid out, two extra frames of ~15 ms of CPU after every pane switch, even when
the keys did not change. It also leaked: ``Footer.compose`` binds each key to the footer's
``compact`` with ``data_bind``, which leaves a watcher on the footer that Textual drops only
when ``compact`` changes, which it never does (textual#6666), so every recompose kept ~15
dead widgets alive and each full garbage collection walked more of them.

``WorkbenchFooter`` is still a ``Footer`` (its docking, colours, ``compact`` style, and its
subscription to the screen's ``bindings_updated_signal``, which calls ``bindings_changed``),
but its ``compose`` yields nothing and its ``bindings_changed`` works out the keys to show
(what ``Footer.compose`` would show) once per burst of signals, before the next frame; when
they changed it rewrites the existing ``KeyCap`` widgets in place, mounting or hiding only
the difference. ``KeyCap`` draws a key as Textual's ``FooterKey`` does (which
``textual.widgets`` does not export), so nothing here is bound with ``data_bind`` and nothing
leaks whatever Textual does about textual#6666. Grouped bindings (which the workbench does not
declare) are shown one key each.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, NamedTuple

from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer

if TYPE_CHECKING:
    from textual.screen import Screen

PALETTE = "-command-palette"


class KeySpec(NamedTuple):
    """What one ``KeyCap`` shows."""

    key: str
    key_display: str
    description: str
    action: str
    inactive: bool
    """Shown dimmed: the key does nothing here now (its action's ``check_action`` said so)."""
    tooltip: str
    classes: str = ""


class KeyCap(Widget):
    """One key of the footer: the key and what it does; a click presses it (as ``FooterKey``)."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"key-cap--key", "key-cap--description"}
    DEFAULT_CSS = """
    KeyCap {
        width: auto;
        height: 1;
        text-wrap: nowrap;
        background: $footer-item-background;
        .key-cap--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
            padding: 0 1;
        }
        .key-cap--description {
            padding: 0 1 0 0;
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        &:hover {
            pointer: pointer;
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
        &.-disabled {
            text-style: dim;
        }
        &.-compact {
            .key-cap--key {
                padding: 0;
            }
            .key-cap--description {
                padding: 0 0 0 1;
            }
        }
    }
    """

    def __init__(self, spec: KeySpec, *, compact: bool) -> None:
        super().__init__(classes=spec.classes)
        self.spec = spec
        self.set_reactive(Widget.shrink, False)
        self.set_class(compact, "-compact")
        self.set_class(spec.inactive, "-disabled")
        self.tooltip = spec.tooltip or None

    def show(self, spec: KeySpec) -> None:
        """Show ``spec`` instead (a repaint, and a layout only if the text's width changed)."""
        if spec == self.spec:
            return
        width_changed = (spec.key_display, spec.description) != (self.spec.key_display, self.spec.description)
        self.spec = spec
        self.set_class(spec.inactive, "-disabled")
        self.tooltip = spec.tooltip or None
        if self.is_mounted:
            self.refresh(layout=width_changed)

    def render(self) -> Text:
        key_padding = self.get_component_styles("key-cap--key").padding
        text_padding = self.get_component_styles("key-cap--description").padding
        key = (" " * key_padding.left + self.spec.key_display + " " * key_padding.right,
               self.get_component_rich_style("key-cap--key"))
        if self.spec.description:
            description = (" " * text_padding.left + self.spec.description + " " * text_padding.right,
                           self.get_component_rich_style("key-cap--description"))
            label = Text.assemble(key, description)
        else:
            label = Text.assemble((self.spec.key_display, key[1]))
        label.stylize_before(self.rich_style)
        return label

    def on_mouse_down(self) -> None:
        if self.spec.inactive:
            self.app.bell()
        else:
            self.app.simulate_key(self.spec.key)


class WorkbenchFooter(Footer):
    DEFAULT_CSS = """
    WorkbenchFooter {
        KeyCap.-command-palette {
            dock: right;
            padding-right: 1;
            border-left: vkey $foreground 20%;
        }
        &.-compact {
            KeyCap {
                margin-right: 1;
            }
            KeyCap.-command-palette {
                padding-right: 0;
            }
        }
    }
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._update_pending = False
        self._shown: tuple[KeySpec, ...] = ()

    def compose(self) -> ComposeResult:
        yield from ()  # the keys are mounted by ``update_keys``, once the screen's bindings are known

    def bindings_changed(self, screen: Screen) -> None:
        """The screen's bindings may have changed: update once, after the current message
        (several signals in a row, e.g. a focus change's two, make one update)."""
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._update_pending:
            self._update_pending = True
            self.call_next(self.update_keys)

    def key_specs(self) -> tuple[KeySpec, ...]:
        """The keys ``Footer.compose`` would show, in order (grouped ones one key each)."""
        active_bindings = self.screen.active_bindings
        by_action: defaultdict[str, list] = defaultdict(list)
        for _, binding, enabled, tooltip in active_bindings.values():
            if binding.show:
                by_action[binding.action].append((binding, enabled, tooltip))
        specs = [KeySpec(binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                         not enabled, tooltip)
                 for (binding, enabled, tooltip), *_same_action in by_action.values()]  # the first of each action
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            found = active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
            if found is not None:
                _, binding, enabled, _ = found
                specs.append(KeySpec(binding.key, self.app.get_key_display(binding), binding.description,
                                     binding.action, not enabled, binding.tooltip or binding.description, PALETTE))
        return tuple(specs)

    async def update_keys(self) -> None:
        """Show ``key_specs()``: rewrite the key caps there are, hide those left over (kept for
        the next pane with more keys), mount only the missing ones (the first few times)."""
        self._update_pending = False
        if not self.is_attached:
            return
        specs = self.key_specs()
        if specs == self._shown:
            return
        self._shown = specs
        caps = list(self.query_children(KeyCap))
        old_keys = [cap for cap in caps if not cap.has_class(PALETTE)]
        old_palette = [cap for cap in caps if cap.has_class(PALETTE)]
        new_keys = [spec for spec in specs if spec.classes != PALETTE]
        new_palette = [spec for spec in specs if spec.classes == PALETTE]
        for shown, wanted in ((old_keys, new_keys), (old_palette, new_palette)):
            for cap, spec in zip(shown, wanted):
                cap.show(spec)
                if not cap.display:
                    cap.display = True
            for cap in shown[len(wanted):]:
                if cap.display:
                    cap.display = False
        missing = [KeyCap(spec, compact=self.compact) for spec in new_keys[len(old_keys):]]
        if missing:
            await self.mount(*missing, before=old_palette[0] if old_palette else None)
        # the palette's key is compact whatever the footer is (as Textual's FooterKey by default)
        palette = [KeyCap(spec, compact=True) for spec in new_palette[len(old_palette):]]
        if palette:
            await self.mount(*palette)

    def watch_compact(self, compact: bool) -> None:
        for cap in self.query_children(KeyCap):
            if not cap.has_class(PALETTE):
                cap.set_class(compact, "-compact")
