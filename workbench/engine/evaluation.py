"""Evaluation: the eval loss and task metrics, then the eval hooks (probes, forgetting)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from workbench.engine import performance
from workbench.engine.events import EvalDone, Event
from workbench.engine.guard import NonFiniteGuard
from workbench.engine.hooks import EvalContext, EvalHook
from workbench.engine.setup import RunState


def perplexity(loss: float | None) -> float:
    if loss is None or not math.isfinite(loss):
        return float("nan")
    return float(math.exp(min(loss, 50.0)))


class Evaluator:
    def __init__(self, state: RunState, guard: NonFiniteGuard, hooks: list[EvalHook], emit: Callable[[Event], None]):
        self.s = state
        self.guard = guard
        self.hooks = hooks
        self.emit = emit

    def __call__(self) -> float:
        """Evaluate at the current step, report it, run the hooks; returns the eval loss."""
        s = self.s
        eval_loss, metrics, has_loss = self.loss_and_metrics()
        if has_loss:
            self.guard.check_eval(eval_loss, s.step)
        s.progress.record(eval_loss)
        self.emit(EvalDone(step=s.step, eval_loss=eval_loss, perplexity=perplexity(eval_loss), metrics=metrics))
        s.strategy.sync_replica(s.module, s.model, s.step)  # probes and reports read s.model
        if s.strategy.is_main:
            context = EvalContext(model=s.model, tokenizer=s.tokenizer, step=s.step, run_dir=s.run_dir.path, emit=self.emit)
            for hook in self.hooks:
                hook(context)
        s.module.train()
        return eval_loss

    @torch.no_grad()
    def loss_and_metrics(self) -> tuple[float, dict[str, float], bool]:
        """Mean loss over a fixed, seeded set of eval batches (the same at every eval).

        With several processes, rank r takes batches r, r + world, ...; the sums are then
        added up across ranks, so the result equals a single process's and eval time falls
        with the number of GPUs. The forward runs on the unwrapped module: DDP's forward
        could start a collective (buffer broadcast) that ranks with fewer batches never join.
        """
        s = self.s
        module = s.accelerator.unwrap_model(s.module)
        module.eval()
        n_eval, batch_size = s.data.num_examples("eval"), s.spec.batch_size or 1
        n_batches = min(s.spec.eval_batches, max(1, math.ceil(n_eval / batch_size)))
        rng_state = torch.get_rng_state()
        loss_sum, loss_batches, totals = torch.zeros((), device=s.accelerator.device), 0, {}
        for b, counts in s.strategy.eval_batches(n_batches):
            indices = list(range(b * batch_size, min(n_eval, (b + 1) * batch_size)))
            if not indices:
                break
            torch.manual_seed(s.spec.seed + 10_007 * (b + 1))  # the same masks at every eval
            batch, _ = s.data.batch("eval", indices)
            batch = performance.to_device(batch, s.accelerator.device)
            with s.accelerator.autocast():
                loss = s.task.eval_step(module, batch, totals if counts else {})
            if counts and loss is not None:
                loss_sum += loss.detach().float()
                loss_batches += 1
        torch.set_rng_state(rng_state)
        loss_sum, loss_batches, totals = s.strategy.add_up(loss_sum, loss_batches, totals)
        eval_loss = float(loss_sum / loss_batches) if loss_batches else float("nan")
        return eval_loss, s.task.finish_metrics(totals), loss_batches > 0
