"""Objective & model pane: what to train, from what, and every setting of the run spec.

The form is generated from ``RunSpec``'s fields: each field's type, default, choices (the
objectives come from the task registry) and help text (the field's tooltip) are read from
``workbench.config``, so a new spec field shows up here without being written twice.
``MAIN_FIELDS`` come first, in that order; every other scalar field is under "More settings".

Empty fields mean "the objective's default"; the resolved defaults (from the engine's
``resolve_spec``) are shown as each numeric field's placeholder and in a summary line, and
are recomputed in a thread worker whenever the objective, base or size changes (resolving
imports the task modules, which must not stall the UI).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Collapsible, Input, Label, Select, Static

from workbench.config import RunSpec, field_choices, field_help, spec_field_types, without_none
from workbench.engine.spec_resolution import resolve_spec
from workbench.errors import SpecError, WorkbenchError
from workbench.models import DECODER_TYPES, is_decoder, scratch_parameters
from workbench.runs.rundir import RunDir
from workbench.tui.heavy import import_heavy_libraries
from workbench.tui.widgets.field import FieldInput

MAIN_FIELDS = (
    "corpus", "objective", "base", "method", "size", "tokenizer", "vocab_size", "seq_len", "batch_size", "lr", "max_steps",
    "eval_interval", "log_interval", "name", "device", "gpus", "parallel",
)
"""Shown first, in this order; the other settings are under "More settings"."""
HIDDEN_FIELDS = ("out",)
"""Spec fields the form does not offer (the run root is the app's)."""
LABELS = {
    "base": "base model", "seq_len": "seq length", "lr": "learning rate", "eval_interval": "eval every",
    "log_interval": "log every", "name": "run name",
}
"""Labels that are not just the field's name with spaces."""
PLACEHOLDERS = {
    "base": "empty: from scratch (or a run dir / HF model dir)",
    "name": "default: objective-corpus-time",
}
NUMBER = r"[0-9.eE+-]*"
NUMBER_OR_AUTO = r"[0-9.eE+-]*|a|au|aut|auto"
"""The learning rate: a number, or ``auto`` (the range test first), typed a letter at a time."""


@dataclass(frozen=True)
class FormField:
    """One setting of the form: a ``RunSpec`` field, or the launch-only ``gpus``."""

    key: str
    label: str
    kind: type
    """``str``, ``int`` or ``float``."""
    default: Any
    choices: tuple[str, ...]
    help: str
    parse: Callable[[str], Any] | None = None
    """Reads the typed text (e.g. a time budget of ``5m``), instead of ``kind``."""
    placeholder: str = ""
    restrict: str | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in (int, float)

    @property
    def refusal(self) -> str:
        """What a key the field refuses is told: which text it takes, with an example."""
        if self.restrict is None:
            return ""
        if self.kind is int:
            return f"{self.label} takes a whole number: {_fmt(self.default) if self.default is not None else '1, 2'}"
        if self.restrict == NUMBER_OR_AUTO:
            return f"{self.label} takes a number or auto: 1e-3, 0.001, auto"
        return f"{self.label} takes a number: {_fmt(self.default) if self.default is not None else '1e-3, 0.001'}"

    def convert(self, text: str) -> Any:
        """The field's value from its text; ``ValueError`` or ``SpecError`` if it cannot be read."""
        if self.parse is not None:
            return self.parse(text)
        if self.kind is int:
            return int(float(text))
        return self.kind(text)

    def widget(self) -> Widget:
        widget: Widget
        if self.choices and self.default is None:  # unset means "the objective's default": blank, not a choice
            widget = Select([(c, c) for c in self.choices], prompt="default", allow_blank=True, id=f"f-{self.key}",
                            compact=True)
        elif self.choices:
            value = self.default if self.default in self.choices else self.choices[0]
            widget = Select([(c, c) for c in self.choices], value=value, allow_blank=False, id=f"f-{self.key}",
                            compact=True)
        else:
            value = self.default if self.kind is str and self.default is not None else ""
            widget = FieldInput(value, placeholder=self.placeholder, id=f"f-{self.key}", compact=True,
                                restrict=self.restrict, refusal=self.refusal)
        widget.tooltip = self.help
        return widget


GPUS = FormField("gpus", "GPUs", int, None, (),
                 "Processes (GPUs) to train on: 1 trains here; more starts a detached run through torchrun "
                 "(`workbench run --gpus N`), one process per GPU.",
                 placeholder="1 (more: a detached torchrun run, one process each)", restrict=r"[0-9]*")


SHOWN_DEFAULTS = ("lr",)
"""Text fields (a number or a word: ``lr`` takes ``auto``) whose placeholder still shows the resolved default."""


def scalar_kind(annotation: Any) -> type | None:
    """``str``, ``int`` or ``float`` for a field typed so (optionally ``| None``); else ``None``."""
    kind, _ = without_none(annotation)
    return kind if kind in (str, int, float) else None


def form_fields() -> dict[str, FormField]:
    """The form's settings, in ``RunSpec`` order, plus ``gpus`` (a launch option, not a spec field)."""
    types = spec_field_types()
    out: dict[str, FormField] = {}
    for spec_field in fields(RunSpec):
        parse = spec_field.metadata.get("parse")
        kind = scalar_kind(types[spec_field.name]) or (str if parse is not None else None)  # a count or a word: text
        if kind is None or spec_field.name in HIDDEN_FIELDS:
            continue  # e.g. the list of probes
        out[spec_field.name] = FormField(
            spec_field.name, LABELS.get(spec_field.name, spec_field.name.replace("_", " ")), kind,
            None if spec_field.default is MISSING else spec_field.default, field_choices(spec_field),
            field_help(spec_field), parse, PLACEHOLDERS.get(spec_field.name, ""),
            NUMBER if kind in (int, float) and parse is None else NUMBER_OR_AUTO if spec_field.name == "lr" else None,
        )
    out[GPUS.key] = GPUS
    return out


ENCODER_OBJECTIVES = ("mlm", "nsp", "sentiment", "ner")
DECODER_OBJECTIVES = ("clm", "generation")
"""Objectives whose run tells its model's kind (qa runs either: its model config decides)."""
FINETUNE_FOR = {True: "generation", False: "sentiment"}
"""The fine-tuning objective ``f`` on a run chooses: by whether the base is a decoder."""


def base_is_decoder(base: str) -> tuple[bool | None, str]:
    """Whether ``base`` (a run or a model folder) is a decoder, and how that is known; ``None``
    when it cannot be told (a hub id, an unreadable config). Reads files: call it in a worker."""
    path = Path(base).expanduser()
    if (path / "run.toml").is_file():
        try:
            objective = str(RunDir(path).read_run_toml().get("spec", {}).get("objective", ""))
        except WorkbenchError:
            objective = ""
        if objective in DECODER_OBJECTIVES or objective in ENCODER_OBJECTIVES:
            kind = "decoder" if objective in DECODER_OBJECTIVES else "encoder"
            return objective in DECODER_OBJECTIVES, f"a {objective} run trains a {kind}"
        path = path / "model"
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        model_type = str(config.get("model_type", ""))
    except (OSError, ValueError, AttributeError):
        return None, "its model config cannot be read"

    if model_type not in DECODER_TYPES and not import_heavy_libraries():  # is_decoder may ask transformers
        return None, "the app is closing"  # the worker was cancelled while the libraries loaded
    decoder = is_decoder(SimpleNamespace(model_type=model_type, is_decoder=bool(config.get("is_decoder")),
                                         is_encoder_decoder=bool(config.get("is_encoder_decoder"))))
    return decoder, f"its {model_type or 'model'} config is a{' decoder' if decoder else 'n encoder'}"


def finetune_objective(base: str) -> tuple[str, str]:
    """The fine-tuning objective for ``base`` ("" if its kind cannot be told) and why."""
    decoder, why = base_is_decoder(base)
    return ("" if decoder is None else FINETUNE_FOR[decoder]), why


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


class ObjectivePane(VerticalScroll):
    """Escape leaves a field (the app's key, for every pane): the pane itself takes the focus."""

    @dataclass
    class Suggested(Message):
        """The fine-tuning objective chosen for a base (``""``: none could be told, ``why`` says why)."""

        base: str
        objective: str
        why: str


    @dataclass
    class Resolved(Message):
        """Defaults resolved for the current form (or why they could not be)."""

        values: dict
        error: str

    HELP_BINDINGS = [
        Binding("enter", "open_field", "Open", tooltip="In a menu: show its choices; in a field: update the defaults line"),
    ]
    """The keys the help screen lists for this pane (the fields' own)."""

    def __init__(self, run_root: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run_root = run_root
        self.fields = form_fields()

    @property
    def spec_numeric_fields(self) -> dict[str, FormField]:
        """The numeric spec settings: their placeholders show the resolved defaults."""
        return {k: f for k, f in self.fields.items() if f.numeric and f is not GPUS}

    def compose(self) -> ComposeResult:
        def row(form_field: FormField) -> ComposeResult:
            with Horizontal(classes="form-row"):
                yield Label(form_field.label, classes="form-label")
                yield form_field.widget()

        for key in MAIN_FIELDS:
            yield from row(self.fields[key])
        yield Static("", id="resolved")
        with Collapsible(title="More settings", id="more-settings"):
            for key, form_field in self.fields.items():
                if key not in MAIN_FIELDS:
                    yield from row(form_field)

    def on_mount(self) -> None:
        self.refresh_defaults()

    def focus_first(self) -> None:
        """Showing the pane puts the cursor on the objective (the corpus was just chosen)."""
        self.query_one("#f-objective").focus()

    def focus_home(self) -> None:
        """Leaving a field (escape): the pane keeps the focus, so s, D and 1-5 are keys again."""
        self.focus()

    # ------------------------------------------------------------------ values
    def _value(self, key: str) -> str:
        widget = self.query_one(f"#f-{key}")
        value = widget.value
        return "" if value is Select.NULL or value is None else str(value).strip()

    def set_corpus(self, name: str) -> None:
        self.query_one("#f-corpus", Input).value = name

    def set_base(self, base: str, *, finetune: bool = False) -> None:
        """Fill in the base; with ``finetune``, also choose the fine-tuning objective that fits
        it (read in a thread worker: ``Suggested`` comes back)."""
        self.query_one("#f-base", Input).value = base
        self.refresh_defaults()
        if finetune:
            self.suggest_objective(base)

    @work(thread=True, exclusive=True, exit_on_error=False, group="finetune-objective")
    def suggest_objective(self, base: str) -> None:
        objective, why = finetune_objective(base)
        self.post_message(self.Suggested(base, objective, why))

    def on_objective_pane_suggested(self, message: ObjectivePane.Suggested) -> None:
        message.stop()
        if self._value("base") != message.base.strip():
            return  # the base was changed meanwhile
        name = Path(message.base).name or message.base
        if not message.objective:
            self.notify(f"Base set to {name}: {message.why}; pick a fine-tuning objective and press s", timeout=5,
                        markup=False)
            return
        self.query_one("#f-objective", Select).value = message.objective
        self.notify(f"Fine-tuning {name} with {message.objective} ({message.why}): press s to start", timeout=5,
                    markup=False)

    def build_spec(self, *, strict: bool = True) -> RunSpec:
        """The spec the form describes; a ``SpecError`` names the field that is wrong (with
        ``strict=False`` an unreadable number is left to its default instead)."""
        values: dict = {"out": str(self.run_root)}
        for key, form_field in self.fields.items():
            text = self._value(key)
            if not text or form_field is GPUS:
                continue
            try:
                values[key] = form_field.convert(text)
            except (ValueError, SpecError) as error:
                if strict:
                    raise self._unreadable(form_field, text, error) from None
        spec = RunSpec(**values)
        spec.validate()
        return spec

    @staticmethod
    def _unreadable(form_field: FormField, text: str, error: Exception) -> SpecError:
        if isinstance(error, SpecError):
            return SpecError(f"{form_field.label}: {error.problem}", where="Objective pane", fix=error.fix)
        return SpecError(f"{form_field.label} {text!r} is not a number", where="Objective pane",
                         fix=f"type a number in '{form_field.label}' or clear it for the default")

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
        self.resolve(spec, {k: f.default for k, f in self.spec_numeric_fields.items()})

    @work(thread=True, exclusive=True, exit_on_error=False, group="resolve")
    def resolve(self, spec: RunSpec, defaults: dict[str, Any]) -> None:
        """Resolve the form with its numbers at their spec defaults: what an empty field means."""
        if not import_heavy_libraries():
            return  # cancelled (the app is quitting): do not hold up its exit

        try:
            resolved, task = resolve_spec(spec.replace(**defaults, name=spec.name or "preview"))
        except SpecError as error:
            self.post_message(self.Resolved({}, error.one_line()))
            return
        flat = resolved.to_dict()
        values = {k: flat.get(k) for k in defaults}
        values.update(lr=resolved.optim.lr, tokenizer=resolved.model.tokenizer, epochs=resolved.train.epochs,
                      parameters=None if resolved.base else scratch_parameters(resolved, task))
        if resolved.base:  # from the base's config: how many parameters the method trains
            from workbench.methods import preview  # loads torch: only when used

            counts = preview(resolved, task)
            if counts is not None:
                values.update(parameters=counts.total, trainable=counts.trainable, method=resolved.method.name)
        self.post_message(self.Resolved(values, ""))

    def on_objective_pane_resolved(self, message: ObjectivePane.Resolved) -> None:
        message.stop()
        self._show_resolved(message.values, message.error)

    def _show_resolved(self, values: dict, error: str) -> None:
        for key in [*self.spec_numeric_fields, *[k for k in SHOWN_DEFAULTS if k in self.fields]]:
            default = values.get(key)
            if key == "eval_interval" and default is None:
                default = "1/10 of the steps"
            self.query_one(f"#f-{key}", Input).placeholder = f"default {_fmt(default)}" if default is not None else ""
        resolved = self.query_one("#resolved", Static)
        if error:
            resolved.update(f"[red]{error}[/red]")
            return
        length = f"{values['max_steps']} steps" if values.get("max_steps") else f"{_fmt(values.get('epochs'))} epochs"
        size = f" · {values['parameters'] / 1e6:.2f}M parameters" if values.get("parameters") else ""
        if values.get("trainable") is not None and values.get("method") != "full":
            share = 100 * values["trainable"] / max(1, values["parameters"])
            size += f" · {values['method']}: {values['trainable'] / 1e6:.2f}M trainable ({share:.2f}%)"
        resolved.update(
            f"[dim]defaults:[/dim] lr {_fmt(values.get('lr'))} · batch {values.get('batch_size')} · "
            f"seq {values.get('seq_len')} · {length} · {values.get('tokenizer')} tokenizer · "
            f"vocab {values.get('vocab_size')}{size}\n[dim]s starts here · D starts detached · empty fields use the defaults[/dim]"
        )

