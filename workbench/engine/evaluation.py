"""Evaluation: the eval loss and task metrics, then the eval hooks (probes, forgetting).

``measure`` is the one eval loop: the run's periodic and final evals and the forgetting
check (``engine/hooks/forgetting.py``) all go through it. ``EvalContext`` is what a hook
sees; ``engine/hooks`` (which imports this module, never the reverse) makes the hooks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from workbench.config import EVAL_AUTO_TOKENS
from workbench.engine import performance
from workbench.engine.guard import NonFiniteGuard
from workbench.engine.setup import RunState
from workbench.objectives import perplexity
from workbench.runs.events import EvalDone, Event, Message
from workbench.tasks.base import BlockData

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

_EXAMPLES, _TOKENS = "_eval_examples", "_eval_tokens"
"""Private keys that carry the coverage counts through ``add_up`` with the task's sums."""


def percent(fraction: float) -> str:
    """A share for people: a tiny sample must not read as 0%, nor a near-whole one as 100%."""
    if 0.995 <= fraction < 1:
        return ">99%"
    if fraction >= 0.01 or fraction <= 0:
        return f"{fraction:.0%}"
    return f"{fraction:.1%}" if fraction >= 0.001 else "<0.1%"


@dataclass(frozen=True)
class EvalSet:
    """The eval examples an evaluation runs, in order; batches are consecutive slices of it."""

    indices: Sequence[int]
    """A ``range`` for the whole split (no list of millions), else the sorted sample."""
    total: int
    """Examples in the eval split."""
    unit: str
    """What an example is called: ``blocks`` (packed text) or ``examples``."""

    @property
    def sampled(self) -> bool:
        return len(self.indices) < self.total

    def describe(self, examples: int) -> str:
        if examples >= self.total:
            return f"whole eval split ({self.total:,} {self.unit})"
        return f"seeded sample: {examples:,} of {self.total:,} {self.unit} ({percent(examples / self.total)})"


def seeded_sample(total: int, size: int, seed: int) -> list[int]:
    """``size`` of ``range(total)``, sorted, drawn from the run's seed alone: every eval, and
    a resumed run's, scores the same examples, so eval losses stay comparable."""
    generator = torch.Generator().manual_seed(seed + 7)
    return sorted(torch.randperm(total, generator=generator)[:size].tolist())


def example_tokens(data: Any, spec: ResolvedSpec) -> int:
    """Tokens per eval example: exact for blocks; ``seq_len`` (an upper bound) for rows,
    so choosing the eval set never tokenizes or pads anything."""
    if isinstance(data, BlockData):
        shape = getattr(data.eval, "shape", ())
        if len(shape) > 1:
            return int(shape[1])
    return spec.data.seq_len


def periodic_size(choice: int | str, total: int, batch_size: int, per_example: int) -> int:
    """Examples a periodic eval covers: ``all``; ``auto`` (all up to ``EVAL_AUTO_TOKENS``, else
    whole batches holding about that many); or N batches."""
    if choice == "all":
        return total
    if choice == "auto":
        if total * per_example <= EVAL_AUTO_TOKENS:
            return total
        wanted = max(1, EVAL_AUTO_TOKENS // max(1, per_example))
        return min(total, math.ceil(wanted / batch_size) * batch_size)
    return min(int(choice) * batch_size, total)


def eval_set(data: Any, spec: ResolvedSpec, whole: bool = False) -> EvalSet:
    """The examples an eval runs under ``spec.eval.eval_batches`` (all of them when ``whole``)."""
    total = data.num_examples("eval")
    unit = "blocks" if isinstance(data, BlockData) else "examples"
    batch_size = spec.train.batch_size
    size = total if whole else periodic_size(spec.eval.eval_batches, total, batch_size, example_tokens(data, spec))
    indices: Sequence[int] = range(total) if size >= total else seeded_sample(total, size, spec.train.seed)
    return EvalSet(indices=indices, total=total, unit=unit)


@dataclass
class EvalContext:
    """What an eval hook sees after each eval (``engine/hooks``), never the run itself."""

    model: Any
    """transformers' model (its train/eval mode is restored by the hook)."""
    tokenizer: Any
    step: int
    run_dir: Path
    emit: Callable[[Event], None]


@dataclass
class Measured:
    """One eval's result, added up across ranks."""

    loss: float
    metrics: dict[str, float]
    has_loss: bool
    examples: int
    tokens: int


class Evaluator:
    def __init__(self, state: RunState, guard: NonFiniteGuard, hooks: Sequence[Callable[[EvalContext], None]],
                 emit: Callable[[Event], None]):
        self.s = state
        self.guard = guard
        self.hooks = hooks
        self.emit = emit
        self._periodic: EvalSet | None = None

    def periodic_set(self) -> EvalSet:
        """Chosen once (the data is loaded by now); a sample is said once, with its size."""
        if self._periodic is None:
            self._periodic = chosen = eval_set(self.s.data, self.s.spec)
            if chosen.sampled:
                n = len(chosen.indices)
                self.emit(Message(text=f"Periodic evals use a fixed seeded sample of {n:,} of {chosen.total:,} eval "
                                       f"{chosen.unit} ({percent(n / chosen.total)}); the final eval covers the whole "
                                       "split (eval_batches = all evaluates all of it every time)"))
        return self._periodic

    def __call__(self, step: int, whole: bool = False) -> float:
        """Evaluate at ``step`` (the stepper's count), report it and what it covered, run the hooks; returns
        the eval loss. ``whole``: every eval example whatever ``eval_batches`` says (the final
        eval, so the loss a run ends with is the validation loss, not a slice's)."""
        s = self.s
        chosen = eval_set(s.data, s.spec, whole=True) if whole else self.periodic_set()
        result = self.loss_and_metrics(chosen)
        if result.has_loss:
            self.guard.check_eval(result.loss, step)
        s.progress.record(result.loss)
        fraction = result.examples / chosen.total if chosen.total else 1.0
        text = chosen.describe(result.examples) + ("; task metrics on the same examples" if result.metrics else "")
        s.progress.coverage = {"examples": result.examples, "tokens": result.tokens, "fraction": fraction, "text": text}
        self.emit(EvalDone(step=step, eval_loss=result.loss, perplexity=perplexity(result.loss) if s.task.lm_loss else None, metrics=result.metrics,
                           examples=result.examples, tokens=result.tokens, fraction=fraction, coverage=text))
        s.strategy.sync_replica(s.module, s.model, step)  # probes and reports read s.model
        if s.strategy.is_main:
            context = EvalContext(model=s.model, tokenizer=s.tokenizer, step=step, run_dir=s.run_dir.path, emit=self.emit)
            for hook in self.hooks:
                hook(context)
        s.module.train()
        return result.loss

    def loss_and_metrics(self, chosen: EvalSet) -> Measured:
        """Mean loss and task metrics of the module being trained over ``chosen`` (``measure``).
        The forward runs on the unwrapped module: DDP's forward could start a collective
        (buffer broadcast) that ranks with fewer batches never join."""
        s = self.s
        module = s.accelerator.unwrap_model(s.module)
        module.eval()
        routine = EvalPass(module=module, task=s.task, data=s.data, batch_size=s.spec.train.batch_size, seed=s.spec.train.seed,
                           device=s.accelerator.device, autocast=s.accelerator.autocast, strategy=s.strategy)
        return measure(routine, chosen)


@dataclass(frozen=True)
class EvalPass:
    """What one pass over an eval set runs: the module (already in eval mode), the task that
    scores a batch (``eval_step``, ``finish_metrics``), its data, and where it runs."""

    module: Any
    task: Any
    data: Any
    batch_size: int
    seed: int
    """Seeds each batch's masks: ``seed + 10_007 * (batch + 1)``, the same at every eval."""
    device: Any
    autocast: Callable[[], Any] = contextlib.nullcontext
    strategy: Any = None
    """Which batches this rank runs and how sums add up across ranks; None: one process, every batch."""


@torch.no_grad()
def measure(routine: EvalPass, chosen: EvalSet) -> Measured:
    """Mean loss and task metrics over ``chosen``'s batches (its consecutive slices): the one
    eval loop, used by every eval and by the forgetting check.

    A batch's masks are seeded by its position in ``chosen``, so a fixed set gets the same
    masks at every eval. With several processes, rank r takes batches r, r + world, ...; the
    sums are then added up across ranks, so the result equals a single process's and eval
    time falls with the number of GPUs. The global RNG state is restored afterwards.
    """
    r, strategy, batch_size = routine, routine.strategy, routine.batch_size
    n_batches = math.ceil(len(chosen.indices) / batch_size)
    rng_state = torch.get_rng_state()
    loss_sum, loss_batches, totals = torch.zeros((), device=r.device), 0, {}
    examples = tokens = 0
    for b, counts in strategy.eval_batches(n_batches) if strategy is not None else ((b, True) for b in range(n_batches)):
        indices = list(chosen.indices[b * batch_size:(b + 1) * batch_size])
        torch.manual_seed(r.seed + 10_007 * (b + 1))  # the same masks at every eval
        batch, batch_tokens = r.data.batch("eval", indices)
        batch = performance.to_device(batch, r.device)
        with r.autocast():
            loss = r.task.eval_step(r.module, batch, totals if counts else {})
        if counts:
            examples, tokens = examples + len(indices), tokens + int(batch_tokens)
        if counts and loss is not None:
            loss_sum += loss.detach().float()
            loss_batches += 1
    torch.set_rng_state(rng_state)
    totals = {**totals, _EXAMPLES: examples, _TOKENS: tokens}
    if strategy is not None:
        loss_sum, loss_batches, totals = strategy.add_up(loss_sum, loss_batches, totals)
    examples, tokens = int(totals.pop(_EXAMPLES)), int(totals.pop(_TOKENS))
    eval_loss = float(loss_sum / loss_batches) if loss_batches else float("nan")
    return Measured(loss=eval_loss, metrics=r.task.finish_metrics(totals), has_loss=loss_batches > 0,
                    examples=examples, tokens=tokens)
