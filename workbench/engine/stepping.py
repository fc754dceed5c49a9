"""One optimizer step: micro-batches with gradient accumulation, out-of-memory retry,
clipping, the non-finite guard's verdict, then the optimizer and the schedule.

The ``Stepper`` owns the step count and the micro-batch size: it starts from where set-up
left them (``RunState.start_step``, ``RunState.start_micro_batch``) and is the only piece
that changes them; everything else reads ``stepper.step`` and ``stepper.micro_batch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from workbench.engine import distributed, performance
from workbench.engine.guard import NonFiniteGuard, Verdict
from workbench.engine.order import seed_generators, step_seed
from workbench.engine.plan import halve_lr
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
    def __init__(self, state: RunState, guard: NonFiniteGuard, save: Callable[[int, int], None], emit: Callable[[Any], None]):
        """``save(step, micro_batch)`` writes a checkpoint (before an out-of-memory stop)."""
        self.s = state
        self.guard = guard
        self.save = save
        self.emit = emit
        self.step = state.start_step
        """Optimizer steps taken (a resumed run's count from its checkpoint)."""
        self.micro_batch = state.start_micro_batch
        """Rows per forward pass; halved after an out-of-memory step, the global batch unchanged."""

    def train_step(self) -> StepResult:
        """Train step ``step + 1``; an out-of-memory step is retried with half the micro-batch."""
        s = self.s
        assert s.order is not None
        indices = s.order.indices(self.step)
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
        micro = self.micro_batch
        chunks = [mine[i : i + micro] for i in range(0, len(mine), micro)]
        step_loss, tokens = None, 0
        for index, chunk in enumerate(chunks):  # masks and dropout: a function of (seed, step, row)
            seed_generators(step_seed(s.spec.train.seed, self.step, row=first_row + index * micro), s.accelerator.device)
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
        max_norm = s.spec.optim.max_grad_norm if s.spec.optim.max_grad_norm > 0 else float("inf")
        grad_norm = s.strategy.grad_norm(s.accelerator.clip_grad_norm_(s.module.parameters(), max_norm))
        verdict = self.guard.judge(self.step, loss, grad_norm)  # a stop is raised there
        if verdict is Verdict.ok:
            s.optimizer.step()
            self.guard.after_optimizer_step(self.step, s.accelerator)
        else:
            self.emit(self.guard.skip_message(halve_lr(s.scheduler)))
        s.scheduler.step()
        s.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return StepResult(loss=loss if verdict is Verdict.ok else None, grad_norm=grad_norm, tokens=tokens)

    def after_oom(self) -> None:
        """Free what the failed step held; halve the micro-batch and retry, or stop."""
        s = self.s
        s.optimizer.zero_grad(set_to_none=True)
        if s.device == "cuda":
            torch.cuda.empty_cache()
        if s.strategy.world > 1:  # the other ranks are already inside this step's collectives
            self.stop_distributed()
        failed = self.micro_batch
        self.micro_batch = max(1, failed // 2)
        if s.spec.train.on_oom == "halve" and failed > 1:
            per_rank = s.global_batch // s.strategy.world
            self.emit(Message(text=(
                f"Out of memory at step {self.step + 1}: micro-batch halved to {self.micro_batch} "
                f"({math.ceil(per_rank / self.micro_batch)} accumulation steps, the same effective batch of {s.global_batch}); retrying the step"
            )))
            return
        self.save(self.step, self.micro_batch)  # the checkpoint records the half
        advice = (
            f"resume with `workbench run --resume {s.run_dir.path}`: it continues with micro-batch {failed // 2} and the same effective batch"
            if failed > 1 else "use a smaller --seq-len or model, or a GPU with more memory"
        )
        raise TrainingError(f"out of memory at step {self.step + 1} with micro-batch {failed}; checkpoint saved at step {self.step}", fix=advice)

    def stop_distributed(self) -> None:
        """Out of memory in one of several processes: stop, and make the resume smaller.

        One process retries the step with half the micro-batch. Several cannot: the other
        ranks wait in this step's gradient all-reduce, which the failed rank can no longer
        join, so it exits and torchrun stops the rest. Rank 0 holds the same weights as every
        rank, so when it failed it checkpoints first (a local write, no collective). Any
        other rank leaves ``oom.json`` in the run directory, which the resume reads.
        """
        s = self.s
        failed, half = self.micro_batch, max(1, self.micro_batch // 2)
        if s.strategy.can_checkpoint_alone():
            self.save(self.step, half)  # the checkpoint records the half
        else:
            distributed.record_oom(s.run_dir, half, step=self.step, rank=s.strategy.rank)
        raise TrainingError(
            f"out of memory at step {self.step + 1} on rank {s.strategy.rank} with micro-batch {failed}; "
            "several processes cannot retry a step, so the run stopped (its checkpoints are intact)",
            fix=f"resume with `workbench run --resume {s.run_dir.path} --gpus N`: it continues with micro-batch {half} and the same effective batch"
            if failed > 1 else "use a smaller --seq-len or model, or GPUs with more memory",
        )
