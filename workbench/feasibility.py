"""Can a run do what its settings ask? Bounds and estimates on plain numbers, before anything is spent.

Everything here takes numbers, names and file paths (never the run spec, never torch), so
the same checks serve the CLI, the TUI and the tests. ``engine/memory.py`` counts a model's
parameters on the meta device and asks the device how much memory it has; this module
turns those numbers into a verdict and, when the answer is no, one line that says what
would fit.

Why these bounds:

- ``MAX_STEPS`` (10**9): at a millisecond a step (a tiny model on a GPU) that is 11 days of
  training; the largest published pre-training runs take about 10**6 steps. Beyond it, a
  warmup ratio alone keeps the lr near zero for longer than anyone waits, and the ETA is
  meaningless.
- ``MAX_TIME_BUDGET_S`` (366 days): a budget is a wall-clock promise to stop and save; one
  longer than a year is a typo (``100000000h``), and it stretches the lr schedule over that
  horizon, so the warmup never ends in practice.
- ``MAX_VOCAB`` (1,000,000): four times the largest vocabularies in use (about 256k); the
  tokenizers library aborts the process (a Rust panic, not an exception) well before 10**8.
- ``BPE_MIN_VOCAB`` (257): byte-level BPE always holds the 256 bytes and its end-of-text
  token, so a smaller vocabulary cannot be honoured.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from workbench.errors import BaseModelError, SpecError

MAX_STEPS = 10**9
MAX_TIME_BUDGET_S = 366 * 24 * 3600
MAX_VOCAB = 1_000_000
BPE_MIN_VOCAB = 256 + 1
"""Byte-level BPE: the 256-byte alphabet plus ``<|endoftext|>``."""
OPTIMIZER_COPIES = 4
"""AdamW training holds, per trained parameter: the weight, its gradient and two moments."""
SUGGESTION_SHARE = 0.75
"""A suggested shape fits its weights, gradients and moments in this share of the memory,
leaving the rest for activations (which the estimate does not count)."""


# ---------------------------------------------------------------------- bounds
def check_time_budget(seconds: float) -> None:
    """``time_budget``'s check (``config.py``): a year at most."""
    if seconds > MAX_TIME_BUDGET_S:
        raise SpecError(f"of {seconds / 3600:.4g}h is longer than a year, beyond any run the workbench plans for",
                        fix=f"give at most {MAX_TIME_BUDGET_S // 3600}h (366 days), or use --max-steps")


def check_vocab(tokenizer: str, vocab_size: int | None) -> None:
    """A vocabulary the tokenizer cannot honour, refused before it trains (the upper bound is
    ``vocab_size``'s range; a char vocabulary is the characters seen)."""
    if vocab_size is None or tokenizer == "char":
        return
    if vocab_size > MAX_VOCAB:  # also the field's maximum: this guards specs made in code
        raise SpecError(f"vocab_size {vocab_size} is more than the tokenizers library can train",
                        fix=f"use --vocab-size {MAX_VOCAB} or less")
    if tokenizer == "bpe" and vocab_size < BPE_MIN_VOCAB:
        raise SpecError(f"vocab_size {vocab_size} is below the {BPE_MIN_VOCAB} tokens byte-level BPE always has "
                        "(256 bytes and <|endoftext|>)", fix=f"use --vocab-size {BPE_MIN_VOCAB} or more")


def vocab_adjusted(tokenizer: str, asked: int | None, got: int) -> str:
    """The line a run shows when its trained vocabulary is not the size asked for."""
    why = ("the corpus holds too few distinct pieces for more" if asked is not None and got < asked
           else f"the {tokenizer} tokenizer keeps every character it saw and its special tokens")
    return f"Vocabulary: {got} tokens, not the {asked} asked for ({why}); run.toml records vocab_size = {got}"


def check_warmup(warmup_steps: int | None, total_steps: int | None, how: str = "max_steps") -> None:
    """A warmup as long as the run never reaches the peak lr: the run would train at a
    fraction of the lr asked for, without a word. ``how`` says where the step count came from."""
    if warmup_steps is None or total_steps is None or warmup_steps < total_steps:
        return
    raise SpecError(f"warmup_steps {warmup_steps} is not shorter than the run ({total_steps} steps from {how}), "
                    "so the lr would never reach its peak",
                    fix=f"use --warmup-steps below {total_steps} (e.g. {max(0, total_steps // 10)}), or a longer run")


def check_total_steps(total_steps: int, how: str) -> None:
    """Steps worked out from epochs obey the same horizon as ``max_steps``."""
    if total_steps > MAX_STEPS:
        raise SpecError(f"{how} makes {total_steps} steps, more than the {MAX_STEPS} any run is planned for",
                        fix="use fewer --epochs, or --max-steps")


# ---------------------------------------------------------------------- memory
def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.3g} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1000
    return f"{count:.3g} PB"  # pragma: no cover - the loop returns


def human_count(count: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return str(int(count))


def training_bytes(total: int, trainable: int, element_size: int) -> int:
    """Weights (every parameter) plus, for the trained ones, gradient and two AdamW moments,
    all in the weights' precision (mixed precision keeps fp32 weights). Activations are not
    counted: this is a lower bound."""
    return element_size * (total + (OPTIMIZER_COPIES - 1) * trainable)


@dataclass(frozen=True)
class Shape:
    """A from-scratch shape: what the search varies (``d_ff`` follows ``d_model`` unless fixed)."""

    d_model: int
    n_layer: int
    n_head: int


Counter = Callable[[int, int], int]
"""(d_model, n_layer) -> parameters of that model (all trained)."""


def layers_that_fit(count: Counter, d_model: int, limit: int, most: int) -> int:
    """The most layers (up to ``most``) at ``d_model`` whose parameters stay within ``limit``;
    0 when not even one does. Parameters grow linearly with layers, so two counts suffice."""
    one, two = count(d_model, 1), count(d_model, 2)
    per_layer, fixed = two - one, one - (two - one)
    if one > limit:
        return 0
    return min(most, (limit - fixed) // max(1, per_layer))


def width_that_fits(count: Counter, shape: Shape, limit: int) -> int:
    """The widest ``d_model`` (a multiple of n_head, and of 64 where that fits) with
    ``shape.n_layer`` layers within ``limit`` parameters; 0 when none does."""
    best = 0
    for step in (math.lcm(shape.n_head, 64), shape.n_head):
        low, high = 0, shape.d_model // step  # multiples of step: count(low) fits, count(high + 1) does not
        while low < high:
            middle = (low + high + 1) // 2
            if count(middle * step, shape.n_layer) <= limit:
                low = middle
            else:
                high = middle - 1
        best = low * step
        if best:
            return best
    return best


def largest_fitting(count: Counter, shape: Shape, parameter_limit: int) -> str:
    """In words, the shapes nearest the asked one that fit ``parameter_limit``: fewer layers
    at the same width, or a narrower model with the same layers."""
    options = []
    layers = layers_that_fit(count, shape.d_model, parameter_limit, shape.n_layer)
    if layers >= 1:
        options.append(f"n_layer {layers} at d_model {shape.d_model}")
    width = width_that_fits(count, shape, parameter_limit)
    if width:
        options.append(f"d_model {width} with n_layer {shape.n_layer}")
    if not options:
        return "nothing of this shape fits: lower --vocab-size or --n-head, or use a machine with more memory"
    return "the largest that fits (leaving a quarter for activations) is " + ", or ".join(options)


def refuse_size(what: str, needed: int, available: int, where: str, fix: str) -> None:
    """Raise the one-line refusal when ``needed`` bytes exceed ``available``."""
    if needed <= available:
        return
    raise SpecError(f"{what} needs about {human_bytes(needed)} for weights, gradients and AdamW moments, and {where} "
                    f"has {human_bytes(available)}", fix=fix)


# ---------------------------------------------------------------------- weight files
MAX_HEADER_BYTES = 100 << 20


def safetensors_header(path: Path) -> dict:
    """A safetensors file's header (names -> dtype, shape, offsets; ``__metadata__``), read
    without reading a tensor. A file that is not one raises ``ValueError``."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise ValueError("shorter than a safetensors header")
        (size,) = struct.unpack("<Q", raw)
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"header of {size} bytes")
        text = handle.read(size)
    header = json.loads(text)
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    header = safetensors_header(path)
    return {name: tuple(entry.get("shape", ())) for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict)}


def folder_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a model folder's ``*.safetensors`` files (sharded or not)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            shapes.update(tensor_shapes(path))
        except (OSError, ValueError) as exc:
            raise BaseModelError(f"{path.name} is unreadable ({' '.join(str(exc).split())[:160]})", where=str(path),
                                 fix="check that the folder holds a complete model saved with save_pretrained") from None
    return shapes


def first_mismatch(expected: dict[str, tuple[int, ...]], saved: dict[str, tuple[int, ...]],
                   prefix: str) -> tuple[str, tuple[int, ...], tuple[int, ...]] | None:
    """(name, saved shape, expected shape) of the first weight whose saved shape differs from
    what the config describes. Names may differ by the base model's prefix (a ``BertModel``
    saves ``embeddings...``, a ``BertForX`` holds ``bert.embeddings...``)."""
    for name, shape in saved.items():
        for candidate in (name, f"{prefix}.{name}", name.removeprefix(f"{prefix}.")):
            if candidate in expected:
                if tuple(expected[candidate]) != tuple(shape):
                    return name, tuple(shape), tuple(expected[candidate])
                break
    return None


def shape_text(shape: tuple[int, ...]) -> str:
    return " x ".join(str(n) for n in shape) or "a scalar"


def check_adapter_rank(folder: Path, config: dict) -> None:
    """An adapter whose ``adapter_config.json`` no longer matches its weights (an ``r`` edited,
    targets renamed) would load with its adapters silently dropped: refused in one line."""
    path = Path(folder) / "adapter_model.safetensors"
    try:
        shapes = tensor_shapes(path)
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"adapter_model.safetensors is unreadable ({' '.join(str(exc).split())[:160]})", where=str(path),
                             fix="save the adapter again with PeftModel.save_pretrained") from None
    r = config.get("r")
    ranks = config.get("rank_pattern") or {}
    lora = {name: shape for name, shape in shapes.items() if ".lora_A." in name or ".lora_B." in name}
    if not lora:
        raise BaseModelError("adapter_model.safetensors holds no LoRA weights", where=str(path),
                             fix="save the adapter again with PeftModel.save_pretrained")
    for name, shape in lora.items():
        module = name.split(".lora_")[0]
        wanted = next((v for k, v in ranks.items() if module.endswith(k)), r)
        rank = shape[0] if ".lora_A." in name else shape[-1]
        if len(shape) < 2 or rank != wanted:
            raise BaseModelError(f"adapter_config.json says r = {wanted}, but {name} in adapter_model.safetensors has "
                                 f"rank {rank if len(shape) >= 2 else '?'}", where=str(Path(folder) / "adapter_config.json"),
                                 fix="restore the adapter_config.json saved with these weights")


def check_method_record(saved: dict[str, str], current: dict[str, str], where: str) -> None:
    """A resume whose method or LoRA settings (``run.toml`` edited) differ from those the
    checkpoint was trained with: refused, naming the first. A checkpoint written before the
    settings were recorded holds none, and only its shapes are checked."""
    for key, value in current.items():
        was = saved.get(key)
        if was is not None and was != value:
            raise SpecError(f"{key} is {value} now, but the checkpoint was trained with {key} = {was}", where=where,
                            fix=f"set {key} back to {was} in run.toml (a method's settings cannot change on resume), or start a new run")
