"""One optimizer step: micro-batches with gradient accumulation, out-of-memory retry,
clipping, the non-finite guard's verdict, then the optimizer and the schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from workbench.engine import distributed, performance
from workbench.engine.guard import NonFiniteGuard
from workbench.engine.order import seed_generators, step_seed
from workbench.engine.setup import RunState
from workbench.errors import TrainingError
from workbench.runs.events import Message


@dataclass
class StepResult:
    loss: torch.Tensor | None
    """The step's mean loss (on the device, not read); None when the step was skipped."""
    grad_norm: torch.Tensor
    tokens: int


class Stepper:
    def __init__(self, state: RunState, guard: NonFiniteGuard, save: Callable[[int], None], emit: Callable[[Any], None]):
        self.s = state
        self.guard = guard
        self.save = save
        self.emit = emit

    def step(self) -> StepResult:
        """Train step ``s.step + 1``; an out-of-memory step is retried with half the micro-batch."""
        s = self.s
        assert s.order is not None
        indices = s.order.indices(s.step)
        while True:
            try:
                loss, tokens = self.forward_backward(indices)
                break
            except torch.OutOfMemoryError:
                self.after_oom()  # halves the micro-batch, or stops the run with a checkpoint
        return self.optimizer_step(loss, tokens)

    def forward_backward(self, indices: list[int]) -> tuple[torch.Tensor, int]:
        """Gradients of the step's global batch, summed over this rank's micro-batches."""
        s, strategy = self.s, self.s.strategy
        mine = strategy.my_rows(indices)
        first_row = strategy.first_row(indices)
        chunks = [mine[i : i + s.micro_batch] for i in range(0, len(mine), s.micro_batch)]
        step_loss, tokens = None, 0
        for index, chunk in enumerate(chunks):  # masks and dropout: a function of (seed, step, row)
            seed_generators(step_seed(s.spec.seed, s.step, row=first_row + index * s.micro_batch), s.accelerator.device)
            batch, n_tokens = s.data.batch("train", chunk)
            batch = performance.to_device(batch, s.accelerator.device)
            with strategy.accumulating(s.module, last=index == len(chunks) - 1):
                with s.accelerator.autocast():
                    loss = s.task.loss(s.module, batch) / len(chunks)
                s.accelerator.backward(loss)
            step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
            tokens += n_tokens * strategy.world
        assert step_loss is not None
        return step_loss, tokens

    def optimizer_step(self, loss: torch.Tensor, tokens: int) -> StepResult:
        s = self.s
        max_norm = s.spec.max_grad_norm if s.spec.max_grad_norm > 0 else float("inf")
        grad_norm = s.strategy.grad_norm(s.accelerator.clip_grad_norm_(s.module.parameters(), max_norm))
        allowed = self.guard.allows(s.step, loss, grad_norm, s.scheduler)
        if allowed:
            s.optimizer.step()
            self.guard.after_optimizer_step(s.step, s.accelerator)
        s.scheduler.step()
        s.optimizer.zero_grad(set_to_none=True)
        s.step += 1
        return StepResult(loss=loss if allowed else None, grad_norm=grad_norm, tokens=tokens)

    def after_oom(self) -> None:
        """Free what the failed step held; halve the micro-batch and retry, or stop."""
        s = self.s
        s.optimizer.zero_grad(set_to_none=True)
        if s.device == "cuda":
            torch.cuda.empty_cache()
        if s.strategy.world > 1:  # the other ranks are already inside this step's collectives
            self.stop_distributed()
        if s.spec.on_oom == "halve" and s.micro_batch > 1:
            s.micro_batch //= 2
            per_rank = s.global_batch // s.strategy.world
            self.emit(Message(text=(
                f"Out of memory at step {s.step + 1}: micro-batch halved to {s.micro_batch} "
                f"({math.ceil(per_rank / s.micro_batch)} accumulation steps, the same effective batch of {s.global_batch}); retrying the step"
            )))
            return
        failed, s.micro_batch = s.micro_batch, max(1, s.micro_batch // 2)  # the checkpoint records the half
        self.save(s.step)
        advice = (
            f"resume with `workbench run --resume {s.run_dir.path}`: it continues with micro-batch {failed // 2} and the same effective batch"
            if failed > 1 else "use a smaller --seq-len or model, or a GPU with more memory"
        )
        raise TrainingError(f"out of memory at step {s.step + 1} with micro-batch {failed}; checkpoint saved at step {s.step}", fix=advice)

    def stop_distributed(self) -> None:
        """Out of memory in one of several processes: stop, and make the resume smaller.

        One process retries the step with half the micro-batch. Several cannot: the other
        ranks wait in this step's gradient all-reduce, which the failed rank can no longer
        join, so it exits and torchrun stops the rest. Rank 0 holds the same weights as every
        rank, so when it failed it checkpoints first (a local write, no collective). Any
        other rank leaves ``oom.json`` in the run directory, which the resume reads.
        """
        s = self.s
        failed, half = s.micro_batch, max(1, s.micro_batch // 2)
        if s.strategy.can_checkpoint_alone():
            s.micro_batch = half  # the checkpoint records the half
            self.save(s.step)
        else:
            distributed.record_oom(s.run_dir, half, step=s.step, rank=s.strategy.rank)
        raise TrainingError(
            f"out of memory at step {s.step + 1} on rank {s.strategy.rank} with micro-batch {failed}; "
            "several processes cannot retry a step, so the run stopped (its checkpoints are intact)",
            fix=f"resume with `workbench run --resume {s.run_dir.path} --gpus N`: it continues with micro-batch {half} and the same effective batch"
            if failed > 1 else "use a smaller --seq-len or model, or GPUs with more memory",
        )
