"""One process, one run's device and precision: the part of ``Accelerator`` the engine calls.

Written by hand because Accelerate keeps a single device-and-precision state per process,
with no public way to change it, while the TUI and in-process sweeps train many runs in one
process, with different precisions and devices, sometimes two at once. Under torchrun each
process trains exactly one run, so there the engine uses Accelerate itself
(``setup.make_accelerator``). This class does what ``Accelerator`` does for one process,
with torch's own autocast and loss scaler, and nothing is shared between runs.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class ScaledOptimizer:
    """fp16: each step goes through the loss scaler, which skips it when a gradient overflowed
    (as Accelerate's optimizer wrapper does). Everything else is the wrapped optimizer's."""

    def __init__(self, optimizer: Any, scaler: torch.amp.GradScaler):
        self.optimizer, self.scaler = optimizer, scaler
        self.step_was_skipped = False

    def step(self) -> None:
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step_was_skipped = self.scaler.get_scale() < scale  # the scaler backs off only on overflow

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


class LocalAccelerator:
    num_processes = 1
    process_index = 0
    is_main_process = True

    def __init__(self, device: str, precision: str):
        self.device = torch.device(device)
        self.dtype = DTYPES.get(precision)
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None
        self.optimizer: Any = None

    def prepare(self, module: Any, optimizer: Any) -> tuple[Any, Any]:
        """The module on the run's device (parameters move in place, so the optimizer and its
        scheduler keep pointing at them) and, under fp16, the optimizer behind the scaler."""
        module.to(self.device)
        self.optimizer = ScaledOptimizer(optimizer, self.scaler) if self.scaler is not None else optimizer
        return module, self.optimizer

    def autocast(self) -> Any:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def clip_grad_norm_(self, parameters: Any, max_norm: float) -> torch.Tensor:
        """The norm of the true gradients: unscaled first under fp16."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer.optimizer)
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    @property
    def optimizer_step_was_skipped(self) -> bool:
        return bool(getattr(self.optimizer, "step_was_skipped", False))

    def unwrap_model(self, module: Any) -> Any:
        return module

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        yield
