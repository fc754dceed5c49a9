"""GPU speed settings the runner applies, kept here so the training loop stays readable.

Everything here is a no-op on CPU, so the same run code works unchanged on a laptop and on
an H100: TF32 matmuls, SDPA attention, in-place ``torch.compile``, pinned host batches
copied with ``non_blocking``. Mixed precision (bf16 autocast, or fp16 with a gradient
scaler) is Accelerate's ``mixed_precision``; fused AdamW is chosen in the runner.
"""

from __future__ import annotations

from typing import Any

import torch

COMPILE_AUTO_SIZES = ("small", "base")
"""Presets where compiling pays for its start-up minute; tiny models are launch-bound anyway."""


def configure_backends(device: str) -> None:
    """TF32 for float32 matmuls and convolutions on CUDA (Ampere and newer): the fp32 parts
    of a mixed-precision step (optimizer, loss, norms) run on tensor cores."""
    if device != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")


def prefer_sdpa(model: Any) -> None:
    """Use PyTorch's fused scaled-dot-product attention (flash / memory-efficient kernels).

    transformers 5 already picks SDPA for GPT-2 and BERT; this only switches a model that
    ended up on the eager implementation and whose class supports SDPA.
    """
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", "sdpa") != "eager":
        return
    if getattr(model, "_supports_sdpa", False) and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("sdpa")


def should_compile(choice: str, device: str, size: str, from_base: bool) -> bool:
    """``auto`` compiles from-scratch small/base models on CUDA only; ``on``/``off`` force it."""
    if choice == "on":
        return True
    if choice == "off":
        return False
    return device == "cuda" and not from_base and size in COMPILE_AUTO_SIZES


def compile_in_place(model: Any, **options: Any) -> Any:
    """``nn.Module.compile``: the module itself is compiled, so its ``state_dict`` keys stay
    the same (``torch.compile(model)`` would wrap it and prefix every key with ``_orig_mod.``,
    which must never reach a checkpoint)."""
    model.compile(**options)
    return model


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Copy a CPU batch to ``device``; on CUDA through pinned memory so the copy is async
    and overlaps the previous step's kernels (no host sync)."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def adamw_options(device: str) -> dict[str, Any]:
    """Fused AdamW on CUDA. Elsewhere leave ``fused`` unset: an explicit ``fused=False``
    makes torch fall back to its slow per-tensor loop instead of the ``foreach`` one."""
    return {"fused": True} if device == "cuda" else {}


def drop_output_upcast(model: Any) -> None:
    """Undo the forward wrapper ``Accelerator.prepare`` adds under mixed precision.

    That wrapper autocasts and then copies every output to float32: for GPT-2 124M at
    16 x 1024 tokens the logits alone are 3.3 GB written per step. The runner already wraps
    each forward in ``accelerator.autocast()`` and the models compute their losses in
    float32, so the original forward is restored exactly (``accelerate``'s own
    ``keep_fp32_wrapper=False`` unwrapping peels ``functools.wraps`` chains and would also
    strip transformers' own forward decorators). Direct calls on the model (probes, final
    reports) then run in float32 unless they enter autocast themselves.
    """
    original = model.__dict__.pop("_original_forward", None)
    if original is not None:
        model.forward = original
