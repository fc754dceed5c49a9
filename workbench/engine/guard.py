"""The non-finite guard: the one place that decides what a NaN/Inf loss or gradient does.

On CPU (free) and in ``on_nonfinite = "skip"`` mode every step is checked on the host. On a
GPU in stop mode a device-side flag collects the steps instead and is read at each log and
before each save, so no per-step host sync is added. With fp16's loss scaler an infinite
gradient norm is routine (the scaler skips that step and lowers the scale): only the loss
counts then, plus a limit on scaler-skipped steps in a row.
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Any, Callable

import torch

from workbench.errors import TrainingError
from workbench.runs.events import Message

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

MAX_SCALER_SKIPS = 50
"""fp16 steps the loss scaler may skip in a row (the scale halves each time) before the
run is treated as diverged; a healthy run skips a handful at the start and then rarely."""


class Verdict(enum.Enum):
    """The guard's ruling on one optimizer step (``stop`` is raised, never returned)."""

    ok = "ok"
    skip_and_halve_lr = "skip_and_halve_lr"
    stop = "stop"


class NonFiniteGuard:
    def __init__(self, spec: ResolvedSpec, device: torch.device, scaler_active: bool, skips: int, start_step: int,
                 emit: Callable[[Any], None]):
        self.spec = spec
        self.emit = emit
        self.on_device = device.type != "cpu"
        self.every_step = not self.on_device or spec.train.on_nonfinite == "skip"
        self.scaler_active = scaler_active
        self.skips = skips
        self.scaler_skips = 0
        self.seen = torch.zeros((), dtype=torch.bool, device=device)
        self.last_check_step = start_step
        self.skipped = ""
        """What the last skipped step's problem was, for its message."""

    def judge(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> Verdict:
        """What step ``step + 1`` may do: ``ok`` (the optimizer steps), ``skip_and_halve_lr``
        (skip mode: the stepper skips the step and the schedule halves the lr, up to
        ``max_nonfinite_skips`` times), or ``stop``, raised as a ``TrainingError`` naming
        what became non-finite (nothing after the last finite checkpoint is saved)."""
        if not self.every_step:
            bad = ~torch.isfinite(loss) if self.scaler_active else ~(torch.isfinite(loss) & torch.isfinite(grad_norm))
            self.seen |= bad
            return Verdict.ok
        loss_value, norm_value = float(loss), float(grad_norm)
        if math.isfinite(loss_value) and (self.scaler_active or math.isfinite(norm_value)):
            return Verdict.ok
        what, value = ("loss", loss_value) if not math.isfinite(loss_value) else ("gradient norm", norm_value)
        if self.spec.train.on_nonfinite != "skip" or self.skips >= self.spec.train.max_nonfinite_skips:
            self.stop(what, value, at=f"at step {step + 1}", skips=self.skips)
        self.skips += 1
        self.skipped = f"The {what} became {value} at step {step + 1}"
        return Verdict.skip_and_halve_lr

    def skip_message(self, lr: float) -> Message:
        """The line for the step just skipped, once the schedule has halved the lr to ``lr``."""
        return Message(text=f"{self.skipped}: step skipped, learning rate halved to {lr:.3g} "
                            f"({self.skips}/{self.spec.train.max_nonfinite_skips})")

    def after_optimizer_step(self, step: int, accelerator: Any) -> None:
        """fp16: count the scaler's skipped steps in a row (it reads its scale on the host anyway)."""
        if not self.scaler_active:
            return
        self.scaler_skips = self.scaler_skips + 1 if accelerator.optimizer_step_was_skipped else 0
        if self.scaler_skips >= MAX_SCALER_SKIPS:
            self.stop(f"gradient norm (the fp16 loss scaler skipped {self.scaler_skips} steps in a row)",
                      float("inf"), at=f"at step {step + 1}")

    def at_log(self, step: int, mean_loss: float) -> None:
        """The logged mean loss and the device flag since the last log must be finite."""
        if not math.isfinite(mean_loss) or bool(self.seen):
            self.stop("loss", mean_loss, at=f"between steps {self.last_check_step + 1} and {step}")
        self.last_check_step = step

    def before_save(self, step: int) -> None:
        """No checkpoint may hold weights from after a non-finite step (GPU stop mode)."""
        if self.on_device and self.spec.train.on_nonfinite == "stop" and bool(self.seen):
            self.stop("loss or gradient norm", float("nan"), at=f"between steps {self.last_check_step + 1} and {step}")

    def check_eval(self, eval_loss: float, step: int) -> None:
        if not math.isfinite(eval_loss):
            raise TrainingError(
                f"the eval loss became {eval_loss} at step {step}",
                fix=f"lower the learning rate (now --lr {self.spec.optim.lr:g}) or use --precision fp32",
            )

    def stop(self, what: str, value: float, *, at: str, skips: int = 0) -> None:
        """Stop the run: nothing after the last finite checkpoint is saved."""
        skipped = f" after {skips} skipped steps" if skips else ""
        raise TrainingError(
            f"the {what} became {value} {at}{skipped}; no checkpoint was written after it, the last finite one is kept",
            fix=f"lower the learning rate (now --lr {self.spec.optim.lr:g}), use --precision fp32, or set on_nonfinite = \"skip\"; then restart or resume",
        )
