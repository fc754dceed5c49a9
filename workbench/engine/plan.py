"""How long a run goes, when it evaluates, and the learning-rate schedule that follows it.

A run is measured in steps (``max_steps`` or ``epochs``) or, with a time budget and no
step or epoch limit, in time. Either way the schedule reads one number, the fraction of
the run done, so warmup and decay span the whole run: with a budget, the lr peaks after
warmup and reaches its floor as the budget runs out, instead of following a made-up step
count.

With a budget the fraction is the budget spent, measured at log boundaries (where every
process agrees on one clock reading) and extrapolated per step in between from the
measured seconds per step: the lr stays a function of the step that all ranks share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

BUDGET_EVALS = 10
"""With a budget and no ``eval_interval``: evaluate every tenth of the budget."""


@dataclass
class Plan:
    total_steps: int | None
    """None: until the time budget runs out."""
    budget_s: float | None
    eval_interval: int | None
    """None with a budget: every ``1 / BUDGET_EVALS`` of it."""
    save_interval: int | None
    anchor_step: int = 0
    anchor_fraction: float = 0.0
    fraction_per_step: float = 0.0
    next_eval: float = 1.0 / BUDGET_EVALS
    kept: frozenset[int] = frozenset()
    """Steps saved whatever the save interval, and never rotated away (``keep_steps``)."""

    @property
    def by_time(self) -> bool:
        return self.total_steps is None

    def fraction(self, step: int) -> float:
        """How much of the run is done at ``step`` (0..1)."""
        if self.total_steps is not None:
            return min(1.0, step / max(1, self.total_steps))
        return min(1.0, self.anchor_fraction + (step - self.anchor_step) * self.fraction_per_step)

    def measured(self, step: int, spent_s: float, since_step: int, since_s: float) -> None:
        """A clock reading every rank shares: ``spent_s`` of the budget used at ``step``, and
        ``since_s`` at ``since_step`` (where this process started), for the per-step rate."""
        if self.budget_s is None:
            return
        self.anchor_step, self.anchor_fraction = step, min(1.0, spent_s / self.budget_s)
        if step > since_step:
            self.fraction_per_step = max(0.0, spent_s - since_s) / self.budget_s / (step - since_step)

    def resumed_at(self, step: int, spent_s: float) -> None:
        """Continue the budget's evals after a resume (the next tenth not yet passed)."""
        self.measured(step, spent_s, step, spent_s)
        if self.budget_s is not None:
            self.next_eval = (math.floor(self.anchor_fraction * BUDGET_EVALS) + 1) / BUDGET_EVALS

    def finished(self, step: int) -> bool:
        return self.total_steps is not None and step >= self.total_steps

    def eval_due(self, step: int) -> bool:
        """Called once per step: evaluate now? (Never on the last step: the final eval follows.)"""
        if self.finished(step):
            return False
        if self.eval_interval is not None:
            return step % self.eval_interval == 0
        if self.fraction(step) >= self.next_eval:
            self.next_eval = (math.floor(self.fraction(step) * BUDGET_EVALS) + 1) / BUDGET_EVALS
            return True
        return False

    def save_due(self, step: int, evaluated: bool) -> bool:
        if self.finished(step):
            return False
        if step in self.kept:  # transfer: a kept step is saved even off the save interval
            return True
        return evaluated if self.save_interval is None else step % self.save_interval == 0

    def estimated_total(self, step: int) -> int:
        """Steps the run will take: exact for a step plan, estimated from the rate with a budget."""
        if self.total_steps is not None:
            return self.total_steps
        if self.fraction_per_step <= 0:
            return 0
        return step + math.ceil((1.0 - self.fraction(step)) / self.fraction_per_step)


@dataclass(frozen=True)
class LrShape:
    """The multiplier of the peak lr at a point of the run: warmup, then linear or cosine
    decay to ``floor`` (``min_lr_ratio``), or constant. transformers' ``get_scheduler`` has
    no floor for linear and counts only steps, so this is written out (its formulas, plus
    the floor and the fraction of a budget)."""

    schedule: str
    floor: float
    warmup_steps: int | None
    warmup_fraction: float

    def __call__(self, plan: Plan, step: int) -> float:
        if plan.total_steps is not None:
            return self.by_steps(step, plan.total_steps)
        return self.by_time(plan, step)

    def by_steps(self, step: int, total: int) -> float:
        """transformers' step formulas (``get_linear_schedule_with_warmup``...), plus the floor."""
        warmup = self.warmup_steps if self.warmup_steps is not None else int(self.warmup_fraction * total)
        if step < warmup:
            return step / max(1, warmup)
        span = max(1, total - warmup)
        return self.decayed((step - warmup) / span, remaining=(total - step) / span)

    def by_time(self, plan: Plan, step: int) -> float:
        """The same shape over the fraction of the budget spent (warmup in steps if given so)."""
        fraction = plan.fraction(step)
        if self.warmup_steps is not None:
            if step < self.warmup_steps:
                return step / max(1, self.warmup_steps)
            warm_end = plan.fraction(self.warmup_steps) if self.warmup_steps else 0.0
        else:
            warm_end = self.warmup_fraction
            if fraction < warm_end:
                return fraction / warm_end
        return self.decayed((fraction - warm_end) / max(1e-12, 1.0 - warm_end))

    def decayed(self, progress: float, remaining: float | None = None) -> float:
        """``remaining`` (1 - progress, computed as transformers does): the same floats."""
        if self.schedule == "constant":
            return 1.0
        progress = min(1.0, max(0.0, progress))
        if self.schedule == "linear":
            decay = max(0.0, min(1.0, remaining if remaining is not None else 1.0 - progress))
        else:
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.floor + (1.0 - self.floor) * decay


def make_scheduler(optimizer: Any, plan: Plan, spec: ResolvedSpec) -> Any:
    """A ``LambdaLR`` over the plan: its state (step count, base lrs) saves and resumes as
    transformers' schedulers do."""
    from torch.optim.lr_scheduler import LambdaLR  # torch: loaded on first use

    shape = LrShape(spec.optim.schedule, spec.optim.min_lr_ratio, spec.optim.warmup_steps, spec.optim.warmup_ratio)  # resolved: never None
    return LambdaLR(optimizer, lambda step: shape(plan, step))


def halve_lr(scheduler: Any) -> float:
    """Halve the schedule's peak lr from here on (a skipped non-finite step, ``on_nonfinite =
    "skip"``); returns the new peak. ``LambdaLR`` has no public setter: the peak lives in its
    ``base_lrs``, which its ``state_dict`` saves, so a resumed run keeps the halving."""
    scheduler.base_lrs = [lr * 0.5 for lr in scheduler.base_lrs]
    return float(scheduler.base_lrs[0])
