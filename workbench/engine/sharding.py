"""FSDP (``parallel = "fsdp"``): parameters, gradients and optimizer state sharded over ranks.

PyTorch's FSDP2 (``fully_shard``) is applied by the engine itself rather than through an
``accelerate launch`` FSDP config: Accelerate only enables FSDP on CUDA, and doing it here
lets CI run the very same code on CPU processes (gloo), so the sharded path is tested,
not just written. Each repeated block (the largest ``ModuleList``: GPT-2's ``h``, BERT's
``encoder.layer``) becomes one FSDP unit, and the root another.

Checkpoints stay the standard format: the full model and optimizer state are gathered with
``torch.distributed.checkpoint.state_dict`` (a collective every rank joins), loaded into an
unsharded CPU replica of the model on rank 0, and saved from there, with the optimizer state
keyed by parameter position exactly as a single process writes it. A run can therefore
resume sharded, with DDP or in one process, with any number of ranks. The replica is also
what probes, reports and the final ``save_pretrained`` use, since a sharded model can only
run forward with every rank taking part.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks: the children of the largest ``ModuleList`` of one class."""
    best: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > len(best):
            children = list(module)
            if children and len({type(child) for child in children}) == 1:
                best = children
    return best


def shard(model: nn.Module, device: torch.device, world: int) -> nn.Module:
    """``fully_shard`` each block, then the root, on a 1-D mesh of all ranks (in place)."""
    from torch.distributed.device_mesh import init_device_mesh  # torch: loaded on first use
    from torch.distributed.fsdp import fully_shard  # torch: loaded on first use

    model.to(device)
    mesh = init_device_mesh(device.type, (world,))
    for block in repeated_blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def optimizer_names(model: nn.Module) -> list[str]:
    """Parameter names in the optimizer's order (the runner's decay group, then no-decay)."""
    named = list(model.named_parameters())
    return [n for n, p in named if p.ndim >= 2] + [n for n, p in named if p.ndim < 2]


def _options(**kwargs: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions  # torch: loaded on first use

    return StateDictOptions(full_state_dict=True, **kwargs)


def gather_full_model(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every rank must call this; rank 0 gets the full weights on CPU, the others ``{}``."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict  # torch: loaded on first use

    return get_model_state_dict(model, options=_options(cpu_offload=True))


def load_replica(replica: nn.Module, full: dict[str, torch.Tensor]) -> None:
    """Load gathered weights; tied copies (GPT-2's ``lm_head``) may be absent, as the lean
    model has no second name for them."""
    missing, unexpected = replica.load_state_dict(full, strict=False)
    tied = set(getattr(replica, "_tied_weights_keys", None) or ())
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"gathered weights do not match the model: missing {sorted(set(missing) - tied)}, unexpected {unexpected}")


def gather_full_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Every rank must call this; rank 0 gets the optimizer state in single-process form
    (``{"state": {index: ...}, "param_groups": [{"params": [index, ...]}]}``)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict  # torch: loaded on first use

    by_name = get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))
    if not by_name.get("param_groups"):  # ranks other than 0
        return {}
    index = {name: i for i, name in enumerate(optimizer_names(model))}
    return {
        "state": {index[name]: slots for name, slots in by_name["state"].items()},
        "param_groups": [dict(group, params=[index[name] for name in group["params"]]) for group in by_name["param_groups"]],
    }


def load_full_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, full: dict[str, Any]) -> None:
    """Every rank must call this with the full single-process state (read from the checkpoint)."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict  # torch: loaded on first use

    names = optimizer_names(model)
    by_name = {
        "state": {names[int(i)]: slots for i, slots in full["state"].items()},
        "param_groups": [dict(group, params=[names[int(i)] for i in group["params"]]) for group in full["param_groups"]],
    }
    set_optimizer_state_dict(model, optimizer, by_name, options=_options())


class GatheredOptimizer:
    """What ``checkpoint.save_checkpoint`` needs from an optimizer: a full ``state_dict()``."""

    def __init__(self, state: dict[str, Any]):
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state
