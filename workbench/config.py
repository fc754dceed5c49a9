"""The run spec: everything that defines an experiment, as one TOML-serialisable dataclass.

Both front ends build a ``RunSpec`` (from flags, a TOML file or TUI fields; all three are
made from the fields below and their metadata) and hand it to the engine, whose
``resolve_spec`` (``engine/spec_resolution.py``) fills the objective-dependent defaults. The
resolved spec (``ResolvedSpec``, grouped and never None where None meant "choose a
default") is written to ``run.toml`` with the same flat keys, so a run can be reproduced or
resumed exactly.

Checking a value's type and range is written here by hand (``checked_value``), not left to
pydantic (2.x, tried with a ``TypeAdapter`` per field): its lax mode takes ``"4"`` and
``True`` for an int, its strict mode refuses ``4.0`` for one (a TOML file may write either),
both take ``inf`` for a float, and every message would still have to be rewritten into this
module's one-line form (the key or flag, what it must be, the fix), so the result was not
shorter. ``without_none`` is the one helper that strips ``| None`` from a field's type.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import re
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import tomli_w

from workbench.errors import SpecError
from workbench.feasibility import MAX_STEPS, MAX_VOCAB, check_time_budget
from workbench.objectives import objective_names

SIZES = ("tiny", "small", "base")
TOKENIZERS = ("auto", "wordpiece", "bpe", "char")
SCHEDULES = ("linear", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_CHOICES = ("auto", "on", "off")
PARALLEL_CHOICES = ("ddp", "fsdp")
NONFINITE_POLICIES = ("stop", "skip")
OOM_POLICIES = ("halve", "stop")
SAMPLING = ("random", "blocks")
HOLDOUTS = ("random", "tail")
REPORT_TO = ("none", "tensorboard", "trackio", "tensorboard,trackio")
"""Where a run's events go besides ``metrics.jsonl`` (``engine/reporting.py``; optional extras)."""
METHODS = ("full", "lora", "frozen")
"""Fine-tuning methods (``workbench/methods.py``): every weight, LoRA adapters, or the head only."""
EVAL_WORDS = ("auto", "all")
"""``eval_batches`` as a word: ``all`` (the whole split), ``auto`` (all of it up to
``EVAL_AUTO_TOKENS``, else a fixed seeded sample of that size)."""
EVAL_AUTO_TOKENS = 2_000_000
ON_OFF = ("on", "off")
"""What a ``--flag/--no-flag`` pair writes into a str field that also takes "auto"."""

DEFAULT_PROBES = (
    "The cat sat on the [MASK].",
    "The dog wagged its",
    "I have a cat. ||| It loves to purr.",
)
"""Seed probes. ``A ||| B`` is a sentence pair (next-sentence prediction)."""

SETTING_FACTS = frozenset({"choices", "short", "flag", "switch", "parse", "metavar",
                           "minimum", "above", "maximum", "below", "check"})
RANGE_WORDS = {"minimum": "at least", "above": "above", "maximum": "at most", "below": "below"}
"""The range facts and how a message writes them ("a number (above 0 and below 1)")."""
SEED_MAX = 2**32 - 1
"""The largest seed every consumer takes (``datasets.shuffle`` stops at 2**32 - 1)."""


def plain_name(value: str) -> None:
    """A run name becomes a folder under ``out``: no path separators, no leading dot."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
        raise SpecError(f"{value!r} is not a plain file name", fix="use letters, digits, '.', '_' and '-' only")


def usable_lr(value: float | str) -> None:
    """A learning rate of 10 or more only diverges; said as a learning rate, not just a number."""
    if isinstance(value, str):  # lr-find: "auto" is the only word parse_lr lets through
        return
    if value >= 10:
        raise SpecError(f"{value:g} is too large for a learning rate", fix="use a learning rate below 10, e.g. 1e-3")


LR_AUTO = "auto"
"""``lr = "auto"``: run the range test (``engine/lr_find.py``) first and train at the lr it suggests."""


def parse_lr(text: str) -> float | str:
    """'auto' or a number ('3e-4'): the CLI and a TOML file may write either (lr-find)."""
    word = text.strip().lower()
    if word == LR_AUTO:
        return LR_AUTO
    try:
        return float(word)
    except ValueError:
        raise SpecError(f"cannot read learning rate {text!r}", fix="write a number such as 3e-4, or auto to find one with lr-find") from None


def module_names(value: str) -> None:
    """``lora_targets``: comma-separated module names (``query,value``), nothing else."""
    names = [name.strip() for name in value.split(",")]
    if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name) for name in names):
        raise SpecError(f"{value!r} is not a comma-separated list of module names", fix="write e.g. query,value or c_attn,c_proj")


def keep_steps_text(value: str) -> None:
    """``keep_steps``: steps (``100,200,400``) or a count spread log-uniformly (``log:4``)."""
    text = value.replace(" ", "")
    if re.fullmatch(r"log:[1-9][0-9]{0,2}", text) or re.fullmatch(r"[1-9][0-9]*(,[1-9][0-9]*)*", text):
        return
    raise SpecError(f"{value!r} is neither a list of steps nor log:COUNT", fix="write e.g. 100,200,400 or log:4")


def not_blank(value: str) -> None:
    """An empty corpus or out path would silently mean the current directory."""
    if not value.strip():
        raise SpecError("is empty", fix="give a name or a path")


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


def parse_eval_batches(text: str) -> int | str:
    """'all', 'auto' or a whole number of batches (the CLI and TOML may write either)."""
    word = text.strip().lower()
    if word in EVAL_WORDS:
        return word
    if word.isdigit() and int(word) >= 1:
        return int(word)
    raise SpecError(f"cannot read eval_batches {text!r}", fix="write all, auto or a number of batches such as 50")


def _setting(help_text: str, default: Any = None, *, default_factory: Any = None, **facts: Any) -> Any:
    """A spec field with everything the front ends need to offer it, so no front end redeclares it.

    ``help_text`` may name ``{choices}``, filled in from ``choices`` when read. The other facts
    (all optional) are: ``choices`` (allowed values, or a function returning them),
    ``short`` (a one-letter CLI alias such as ``-c``), ``flag`` (the CLI name when it is not
    the field's), ``switch`` (a ``--flag/--no-flag`` pair writing these two values),
    ``parse`` (reads the CLI's text, e.g. ``5m``), ``metavar`` (its placeholder), the range
    ``minimum``/``maximum`` (inclusive) and ``above``/``below`` (exclusive), and ``check`` (a
    function that raises ``SpecError`` for a value of the right type that is still unusable).
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

    corpus: str = _setting("Built-in corpus name, local path, or hf:NAME[:CONFIG].", "general", short="-c", check=not_blank)
    objective: str = _setting("What to train: {choices} (fine-tuning ones need --base).", "clm",
                              choices=objective_names, short="-o")
    base: str | None = _setting("Start from this run dir, local HF model dir or hub id.", short="-b")
    method: str = _setting(
        "How a run from --base trains: {choices} (full: every weight; lora: low-rank adapters through peft, the task "
        "head fully trained; frozen: only the task head, or for language modelling only the output layer). An unset "
        "lr is the objective's times 10 for lora and 100 for frozen.", "full",
        choices=METHODS)
    lora_r: int | None = _setting("LoRA rank (method lora; default 8).", minimum=1, maximum=4096)
    lora_alpha: float | None = _setting("LoRA scaling alpha (method lora; default 2 x lora_r).", above=0, maximum=1e6)
    lora_dropout: float | None = _setting("Dropout on the LoRA branch (method lora; default 0.05).", minimum=0, below=1)
    lora_targets: str | None = _setting(
        "Comma-separated module names LoRA adapts (method lora; default: every attention and MLP projection inside the "
        "base's transformer blocks, e.g. query,key,value,dense for BERT and c_attn,c_proj,c_fc for GPT-2).",
        check=module_names)
    size: str = _setting("From-scratch preset: {choices}; fills the shape fields left unset.", "tiny", choices=SIZES)
    n_layer: int | None = _setting("Transformer layers (from scratch; default from --size).", minimum=1, maximum=256)
    n_head: int | None = _setting("Attention heads; must divide d_model (from scratch; default from --size).", minimum=1, maximum=1024)
    d_model: int | None = _setting("Hidden width (from scratch; default from --size).", minimum=1, maximum=65536)
    d_ff: int | None = _setting("Feed-forward width (from scratch; default 4 x d_model).", minimum=1, maximum=262144)
    dropout: float | None = _setting("Dropout on embeddings, attention and residual (from scratch; default 0 for tiny, "
                                     "0.1 otherwise).", minimum=0, below=1)
    max_position: int | None = _setting("Position embeddings, the longest input (from scratch; default the sequence length).",
                                        minimum=1)
    tie_embeddings: str | None = _setting("Share the input embedding with the output layer: {choices} (from scratch; "
                                          "default on).", choices=ON_OFF, switch=ON_OFF)
    tokenizer: str = _setting("{choices} (from scratch only).", "auto", choices=TOKENIZERS)
    vocab_size: int | None = _setting("Vocabulary size for a trained tokenizer.", minimum=1, maximum=MAX_VOCAB)
    eval_corpus: str | None = _setting("Separate evaluation file/folder (default: the corpus's own split).")
    text_column: str | None = _setting("Text column for tabular corpora (auto-detected).")
    label_column: str | None = _setting("Label column for labelled corpora (auto-detected).")
    seq_len: int | None = _setting("Tokens per sequence.", minimum=1)
    batch_size: int | None = _setting("Sequences per optimizer step (per process).", minimum=1)
    grad_accum: int = _setting("Micro-batches accumulated per optimizer step.", 1, minimum=1)
    lr: float | str | None = _setting(  # lr-find: "auto" (parse_lr, usable_lr, requirement)
        "Peak learning rate, or auto: an lr range test (`workbench lr-find`) picks it before training and run.toml "
        "records the lr it found.", above=0, check=usable_lr, parse=parse_lr, metavar="LR|auto")
    schedule: str = _setting("{choices}, after warmup.", "linear", choices=SCHEDULES)
    warmup_ratio: float | None = _setting("Fraction of the steps (or of the time budget) spent warming up (default "
                                          "0.05 for pre-training, 0.1 for fine-tuning).", minimum=0, below=1)
    warmup_steps: int | None = _setting("Warmup in optimizer steps (overrides warmup_ratio).", minimum=0)
    min_lr_ratio: float = _setting("Floor of the linear and cosine decay, as a fraction of the peak lr.", 0.0,
                                   minimum=0, maximum=1)
    beta1: float = _setting("AdamW beta1.", 0.9, minimum=0, below=1)
    beta2: float | None = _setting("AdamW beta2 (default 0.98 for pre-training, 0.999 for fine-tuning).", minimum=0, below=1)
    eps: float = _setting("AdamW epsilon.", 1e-8, above=0, below=1)
    weight_decay: float = _setting("AdamW weight decay (not on biases and norms).", 0.01, minimum=0, maximum=10)
    max_grad_norm: float = _setting("Gradient clipping norm (0 disables).", 1.0, minimum=0)
    on_nonfinite: str = _setting("NaN/Inf loss or gradient: 'stop' the run, or 'skip' the step and halve the lr.", "stop",
                                 choices=NONFINITE_POLICIES)
    max_nonfinite_skips: int = _setting("With on_nonfinite='skip': steps skipped (lr halved each time) before stopping.", 3,
                                        minimum=0)
    on_oom: str = _setting("Out of memory: 'halve' the micro-batch (same effective batch), or 'stop' with a checkpoint.",
                           "halve", choices=OOM_POLICIES)
    max_steps: int | None = _setting("Optimizer steps to train for.", minimum=1, maximum=MAX_STEPS)
    epochs: float | None = _setting("Passes over the training set (used when max_steps is unset).", above=0)
    time_budget: float | None = _setting("Stop after this many seconds (on the command line also 90s, 5m or 1h), "
                                         "checkpointing first.", parse=parse_duration, metavar="DURATION",
                                         above=0, check=check_time_budget)
    eval_interval: int | None = _setting("Evaluate every N steps.", minimum=1)
    eval_batches: int | str = _setting(
        "Batches per periodic evaluation: all (the whole split), auto (all of it up to 2M tokens, else a fixed seeded "
        "sample of that size) or a number (a fixed seeded sample). The final evaluation covers the whole split.",
        "auto", parse=parse_eval_batches, metavar="all|auto|N", minimum=1)
    eval_fraction: float = _setting("Held-out fraction when the corpus has no validation split.", 0.05,
                                    above=0, below=1)
    holdout: str = _setting("How that held-out fraction is taken: {choices} (random documents, seeded; or the end of "
                            "the corpus, as nanoGPT's shakespeare-char).", "random", choices=HOLDOUTS)
    sampling: str | None = _setting("Training windows from packed text (clm, mlm): {choices} (random offsets, "
                                    "nanoGPT-style; or aligned blocks in a seeded order). Default blocks.", choices=SAMPLING)
    log_interval: int = _setting("Read the loss and emit a step event every N steps.", 10, minimum=1)
    save_interval: int | None = _setting("Checkpoint every N steps (default: every eval).", minimum=1)
    keep_checkpoints: int = _setting("Intermediate checkpoints to keep (newest and best always kept).", 2, minimum=0)
    keep_steps: str | None = _setting(
        "Checkpoints kept out of rotation for later fine-tunes (--base RUN@STEP, `workbench transfer`): steps such "
        "as 100,200,400, or log:K for K steps spread log-uniformly over the run, ending at its last (log:4 of 1000 "
        "steps: 125, 250, 500, 1000). Each is saved at that step even off the save interval.", check=keep_steps_text)
    seed: int = _setting("Seed for data order, masking, dropout and initialisation.", 42,
                         minimum=0, maximum=SEED_MAX)
    device: str = _setting("{choices}.", "auto", choices=DEVICES)
    precision: str = _setting("{choices}; auto is bf16 on capable GPUs.", "auto", choices=PRECISIONS)
    compile: str = _setting("torch.compile the model: {choices}; auto is on for small/base presets on CUDA.", "auto",
                            choices=COMPILE_CHOICES, switch=ON_OFF)
    parallel: str = _setting(
        "With several processes (--gpus): ddp (a full replica per GPU) or fsdp (parameters, gradients and "
        "optimizer state sharded over the GPUs, for models too big to replicate).", "ddp", choices=PARALLEL_CHOICES)
    lean_model: str = _setting(
        "Train through a lean twin that shares the transformers model's weights and checkpoints but does less "
        "per step: the lean GPT-2 for clm, the masked-positions-only head for mlm and nsp: {choices}; auto is on "
        "for from-scratch clm and for mlm and nsp.", "auto",
        choices=COMPILE_CHOICES, switch=ON_OFF, flag="lean")
    report_to: str = _setting(
        "Where else the run's metrics go: {choices} (tensorboard: event files in the run's tensorboard/ folder; "
        "trackio: its local store). metrics.jsonl is written either way. Each needs the lm-workbench extra of its name.",
        "none", choices=REPORT_TO)
    probes: list[str] = _setting(
        "Inputs whose predictions are recorded at every eval ('A ||| B' is a pair; repeat the flag for several).",
        default_factory=lambda: list(DEFAULT_PROBES), flag="probe",
    )
    name: str | None = _setting("Run name (default: objective-corpus-timestamp).", check=plain_name)
    out: str = _setting("Directory that holds run directories.", "checkpoints", check=not_blank)

    # ------------------------------------------------------------------ validation
    def validate(self, where: str | None = None, *, flags: Iterable[str] = ()) -> None:
        """Check every setting against its field's type, range, choices and check, so a bad value
        stops here with one line instead of as a traceback mid-run. ``where`` is the file the
        values came from; the settings named in ``flags`` came from the command line and are
        reported as their flag. An int given for a float becomes that float (and 4.0 for an int, 4).
        """
        types_by_name = _field_types()
        flags = set(flags)
        for spec_field in fields(self):
            from_flag = spec_field.name in flags
            name = flag_name(spec_field) if from_flag else spec_field.name
            try:
                value = checked_value(spec_field, types_by_name[spec_field.name], getattr(self, spec_field.name), name)
            except SpecError as error:
                raise SpecError(error.problem, where=None if from_flag else where, fix=error.fix) from None
            setattr(self, spec_field.name, value)

    # ------------------------------------------------------------------ TOML
    def to_dict(self) -> dict[str, Any]:
        """Plain dict without ``None`` values (TOML has no null)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "spec") -> RunSpec:
        """A checked spec from a TOML table; errors name ``source`` (the file) and the key."""
        if not isinstance(data, dict):
            raise SpecError(f"the spec is {type(data).__name__}, not a table of settings", where=source,
                            fix="write one `key = value` line per setting (see `workbench run --help`)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(
                f"unknown setting {unknown[0]!r}",
                where=source,
                fix=f"remove it or use one of: {', '.join(sorted(known))}",
            )
        spec = cls(**data)
        spec.validate(source)
        return spec

    @classmethod
    def from_toml(cls, path: str | Path) -> RunSpec:
        """Load a spec file; a ``[spec]`` table (as in ``run.toml``) is also accepted."""
        path = Path(path)
        data = read_config_toml(path)
        if isinstance(data.get("spec"), dict):
            data = data["spec"]
        return cls.from_dict(data, source=str(path))

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)

    def resumed_with(self, overrides: dict[str, Any], where: str | None = None) -> tuple[RunSpec, list[str]]:
        """This (resumed) spec with a resume's overrides, and one ``key = new (was old)`` per
        change: only how long and where the run goes on may change, not what it trains."""
        refused = sorted(set(overrides) - set(RESUME_OVERRIDES))
        if refused:
            raise SpecError(f"{refused[0]} cannot be changed when resuming", where=where,
                            fix=f"change only {', '.join(RESUME_OVERRIDES)}, or start a new run")
        changes = dict(overrides)
        if "epochs" in changes and "max_steps" not in changes and self.max_steps is not None:
            changes["max_steps"] = None  # max_steps outranks epochs: kept, it would make --epochs do nothing
        resumed = self.replace(**changes)
        resumed.validate(where, flags=overrides)
        lines = [f"{key} = {_shown(getattr(resumed, key))} (was {_shown(getattr(self, key))})" for key in changes]
        return resumed, lines


RESUME_OVERRIDES = ("max_steps", "epochs", "time_budget", "eval_interval", "device")
"""The settings ``--resume`` may change: how long the run goes on and where, not what it trains."""


def read_config_toml(path: Path) -> dict[str, Any]:
    """A ``--config`` file's table; a missing file, bad bytes or bad TOML is one line."""
    if not path.is_file():
        raise SpecError("config file not found", where=str(path), fix="check the path passed to --config")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text (byte {exc.start})", where=str(path), fix="save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"invalid TOML: {exc}", where=str(path), fix="correct the TOML syntax") from None


def _shown(value: Any) -> str:
    return "unset" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


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
    return dict(_field_types())


@functools.lru_cache(maxsize=1)
def _field_types() -> dict[str, Any]:
    """``spec_field_types`` resolved once: ``validate`` runs several times per run."""
    return typing.get_type_hints(RunSpec)


def flag_name(spec_field: dataclasses.Field) -> str:
    """The field's long CLI flag (``--seq-len``, ``--probe``), as ``workbench run`` declares it."""
    return "--" + spec_field.metadata.get("flag", spec_field.name).replace("_", "-")


def without_none(annotation: Any) -> tuple[Any, bool]:
    """``int | None`` -> (int, True); ``list[str]`` -> (list[str], False); ``int | str`` stays
    whole. The one place a spec field's type loses its ``| None`` (the checker below, the CLI's
    flags and the TUI's form all call it)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = [arg for arg in args if arg is not type(None)]
        return (rest[0] if len(rest) == 1 else annotation), len(rest) < len(args)
    return annotation, False


_WRONG = object()


def _as_kind(value: Any, kind: Any) -> Any:
    """``value`` as ``kind`` when it is one (bool is no number; 4.0 is the int 4), else ``_WRONG``.
    For ``int | str`` (a count or a word, as ``eval_batches``) the first that fits."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        for option in typing.get_args(kind):
            typed = _as_kind(value, option)
            if typed is not _WRONG:
                return typed
        return _WRONG
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return _WRONG
    if kind is int:
        return value if isinstance(value, int) else int(value) if math.isfinite(value) and value.is_integer() else _WRONG
    if kind is float:
        try:
            number = float(value)
        except OverflowError:
            return _WRONG
        return number if math.isfinite(number) else _WRONG
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, item) for v in value)
        return list(value) if ok else _WRONG
    return value if isinstance(value, kind) else _WRONG


def _in_range(value: Any, facts: typing.Mapping[str, Any]) -> bool:
    limits = {"minimum": operator.ge, "above": operator.gt, "maximum": operator.le, "below": operator.lt}
    return all(test(value, facts[fact]) for fact, test in limits.items() if fact in facts)


def requirement(spec_field: dataclasses.Field, kind: Any) -> str:
    """What a field takes, in words: "a whole number (at least 1)", "a number (above 0 and below 1)"."""
    nouns = {int: "a whole number", float: "a number", str: "text"}
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and float in typing.get_args(kind):  # lr-find: lr
        noun = f"{LR_AUTO} or a number"
    elif typing.get_origin(kind) in (typing.Union, types.UnionType):  # a count or a word: eval_batches
        noun = f"{', '.join(EVAL_WORDS)} or a whole number"
    else:
        noun = nouns.get(kind, "a list of text")
    limits = [f"{words} {spec_field.metadata[fact]}" for fact, words in RANGE_WORDS.items() if fact in spec_field.metadata]
    return f"{noun} ({' and '.join(limits)})" if limits else noun


def checked_value(spec_field: dataclasses.Field, annotation: Any, value: Any, name: str) -> Any:
    """``value`` made the field's type, or a ``SpecError`` naming ``name`` (a key or a flag) and the fix."""
    kind, optional = without_none(annotation)
    if value is None and optional:
        return None
    parse = spec_field.metadata.get("parse")
    if parse is not None and isinstance(value, str) and kind is not str:
        try:  # a TOML file may write a budget as on the command line ("5m")
            value = parse(value)
        except SpecError as error:
            raise SpecError(f"{name}: {error.problem}", fix=error.fix) from None
    typed = _as_kind(value, kind)
    numeric = isinstance(typed, (int, float)) and not isinstance(typed, bool)
    if typed is _WRONG or (numeric and not _in_range(typed, spec_field.metadata)):
        wanted = requirement(spec_field, kind)
        fix = f"pass {name} {wanted}" if name.startswith("--") else f"set {name} to {wanted}{' in quotes' if kind is str else ''}"
        raise SpecError(f"{name} must be {wanted}, not {value!r}", fix=fix)
    allowed = field_choices(spec_field)
    if allowed and typed not in allowed:
        raise SpecError(f"unknown {spec_field.name} {typed!r}", fix=f"use one of: {', '.join(allowed)}")
    check = spec_field.metadata.get("check")
    if check is not None:
        try:
            check(typed)
        except SpecError as error:
            raise SpecError(f"{name} {error.problem}", fix=error.fix) from None
    return typed


def check_out_dir(out: str, where: str | None = "--out") -> None:
    """``out`` must be a folder, or a path where one can be made: a file there (or above it)
    would otherwise fail as a traceback once the run starts."""
    path = Path(out)
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return
        if candidate.exists() or candidate.is_symlink():  # a file, a FIFO, a dangling link
            above = "" if candidate == path else ", so no folder can be made under it"
            raise SpecError(f"{candidate} is not a folder{above}", where=where,
                            fix="pass --out a folder, or a new path that is not under a file")


# ---------------------------------------------------------------------------- the resolved spec
@dataclass(frozen=True)
class ShapeArgs:
    """A from-scratch model's shape (``--size`` preset plus any shape flags)."""

    n_layer: int
    n_head: int
    d_model: int
    d_ff: int
    dropout: float
    max_position: int
    tie_embeddings: bool


@dataclass(frozen=True)
class ModelArgs:
    size: str
    shape: ShapeArgs | None
    """None: a run from ``--base``, whose own config fixes the shape."""
    tokenizer: str
    """``wordpiece``, ``bpe`` or ``char`` (the one trained from scratch; a base brings its own)."""
    vocab_size: int | None
    """None: a ``char`` tokenizer's vocabulary is the characters the corpus holds."""


@dataclass(frozen=True)
class DataArgs:
    corpus: str
    eval_corpus: str | None
    """None: the corpus's own validation split, or ``eval_fraction`` held out of it."""
    text_column: str | None
    """None: detected when a tabular corpus is read."""
    label_column: str | None
    """None: detected when a labelled corpus is read."""
    seq_len: int
    eval_fraction: float
    holdout: str
    sampling: str | None
    """None: the objective does not train on windows of packed text (sampling does not apply)."""


@dataclass(frozen=True)
class OptimArgs:
    lr: float | str
    """A number, or ``"auto"`` until ``set_up`` runs the range test (``engine/lr_find.settle_auto``)."""
    schedule: str
    warmup_ratio: float
    warmup_steps: int | None
    """None: warmup is ``warmup_ratio`` of the run; set, it overrides the ratio."""
    min_lr_ratio: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    max_grad_norm: float


@dataclass(frozen=True)
class TrainArgs:
    """How long and how a run trains. Its length: ``max_steps`` when set, else ``epochs``,
    else ``time_budget`` alone; ``time_budget`` with a length stops at whichever comes first."""

    batch_size: int
    grad_accum: int
    max_steps: int | None
    epochs: float | None
    time_budget: float | None
    """Seconds; None: no time limit."""
    seed: int
    on_nonfinite: str
    max_nonfinite_skips: int
    on_oom: str
    log_interval: int
    save_interval: int | None
    """None: a checkpoint at every eval."""
    keep_checkpoints: int
    keep_steps: str | None
    """None: no checkpoint is kept out of rotation for later (``RUN@STEP`` bases)."""


@dataclass(frozen=True)
class EvalArgs:
    eval_interval: int | None
    """None: a tenth of the run's steps, known once the data is (``engine/plan.py``)."""
    eval_batches: int | str
    probes: tuple[str, ...]


@dataclass(frozen=True)
class RuntimeArgs:
    device: str
    precision: str
    compile: str
    parallel: str
    lean_model: str
    report_to: str


@dataclass(frozen=True)
class LoraArgs:
    r: int
    alpha: float
    dropout: float
    targets: tuple[str, ...] | None
    """None: every attention and MLP projection in the base's blocks, found when it is loaded."""


@dataclass(frozen=True)
class MethodArgs:
    name: str
    """``full``, ``lora`` or ``frozen``."""
    lora: LoraArgs | None
    """The LoRA settings when ``name`` is ``lora``; None otherwise."""


GROUPS: dict[str, tuple[str, ...]] = {
    "model": ("size", "tokenizer", "vocab_size"),
    "model.shape": ("n_layer", "n_head", "d_model", "d_ff", "dropout", "max_position", "tie_embeddings"),
    "data": ("corpus", "eval_corpus", "text_column", "label_column", "seq_len", "eval_fraction", "holdout", "sampling"),
    "optim": ("lr", "schedule", "warmup_ratio", "warmup_steps", "min_lr_ratio", "beta1", "beta2", "eps", "weight_decay",
              "max_grad_norm"),
    "train": ("batch_size", "grad_accum", "max_steps", "epochs", "time_budget", "seed", "on_nonfinite", "max_nonfinite_skips",
              "on_oom", "log_interval", "save_interval", "keep_checkpoints", "keep_steps"),
    "eval": ("eval_interval", "eval_batches", "probes"),
    "runtime": ("device", "precision", "compile", "parallel", "lean_model", "report_to"),
}
"""Where each flat ``RunSpec`` key lives in a ``ResolvedSpec`` (besides the top level's
objective, base, name and out, and ``method``: ``method.name`` and ``method.lora.*``)."""
LORA_KEYS = {"lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "lora_targets": "targets"}


@dataclass(frozen=True)
class ResolvedSpec:
    """A spec with every default filled in (``engine/spec_resolution.resolve_spec``), grouped
    as the engine reads it. What may be None is a real absence, each said where it is
    declared; no reader fills a default again. ``to_dict`` gives the same flat keys as
    ``RunSpec`` (``run.toml``), and ``RunSpec.from_dict(r.to_dict())`` resolves to ``r`` again."""

    objective: str
    base: str | None
    """None: trained from scratch."""
    name: str
    out: str
    model: ModelArgs
    data: DataArgs
    optim: OptimArgs
    train: TrainArgs
    eval: EvalArgs
    runtime: RuntimeArgs
    method: MethodArgs

    @classmethod
    def from_filled(cls, spec: RunSpec) -> ResolvedSpec:
        """The grouped form of a ``RunSpec`` whose defaults ``resolve_spec`` has filled in."""
        flat = dataclasses.asdict(spec)
        flat["probes"] = tuple(flat["probes"])

        def group(path: str) -> dict[str, Any]:
            return {key: flat[key] for key in GROUPS[path]}

        shape = None
        if spec.base is None:
            shape = ShapeArgs(**{**group("model.shape"), "tie_embeddings": spec.tie_embeddings == "on"})
        lora = None
        if spec.method == "lora":
            targets = tuple(t.strip() for t in spec.lora_targets.split(",")) if spec.lora_targets else None
            lora = LoraArgs(r=flat["lora_r"], alpha=flat["lora_alpha"], dropout=flat["lora_dropout"], targets=targets)
        return cls(objective=spec.objective, base=spec.base, name=flat["name"], out=spec.out,
                   model=ModelArgs(**group("model"), shape=shape), data=DataArgs(**group("data")),
                   optim=OptimArgs(**group("optim")), train=TrainArgs(**group("train")), eval=EvalArgs(**group("eval")),
                   runtime=RuntimeArgs(**group("runtime")), method=MethodArgs(name=spec.method, lora=lora))

    def to_dict(self) -> dict[str, Any]:
        """The flat ``run.toml`` table, keys in ``RunSpec``'s order, without ``None`` values."""
        flat: dict[str, Any] = {"objective": self.objective, "base": self.base, "name": self.name, "out": self.out,
                                "method": self.method.name}
        for path, keys in GROUPS.items():
            owner: Any = self
            for part in path.split("."):
                owner = getattr(owner, part) if owner is not None else None
            flat.update({key: getattr(owner, key) if owner is not None else None for key in keys})
        if self.model.shape is not None:
            flat["tie_embeddings"] = "on" if self.model.shape.tie_embeddings else "off"
        if self.method.lora is not None:
            flat.update({key: getattr(self.method.lora, attr) for key, attr in LORA_KEYS.items()})
            flat["lora_targets"] = ",".join(self.method.lora.targets) if self.method.lora.targets else None
        flat["probes"] = list(self.eval.probes)
        return {f.name: flat[f.name] for f in fields(RunSpec) if flat.get(f.name) is not None}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def as_run_spec(self) -> RunSpec:
        """The flat, editable form (e.g. to change a setting and resolve again)."""
        return RunSpec(**self.to_dict())

    def replace(self, **changes: Any) -> ResolvedSpec:
        """This spec with flat settings changed (``lr=1e-3``, ``vocab_size=257``): values the
        engine settles itself (a found lr, the vocabulary a tokenizer really has), never a
        setting a default would have to fill."""
        return ResolvedSpec.from_filled(self.as_run_spec().replace(**changes))
