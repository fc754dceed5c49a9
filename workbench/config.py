"""The run spec: everything that defines an experiment, as one TOML-serialisable dataclass.

Both front ends build a ``RunSpec`` (from flags, a TOML file or TUI fields; all three are
made from the fields below and their metadata) and hand it to the engine, whose
``resolve_spec`` (``engine/spec_resolution.py``) fills the objective-dependent defaults. The
resolved spec is written to ``run.toml`` so a run can be reproduced or resumed exactly.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import tomli_w

from workbench.errors import SpecError
from workbench.tasks import objective_names

SIZES = ("tiny", "small", "base")
TOKENIZERS = ("auto", "wordpiece", "bpe", "char")
SCHEDULES = ("linear", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_CHOICES = ("auto", "on", "off")
PARALLEL_CHOICES = ("ddp", "fsdp")
NONFINITE_POLICIES = ("stop", "skip")
OOM_POLICIES = ("halve", "stop")
ON_OFF = ("on", "off")
"""What a ``--flag/--no-flag`` pair writes into a str field that also takes "auto"."""

DEFAULT_PROBES = (
    "The cat sat on the [MASK].",
    "The dog wagged its",
    "I have a cat. ||| It loves to purr.",
)
"""Seed probes. ``A ||| B`` is a sentence pair (next-sentence prediction)."""

SETTING_FACTS = frozenset({"choices", "short", "flag", "switch", "parse", "metavar"})


def parse_duration(text: str | None) -> float | None:
    """'90', '90s', '5m', '1.5h' -> seconds: a time budget is easier to type with a unit."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not match:
        raise SpecError(f"cannot read time budget {text!r}", fix="write e.g. 90s, 5m or 1h")
    value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if value <= 0:
        raise SpecError("time budget must be positive", fix="write e.g. 90s, 5m or 1h")
    return value


def _setting(help_text: str, default: Any = None, *, default_factory: Any = None, **facts: Any) -> Any:
    """A spec field with everything the front ends need to offer it, so no front end redeclares it.

    ``help_text`` may name ``{choices}``, filled in from ``choices`` when read. The other facts
    (all optional) are: ``choices`` (allowed values, or a function returning them),
    ``short`` (a one-letter CLI alias such as ``-c``), ``flag`` (the CLI name when it is not
    the field's), ``switch`` (a ``--flag/--no-flag`` pair writing these two values),
    ``parse`` (reads the CLI's text, e.g. ``5m``) and ``metavar`` (its placeholder).
    """
    unknown = set(facts) - SETTING_FACTS
    if unknown:
        raise TypeError(f"unknown setting facts: {', '.join(sorted(unknown))}")
    metadata = {"help": help_text, **facts}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunSpec:
    """One experiment. ``None`` means "choose the default for this objective"."""

    corpus: str = _setting("Built-in corpus name, local path, or hf:NAME[:CONFIG].", "general", short="-c")
    objective: str = _setting("What to train: {choices} (fine-tuning ones need --base).", "clm",
                              choices=objective_names, short="-o")
    base: str | None = _setting("Start from this run dir, local HF model dir or hub id.", short="-b")
    size: str = _setting("From-scratch preset: {choices}.", "tiny", choices=SIZES)
    tokenizer: str = _setting("{choices} (from scratch only).", "auto", choices=TOKENIZERS)
    vocab_size: int | None = _setting("Vocabulary size for a trained tokenizer.")
    eval_corpus: str | None = _setting("Separate evaluation file/folder (default: the corpus's own split).")
    text_column: str | None = _setting("Text column for tabular corpora (auto-detected).")
    label_column: str | None = _setting("Label column for labelled corpora (auto-detected).")
    seq_len: int | None = _setting("Tokens per sequence.")
    batch_size: int | None = _setting("Sequences per optimizer step (per process).")
    grad_accum: int = _setting("Micro-batches accumulated per optimizer step.", 1)
    lr: float | None = _setting("Peak learning rate.")
    schedule: str = _setting("{choices}, after warmup.", "linear", choices=SCHEDULES)
    warmup_ratio: float = _setting("Fraction of steps spent warming up.", 0.05)
    weight_decay: float = _setting("AdamW weight decay.", 0.01)
    max_grad_norm: float = _setting("Gradient clipping norm (0 disables).", 1.0)
    on_nonfinite: str = _setting("NaN/Inf loss or gradient: 'stop' the run, or 'skip' the step and halve the lr.", "stop",
                                 choices=NONFINITE_POLICIES)
    max_nonfinite_skips: int = _setting("With on_nonfinite='skip': steps skipped (lr halved each time) before stopping.", 3)
    on_oom: str = _setting("Out of memory: 'halve' the micro-batch (same effective batch), or 'stop' with a checkpoint.",
                           "halve", choices=OOM_POLICIES)
    max_steps: int | None = _setting("Optimizer steps to train for.")
    epochs: float | None = _setting("Passes over the training set (used when max_steps is unset).")
    time_budget: float | None = _setting("Stop after this many seconds (on the command line also 90s, 5m or 1h), "
                                         "checkpointing first.", parse=parse_duration, metavar="DURATION")
    eval_interval: int | None = _setting("Evaluate every N steps.")
    eval_batches: int = _setting("Batches per evaluation (a fixed, seeded subset).", 20)
    eval_fraction: float = _setting("Held-out fraction when the corpus has no validation split.", 0.05)
    log_interval: int = _setting("Read the loss and emit a step event every N steps.", 10)
    save_interval: int | None = _setting("Checkpoint every N steps (default: every eval).")
    keep_checkpoints: int = _setting("Intermediate checkpoints to keep (newest and best always kept).", 2)
    seed: int = _setting("Seed for data order, masking, dropout and initialisation.", 42)
    device: str = _setting("{choices}.", "auto", choices=DEVICES)
    precision: str = _setting("{choices}; auto is bf16 on capable GPUs.", "auto", choices=PRECISIONS)
    compile: str = _setting("torch.compile the model: {choices}; auto is on for small/base presets on CUDA.", "auto",
                            choices=COMPILE_CHOICES, switch=ON_OFF)
    parallel: str = _setting(
        "With several processes (--gpus): ddp (a full replica per GPU) or fsdp (parameters, gradients and "
        "optimizer state sharded over the GPUs, for models too big to replicate).", "ddp", choices=PARALLEL_CHOICES)
    lean_model: str = _setting(
        "Train from-scratch clm with the workbench's lean GPT-2, which shares GPT2LMHeadModel's weights and "
        "checkpoints but has less per-step overhead: {choices}; auto is on for from-scratch clm.", "auto",
        choices=COMPILE_CHOICES, switch=ON_OFF, flag="lean")
    probes: list[str] = _setting(
        "Inputs whose predictions are recorded at every eval ('A ||| B' is a pair; repeat the flag for several).",
        default_factory=lambda: list(DEFAULT_PROBES), flag="probe",
    )
    name: str | None = _setting("Run name (default: objective-corpus-timestamp).")
    out: str = _setting("Directory that holds run directories.", "checkpoints")

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Reject impossible settings with a one-line message naming the fix."""
        for spec_field in fields(self):
            allowed = field_choices(spec_field)
            value = getattr(self, spec_field.name)
            if allowed and value not in allowed:
                raise SpecError(
                    f"unknown {spec_field.name} {value!r}", fix=f"use one of: {', '.join(allowed)}"
                )
        for key in ("seq_len", "batch_size", "max_steps", "eval_interval", "save_interval", "vocab_size"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise SpecError(f"{key} must be positive, got {value}", fix=f"pass a positive --{key.replace('_', '-')}")
        if self.max_nonfinite_skips < 0:
            raise SpecError("max_nonfinite_skips must be 0 or more")
        if self.grad_accum < 1 or self.log_interval < 1 or self.eval_batches < 1:
            raise SpecError("grad_accum, log_interval and eval_batches must be at least 1")
        if self.lr is not None and not (0 < self.lr < 10):
            raise SpecError(f"learning rate {self.lr} is out of range", fix="pass --lr between 0 and 10, e.g. 1e-3")
        if not 0 < self.eval_fraction < 1:
            raise SpecError("eval_fraction must be between 0 and 1")
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise SpecError(
                f"run name {self.name!r} is not a plain file name",
                fix="use letters, digits, '.', '_' and '-' only",
            )

    # ------------------------------------------------------------------ TOML
    def to_dict(self) -> dict[str, Any]:
        """Plain dict without ``None`` values (TOML has no null)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "spec") -> RunSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(
                f"unknown setting {unknown[0]!r}",
                where=source,
                fix=f"remove it or use one of: {', '.join(sorted(known))}",
            )
        spec = cls(**data)
        spec.validate()
        return spec

    @classmethod
    def from_toml(cls, path: str | Path) -> RunSpec:
        """Load a spec file; a ``[spec]`` table (as in ``run.toml``) is also accepted."""
        path = Path(path)
        if not path.is_file():
            raise SpecError("config file not found", where=str(path), fix="check the path passed to --config")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise SpecError(f"not UTF-8 text (byte {exc.start})", where=str(path), fix="save the file as UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"invalid TOML: {exc}", where=str(path), fix="correct the TOML syntax") from None
        if isinstance(data.get("spec"), dict):
            data = data["spec"]
        return cls.from_dict(data, source=str(path))

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)


def field_choices(spec_field: dataclasses.Field) -> tuple[str, ...]:
    """The values a field allows (empty: any), read when asked so a registered objective counts."""
    choices = spec_field.metadata.get("choices", ())
    return tuple(choices() if callable(choices) else choices)


def field_help(spec_field: dataclasses.Field) -> str:
    """A field's help text with its choices written in ("tiny, small or base")."""
    text = spec_field.metadata.get("help", "")
    if "{choices}" not in text:
        return text
    choices = field_choices(spec_field)
    listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else "".join(choices)
    return text.replace("{choices}", listed)


def spec_field_help() -> dict[str, str]:
    """Help text per field, for CLI docs and the TUI's form."""
    return {f.name: field_help(f) for f in fields(RunSpec)}


def spec_field_types() -> dict[str, Any]:
    """Each field's type as an object (``int | None``), not the string the annotations hold."""
    return typing.get_type_hints(RunSpec)
