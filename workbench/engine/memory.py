"""Will the model fit? Counted on the meta device and compared with the device's memory,
before the run folder is made, the tokenizer trains or a weight is read.

A from-scratch model is built on ``torch.device("meta")`` (shapes only, nothing allocated)
at one and two layers: its parameters grow linearly with the layers, so two counts give
any depth exactly, tied or untied embedding included, and the search for the largest shape
that fits stays quick even for absurd widths. A base is built on meta from its
``config.json``, whose shapes are first compared with the safetensors headers beside it (a
``config.json`` edited away from its weights is named here, not as a loading failure).

The estimate (``feasibility.training_bytes``) counts weights, gradients and AdamW's two
moments; activations come on top, so a refusal is certain, and a pass is no promise.
"""

from __future__ import annotations

import resource
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from workbench import feasibility
from workbench.config import ResolvedSpec
from workbench.errors import BaseModelError


# ---------------------------------------------------------------------- how much memory there is
def _cpu_available() -> tuple[int, str]:
    """RAM a new allocation can have: ``MemAvailable`` (psutil, which Accelerate requires),
    less under a cgroup limit or an address-space limit (``ulimit -v``)."""
    import psutil  # accelerate's dependency: always installed with the workbench

    found = [(int(psutil.virtual_memory().available), "this machine's available RAM")]
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append((max(0, int(limit) - used), "this container's memory limit"))
    except (OSError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        found.append((max(0, soft - _address_space_used()), "the address-space limit (ulimit -v)"))
    return min(found)


def _address_space_used() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def available_memory(device: Any) -> tuple[int, str]:
    """(bytes free, what they are, in words) on the device the run trains on."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"GPU {device.index or 0}'s free memory"
    return _cpu_available()


# ---------------------------------------------------------------------- counting on meta
class _SizedTokenizer:
    """What ``build_model`` reads of a tokenizer, for a vocabulary not trained yet."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size


def scratch_counter(task: Any, spec: ResolvedSpec, vocab: int) -> feasibility.Counter:
    """(d_model, n_layer) -> parameters of ``task``'s from-scratch model of ``spec``'s shape at
    that width and depth (``d_ff`` follows ``d_model`` when it was 4 x d_model)."""
    shape = spec.model.shape
    assert shape is not None, "a from-scratch spec has a resolved shape"
    follows = shape.d_ff == 4 * shape.d_model
    cache: dict[tuple[int, int], int] = {}

    def built(d_model: int, n_layer: int) -> int:
        if (d_model, n_layer) not in cache:
            sized = replace(shape, d_model=d_model, n_layer=n_layer, d_ff=4 * d_model if follows else shape.d_ff)
            with torch.device("meta"):
                model = task.build_model(replace(spec, model=replace(spec.model, shape=sized)), _SizedTokenizer(vocab))
            cache[d_model, n_layer] = sum(p.numel() for p in model.parameters())  # tied weights once
        return cache[d_model, n_layer]

    def count(d_model: int, n_layer: int) -> int:
        one, two = built(d_model, 1), built(d_model, 2)
        return one + (n_layer - 1) * (two - one)

    return count


def check_scratch(task: Any, spec: ResolvedSpec, vocab: int, device: Any, shards: int = 1) -> None:
    """Refuse, in one line, a from-scratch model whose weights, gradients and moments exceed
    the device's memory, naming the largest shape that would fit."""
    shape = spec.model.shape
    assert shape is not None, "a from-scratch spec has a resolved shape"
    count = scratch_counter(task, spec, vocab)
    parameters = count(shape.d_model, shape.n_layer)
    per_parameter = 4 * feasibility.OPTIMIZER_COPIES  # fp32 weights (mixed precision keeps them), all trained
    available, where = available_memory(device)
    needed = per_parameter * parameters // shards
    if needed <= available:
        return
    asked = feasibility.Shape(shape.d_model, shape.n_layer, shape.n_head)
    limit = int(available * feasibility.SUGGESTION_SHARE * shards) // per_parameter
    feasibility.refuse_size(f"a model of d_model {asked.d_model} with n_layer {asked.n_layer} "
                            f"({feasibility.human_count(parameters)} parameters, vocab {vocab})",
                            needed, available, where, feasibility.largest_fitting(count, asked, limit))


def _element_size(config: Any) -> int:
    """Bytes per weight as the base loads (transformers keeps the saved dtype)."""
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype.itemsize if isinstance(dtype, torch.dtype) else 4


def check_base(config: Any, auto_class: Any, model_dir: str | None, device: Any, trains_all: bool,
               where: str, shards: int = 1) -> None:
    """A base whose ``config.json`` disagrees with its weights, or describes a model too big
    for the device, refused before a weight is read."""
    try:
        with torch.device("meta"):
            model = auto_class.from_config(config)
    except Exception as exc:  # noqa: BLE001 - a config transformers cannot build: loading will say more
        raise BaseModelError(f"cannot build a model from its config ({' '.join(str(exc).split())[:200]})", where=where,
                             fix="check config.json (it may not be the one saved with the weights)") from None
    expected = {name: tuple(p.shape) for name, p in model.named_parameters(remove_duplicate=False)}
    folder = Path(model_dir) if model_dir else None
    if folder is not None and folder.is_dir():
        saved = feasibility.folder_shapes(folder)
        mismatch = feasibility.first_mismatch(expected, saved, getattr(model, "base_model_prefix", ""))
        if mismatch is not None:
            name, found, wanted = mismatch
            raise BaseModelError(f"config.json does not match the weights: {name} is {feasibility.shape_text(found)} in the "
                                 f"safetensors files, {feasibility.shape_text(wanted)} by config.json", where=str(folder / "config.json"),
                                 fix="restore the config.json saved with these weights (save_pretrained writes both)")
    total = sum(p.numel() for p in model.parameters())
    needed = feasibility.training_bytes(total, total if trains_all else 0, _element_size(config)) // shards
    available, memory_where = available_memory(device)
    if needed > available:
        raise BaseModelError(f"the base's config.json describes a model of {feasibility.human_count(total)} parameters "
                             f"({_config_shape(config)}), which needs about {feasibility.human_bytes(needed)}"
                             f"{' to train' if trains_all else ''}, and {memory_where} has {feasibility.human_bytes(available)}",
                             where=where, fix="use a smaller base, --method lora or frozen (no gradients or moments for the body), "
                                              "or a device with more memory")


def _config_shape(config: Any) -> str:
    names = {"vocab_size": "vocab_size", "hidden_size": "hidden size", "num_hidden_layers": "layers"}
    parts = [f"{label} {getattr(config, key)}" for key, label in names.items() if isinstance(getattr(config, key, None), int)]
    return ", ".join(parts) or config.model_type


def check_run_fits(spec: ResolvedSpec, task: Any, base_config: Any, base_dir: str | None, device: Any, world: int) -> None:
    """The run's model against the device's memory: the one place that reads the spec here."""
    shards = world if spec.runtime.parallel == "fsdp" else 1
    if base_config is not None:
        check_base(base_config, task.auto_class, base_dir, device, spec.method.name == "full", spec.base, shards)
        return
    vocab = CHAR_VOCAB if spec.model.vocab_size is None else spec.model.vocab_size
    check_scratch(task, spec, vocab, device, shards)


CHAR_VOCAB = 256
"""A ``char`` tokenizer's vocabulary is the characters the corpus holds, unknown before it is read: a few hundred."""
