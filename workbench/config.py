"""The run spec: everything that defines an experiment, as one TOML-serialisable dataclass.

Both front ends build a ``RunSpec`` (from flags, a TOML file or TUI fields), call
``resolve()`` to fill objective-dependent defaults, and hand it to the engine. The resolved
spec is written to ``run.toml`` so a run can be reproduced or resumed exactly.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import tomli_w

from workbench.errors import SpecError

PRETRAIN_OBJECTIVES = ("mlm", "nsp", "clm")
FINETUNE_OBJECTIVES = ("sentiment", "ner", "qa", "generation")
OBJECTIVES = PRETRAIN_OBJECTIVES + FINETUNE_OBJECTIVES
SIZES = ("tiny", "small", "base")
TOKENIZERS = ("auto", "wordpiece", "bpe", "char")
SCHEDULES = ("linear", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_CHOICES = ("auto", "on", "off")
PARALLEL_CHOICES = ("ddp", "fsdp")
NONFINITE_POLICIES = ("stop", "skip")
OOM_POLICIES = ("halve", "stop")

DEFAULT_PROBES = (
    "The cat sat on the [MASK].",
    "The dog wagged its",
    "I have a cat. ||| It loves to purr.",
)
"""Seed probes. ``A ||| B`` is a sentence pair (next-sentence prediction)."""


def _help(text: str, default: Any = None, **kw: Any) -> Any:
    if "default_factory" in kw:
        return field(metadata={"help": text}, **kw)
    return field(default=default, metadata={"help": text})


@dataclass
class RunSpec:
    """One experiment. ``None`` means "choose the default for this objective"."""

    corpus: str = _help("Built-in corpus name, local path, or hf:NAME[:CONFIG].", "general")
    objective: str = _help(f"One of {', '.join(OBJECTIVES)}.", "clm")
    base: str | None = _help("Start from this run dir, local HF model dir or hub id.")
    size: str = _help("From-scratch preset: tiny, small or base.", "tiny")
    tokenizer: str = _help("auto, wordpiece, bpe or char (from scratch only).", "auto")
    vocab_size: int | None = _help("Vocabulary size for a trained tokenizer.")
    eval_corpus: str | None = _help("Separate evaluation file/folder (default: the corpus's own split).")
    text_column: str | None = _help("Text column for tabular corpora (auto-detected).")
    label_column: str | None = _help("Label column for labelled corpora (auto-detected).")
    seq_len: int | None = _help("Tokens per sequence.")
    batch_size: int | None = _help("Sequences per optimizer step (per process).")
    grad_accum: int = _help("Micro-batches accumulated per optimizer step.", 1)
    lr: float | None = _help("Peak learning rate.")
    schedule: str = _help("linear, cosine or constant, after warmup.", "linear")
    warmup_ratio: float = _help("Fraction of steps spent warming up.", 0.05)
    weight_decay: float = _help("AdamW weight decay.", 0.01)
    max_grad_norm: float = _help("Gradient clipping norm (0 disables).", 1.0)
    on_nonfinite: str = _help("NaN/Inf loss or gradient: 'stop' the run, or 'skip' the step and halve the lr.", "stop")
    max_nonfinite_skips: int = _help("With on_nonfinite='skip': steps skipped (lr halved each time) before stopping.", 3)
    on_oom: str = _help("Out of memory: 'halve' the micro-batch (same effective batch), or 'stop' with a checkpoint.", "halve")
    max_steps: int | None = _help("Optimizer steps to train for.")
    epochs: float | None = _help("Passes over the training set (used when max_steps is unset).")
    time_budget: float | None = _help("Stop after this many seconds, checkpointing first.")
    eval_interval: int | None = _help("Evaluate every N steps.")
    eval_batches: int = _help("Batches per evaluation (a fixed, seeded subset).", 20)
    eval_fraction: float = _help("Held-out fraction when the corpus has no validation split.", 0.05)
    log_interval: int = _help("Read the loss and emit a step event every N steps.", 10)
    save_interval: int | None = _help("Checkpoint every N steps (default: every eval).")
    keep_checkpoints: int = _help("Intermediate checkpoints to keep (newest and best always kept).", 2)
    seed: int = _help("Seed for data order, masking, dropout and initialisation.", 42)
    device: str = _help("auto, cpu, cuda or mps.", "auto")
    precision: str = _help("auto (bf16 on capable GPUs), fp32, bf16 or fp16.", "auto")
    compile: str = _help("torch.compile the model: auto (on for small/base presets on CUDA), on or off.", "auto")
    parallel: str = _help(
        "With several processes (--gpus): ddp (a full replica per GPU) or fsdp (parameters, gradients and "
        "optimizer state sharded over the GPUs, for models too big to replicate).", "ddp")
    lean_model: str = _help(
        "Train from-scratch clm with the workbench's lean GPT-2, which shares GPT2LMHeadModel's weights and "
        "checkpoints but has less per-step overhead: auto (on for from-scratch clm), on or off.", "auto")
    probes: list[str] = _help(
        "Inputs whose predictions are recorded at every eval ('A ||| B' is a pair).",
        default_factory=lambda: list(DEFAULT_PROBES),
    )
    name: str | None = _help("Run name (default: objective-corpus-timestamp).")
    out: str = _help("Directory that holds run directories.", "checkpoints")

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Reject impossible settings with a one-line message naming the fix."""
        choices = {
            "objective": OBJECTIVES,
            "size": SIZES,
            "tokenizer": TOKENIZERS,
            "schedule": SCHEDULES,
            "device": DEVICES,
            "precision": PRECISIONS,
            "compile": COMPILE_CHOICES,
            "lean_model": COMPILE_CHOICES,
            "parallel": PARALLEL_CHOICES,
            "on_nonfinite": NONFINITE_POLICIES,
            "on_oom": OOM_POLICIES,
        }
        for key, allowed in choices.items():
            value = getattr(self, key)
            if value not in allowed:
                raise SpecError(
                    f"unknown {key} {value!r}", fix=f"use one of: {', '.join(allowed)}"
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

    @property
    def is_finetune(self) -> bool:
        return self.objective in FINETUNE_OBJECTIVES

    # ------------------------------------------------------------------ TOML
    def to_dict(self) -> dict[str, Any]:
        """Plain dict without ``None`` values (TOML has no null)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "spec") -> "RunSpec":
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
    def from_toml(cls, path: str | Path) -> "RunSpec":
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

    def replace(self, **changes: Any) -> "RunSpec":
        return dataclasses.replace(self, **changes)


def spec_field_help() -> dict[str, str]:
    """Help text per field, for CLI docs and the TUI's form."""
    return {f.name: f.metadata.get("help", "") for f in fields(RunSpec)}
