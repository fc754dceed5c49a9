"""Objective & model pane: what to train, from what, and the key hyperparameters.

Empty fields mean "the objective's default"; the resolved defaults (from the engine's
``resolve_spec``) are shown as each field's placeholder and in a summary line, and are
recomputed in a thread worker whenever the objective, base or size changes (resolving
imports the task modules, which must not stall the UI).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from workbench.config import DEVICES, OBJECTIVES, PARALLEL_CHOICES, SIZES, TOKENIZERS, RunSpec
from workbench.errors import SpecError

NUMERIC_FIELDS = {
    "vocab_size": int, "seq_len": int, "batch_size": int, "lr": float, "max_steps": int, "eval_interval": int,
    "log_interval": int,
}
FIELD_LABELS = {
    "corpus": "corpus", "objective": "objective", "base": "base model", "size": "size", "tokenizer": "tokenizer",
    "vocab_size": "vocab size", "seq_len": "seq length", "batch_size": "batch size", "lr": "learning rate",
    "max_steps": "max steps", "eval_interval": "eval every", "log_interval": "log every", "name": "run name",
    "device": "device", "gpus": "GPUs", "parallel": "parallel",
}


@dataclass
class Resolved(Message):
    """Defaults resolved for the current form (or why they could not be)."""

    values: dict
    error: str


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


class ObjectivePane(VerticalScroll):
    BINDINGS = [
        Binding("escape", "leave_field", "Done", tooltip="Stop editing this field (then s starts, D detaches)"),
    ]

    def __init__(self, run_root: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run_root = run_root

    def compose(self) -> ComposeResult:
        def row(key: str, widget) -> ComposeResult:
            with Horizontal(classes="form-row"):
                yield Label(FIELD_LABELS[key], classes="form-label")
                yield widget

        yield from row("corpus", Input("general", id="f-corpus", compact=True))
        yield from row("objective", Select([(o, o) for o in OBJECTIVES], value="clm", allow_blank=False, id="f-objective", compact=True))
        yield from row("base", Input(placeholder="empty: from scratch (or a run dir / HF model dir)", id="f-base", compact=True))
        yield from row("size", Select([(s, s) for s in SIZES], value="tiny", allow_blank=False, id="f-size", compact=True))
        yield from row("tokenizer", Select([(t, t) for t in TOKENIZERS], value="auto", allow_blank=False, id="f-tokenizer", compact=True))
        for key in NUMERIC_FIELDS:
            yield from row(key, Input(id=f"f-{key}", compact=True, restrict=r"[0-9.eE+-]*"))
        yield from row("name", Input(placeholder="default: objective-corpus-time", id="f-name", compact=True))
        yield from row("device", Select([(d, d) for d in DEVICES], value="auto", allow_blank=False, id="f-device", compact=True))
        yield from row("gpus", Input(placeholder="1 (more: a detached torchrun run, one process each)", id="f-gpus",
                                     compact=True, restrict=r"[0-9]*"))
        yield from row("parallel", Select([(p, p) for p in PARALLEL_CHOICES], value="ddp", allow_blank=False, id="f-parallel",
                                          compact=True))
        yield Static("", id="resolved")

    def on_mount(self) -> None:
        self.refresh_defaults()

    # ------------------------------------------------------------------ values
    def _value(self, key: str) -> str:
        widget = self.query_one(f"#f-{key}")
        value = widget.value
        return "" if value is Select.BLANK or value is None else str(value).strip()

    def set_corpus(self, name: str) -> None:
        self.query_one("#f-corpus", Input).value = name

    def set_base(self, base: str) -> None:
        self.query_one("#f-base", Input).value = base
        self.refresh_defaults()

    def set_objective(self, objective: str) -> None:
        self.query_one("#f-objective", Select).value = objective

    def build_spec(self, *, strict: bool = True) -> RunSpec:
        """The spec the form describes; a ``SpecError`` names the field that is wrong."""
        values: dict = {"out": str(self.run_root)}
        for key in ("corpus", "objective", "base", "size", "tokenizer", "name", "device", "parallel"):
            text = self._value(key)
            if text:
                values[key] = text
        for key, kind in NUMERIC_FIELDS.items():
            text = self._value(key)
            if not text:
                continue
            try:
                values[key] = kind(float(text)) if kind is int else kind(text)
            except ValueError:
                if strict:
                    raise SpecError(f"{FIELD_LABELS[key]} {text!r} is not a number", where="Objective pane",
                                    fix=f"type a number in '{FIELD_LABELS[key]}' or clear it for the default") from None
        spec = RunSpec(**values)
        spec.validate()
        return spec

    def gpus(self) -> int:
        """Processes to launch (1: train in this process; more: torchrun, detached)."""
        text = self._value("gpus")
        if not text:
            return 1
        count = int(text)
        if count < 1:
            raise SpecError("GPUs must be at least 1", where="Objective pane", fix="type 1 or more, or clear the field")
        return count

    # ------------------------------------------------------------------ defaults
    @on(Select.Changed)
    @on(Input.Submitted)
    def _form_changed(self) -> None:
        self.refresh_defaults()

    @on(Input.Changed, "#f-base")
    def _base_changed(self) -> None:
        self.refresh_defaults()

    def refresh_defaults(self) -> None:
        # from a base, the size preset does not apply
        self.query_one("#f-size", Select).disabled = bool(self._value("base"))
        try:
            spec = self.build_spec(strict=False)
        except SpecError as error:
            self._show_resolved({}, str(error))
            return
        self.resolve(spec)

    @work(thread=True, exclusive=True, exit_on_error=False, group="resolve")
    def resolve(self, spec: RunSpec) -> None:
        from workbench.engine.spec_resolution import resolve_spec

        blank = spec.replace(**{k: None for k in NUMERIC_FIELDS if k != "log_interval"}, name=spec.name or "preview")
        try:
            resolved, _task = resolve_spec(blank)
        except SpecError as error:
            self.post_message(Resolved({}, error.one_line()))
            return
        values = {k: getattr(resolved, k) for k in NUMERIC_FIELDS}
        values["log_interval"] = RunSpec.log_interval  # a spec default, not an objective's
        values.update(tokenizer=resolved.tokenizer, epochs=resolved.epochs)
        self.post_message(Resolved(values, ""))

    def on_resolved(self, message: Resolved) -> None:
        message.stop()
        self._show_resolved(message.values, message.error)

    def _show_resolved(self, values: dict, error: str) -> None:
        for key in NUMERIC_FIELDS:
            default = values.get(key)
            if key == "eval_interval" and default is None:
                default = "1/10 of the steps"
            self.query_one(f"#f-{key}", Input).placeholder = f"default {_fmt(default)}" if default is not None else ""
        resolved = self.query_one("#resolved", Static)
        if error:
            resolved.update(f"[red]{error}[/red]")
            return
        length = f"{values['max_steps']} steps" if values.get("max_steps") else f"{_fmt(values.get('epochs'))} epochs"
        resolved.update(
            f"[dim]defaults:[/dim] lr {_fmt(values.get('lr'))} · batch {values.get('batch_size')} · "
            f"seq {values.get('seq_len')} · {length} · {values.get('tokenizer')} tokenizer · "
            f"vocab {values.get('vocab_size')}\n[dim]s starts here · D starts detached · empty fields use the defaults[/dim]"
        )

    def action_leave_field(self) -> None:
        self.app.set_focus(None)
