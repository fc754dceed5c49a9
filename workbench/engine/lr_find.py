"""The learning-rate range test: train a throwaway copy of the run's model for about 100
steps at an exponentially rising lr, and suggest the lr where the loss fell fastest.

Written here rather than taken from Lightning's ``Tuner.lr_find`` or fastai's ``lr_find``
because both drive their own trainers (a ``LightningModule``, a ``Learner``), and the point
is to test exactly what ``workbench run`` would train: the same model, method, data order,
batch, AdamW settings and precision, built by the functions ``set_up`` calls, through the
same ``Stepper``. What it copies from them: the exponential schedule (Lightning's ``mode
= "exponential"``), the smoothed loss (a bias-corrected moving average, beta 0.98), the
early stop (the smoothed loss above 4x its best) and Lightning's suggestion (the steepest
negative gradient of the smoothed loss against log lr, the first tenth of the points and
the last skipped). fastai's newer default, ``valley``, is close to it; ``min-loss/10`` (fastai's old
one) is the fallback when the curve is too short for a gradient.

No run directory is made or touched: the only file the test may write is the token cache
the run itself would use.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from workbench.config import LR_AUTO, RunSpec
from workbench.engine import memory
from workbench.engine.guard import Verdict
from workbench.engine.setup import (
    Inputs,
    RunState,
    make_accelerator,
    make_training_module,
    plan_batches,
    prepare_method,
    read_inputs,
    tokenizer_and_model,
)
from workbench.engine.spec_resolution import resolve_spec
from workbench.engine.stepping import Stepper
from workbench.engine.strategy import strategy_for
from workbench.errors import SpecError, TrainingError
from workbench.quiet import quiet_libraries
from workbench.runs.events import Message

SKIP_BEGIN, SKIP_END = 0.1, 1
"""Points left out of the suggestion (Lightning's defaults, 10 of its 100 steps): the first
tenth, where the average has little history, and the last, usually the divergence itself."""
MIN_STEPS = 8


@dataclass(frozen=True)
class RangeTest:
    """How the range test runs: ``steps`` optimizer steps from ``min_lr`` to ``max_lr``."""

    steps: int = 100
    min_lr: float = 1e-7
    max_lr: float = 1.0
    diverge: float = 4.0
    """Stop once the smoothed loss is above this many times its lowest value."""
    beta: float = 0.98
    """Smoothing of the loss (an exponential moving average, bias-corrected)."""

    def check(self) -> None:
        """Each bad setting as one line naming its ``workbench lr-find`` flag."""
        if self.steps < MIN_STEPS:
            raise SpecError(f"--steps must be at least {MIN_STEPS}, not {self.steps}",
                            fix="pass e.g. --steps 100 (the suggestion needs a few points past the first tenth)")
        if not (0 < self.min_lr < self.max_lr < 10):
            raise SpecError(f"--min-lr {self.min_lr:g} and --max-lr {self.max_lr:g} are not a range of learning rates",
                            fix="pass 0 < --min-lr < --max-lr < 10, e.g. --min-lr 1e-7 --max-lr 1")
        if not self.diverge > 1:
            raise SpecError(f"--diverge must be above 1, not {self.diverge:g}", fix="pass e.g. --diverge 4 (stop at 4x the best loss)")

    def lr_at(self, step: int) -> float:
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.steps - 1))


AUTO_TEST = RangeTest()
"""The test ``--lr auto`` runs (``workbench lr-find`` takes its settings as flags)."""


@dataclass
class Finding:
    """The curve (one point per step taken) and what it suggests."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    """Each step's training loss, averaged over that step's batch (before the update)."""
    smoothed: list[float] = field(default_factory=list)
    suggested: float | None = None
    rule: str = ""
    """``steepest`` or ``min-loss/10``: how ``suggested`` was picked."""
    reason: str = ""
    stopped: str = ""
    default_lr: float | None = None
    """The lr the run would use without ``--lr auto`` (the objective's and method's default)."""
    batch: int = 0

    def found_by(self) -> str:
        """One line for ``run.toml``: what the lr is and how it was found."""
        tried = f"{len(self.lrs)} steps of batch {self.batch} from {self.lrs[0]:.1e} to {self.lrs[-1]:.1e}" if self.lrs else "no steps"
        return f"lr-find: {self.reason}; {tried}, {self.stopped}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smooth(losses: list[float], beta: float) -> list[float]:
    """fastai's and Lightning's smoothed loss: a moving average, bias-corrected at the start."""
    average, out = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float | None, str, str]:
    """(lr, rule, why): the steepest descent of the smoothed loss against log lr, or min-loss/10."""
    points = list(zip(lrs, smoothed))[max(1, round(SKIP_BEGIN * len(lrs))) : len(lrs) - SKIP_END]
    if len(points) < 3:
        if not smoothed:
            return None, "", "no step finished"
        best = min(range(len(smoothed)), key=smoothed.__getitem__)
        lr = lrs[best] / 10
        return lr, "min-loss/10", f"a tenth of {lrs[best]:.1e}, where the smoothed loss was lowest (too few points for a gradient)"
    logs = [math.log10(lr) for lr, _ in points]
    losses = [loss for _, loss in points]
    slopes = [(losses[min(i + 1, len(losses) - 1)] - losses[max(i - 1, 0)]) / (logs[min(i + 1, len(logs) - 1)] - logs[max(i - 1, 0)])
              for i in range(len(losses))]  # numpy.gradient's central differences, as Lightning takes them
    steepest = min(range(len(slopes)), key=slopes.__getitem__)
    if slopes[steepest] >= 0:
        return None, "", f"the smoothed loss never fell between {lrs[0]:.1e} and {lrs[-1]:.1e}"
    low = high = steepest  # where it fell at least half as fast as at its steepest
    while low > 0 and slopes[low - 1] <= slopes[steepest] / 2:
        low -= 1
    while high < len(slopes) - 1 and slopes[high + 1] <= slopes[steepest] / 2:
        high += 1
    lr = points[steepest][0]
    return lr, "steepest", (f"steepest descent of the smoothed loss ({slopes[steepest]:.2f} per decade), "
                            f"between {points[low][0]:.1e} and {points[high][0]:.1e} where it fell fastest")


class _EveryStep:
    """The range test's guard: every step is taken; a NaN/Inf loss ends the test (divergence)."""

    def judge(self, step: int, loss: Any, grad_norm: Any) -> Verdict:
        return Verdict.ok

    def after_optimizer_step(self, step: int, accelerator: Any) -> None:
        return None


def throwaway_state(inputs: Inputs, test: RangeTest, emit: Callable[[Any], None]) -> RunState:
    """The run's model, data, batch plan and optimizer, as ``set_up`` makes them, with no run
    directory; its schedule replaced by the test's exponential one."""
    from torch.optim.lr_scheduler import LambdaLR  # torch: loaded with the engine, never for --help

    # compile off: it changes the speed, not the curve; no warmup or decay: the test's own schedule
    spec = inputs.spec.replace(lr=test.min_lr, max_steps=test.steps, epochs=None, time_budget=None, warmup_steps=0,
                               schedule="constant", compile="off", on_oom="halve")
    accelerator, device, precision = make_accelerator(spec)
    strategy = strategy_for(accelerator, spec.runtime.parallel, precision)
    base_dir = inputs.base_ref.model_dir if inputs.base_ref is not None else None  # sizes checked before memory is spent
    memory.check_run_fits(spec, inputs.task, inputs.base_config, base_dir, accelerator.device, accelerator.num_processes)
    trial = Inputs(spec, inputs.task, inputs.corpus, inputs.checked, inputs.base_ref, inputs.base_config, None)
    tokenizer, model = tokenizer_and_model(trial, None, emit)
    model = prepare_method(model, trial, None, emit)
    data = inputs.task.prepare(inputs.corpus, tokenizer, spec, inputs.checked)
    state = RunState(spec=spec, task=inputs.task, run_dir=None, accelerator=accelerator,  # type: ignore[arg-type]  # none: nothing is written
                     strategy=strategy, device=device, precision=precision, tokenizer=tokenizer, model=model, data=data)
    plan_batches(state)
    make_training_module(state, emit)
    state.scheduler = LambdaLR(state.optimizer, lambda step: (test.max_lr / test.min_lr) ** (min(step, test.steps - 1) / (test.steps - 1)))
    return state


def run_range(state: RunState, test: RangeTest, emit: Callable[[Any], None]) -> Finding:
    """Step until ``test.steps`` or until the smoothed loss diverges; the curve and its suggestion."""

    def out_of_memory(step: int, micro_batch: int) -> None:
        raise TrainingError(f"out of memory in the lr range test at step {step + 1} with micro-batch 1",
                            fix="use a smaller --batch-size or --seq-len")

    found = Finding(batch=state.global_batch)
    stepper = Stepper(state, _EveryStep(), out_of_memory, emit)  # type: ignore[arg-type]  # the guard's two calls
    state.module.train()
    found.stopped = f"reached --max-lr {test.max_lr:.1e}"
    for step in range(test.steps):
        lr = state.optimizer.param_groups[0]["lr"]
        loss = float(stepper.train_step().loss)  # type: ignore[arg-type]  # every step is allowed: never None
        if not math.isfinite(loss):
            found.stopped = f"stopped at lr {lr:.1e}: the loss was {loss}"
            break
        found.lrs.append(lr)
        found.losses.append(loss)
        found.smoothed = smooth(found.losses, test.beta)
        if (step + 1) % 10 == 0:
            emit(Message(text=f"lr-find step {step + 1}/{test.steps}: lr {lr:.1e}, smoothed loss {found.smoothed[-1]:.4g}"))
        if step > 0 and found.smoothed[-1] > test.diverge * min(found.smoothed):
            found.stopped = f"stopped at lr {lr:.1e}: the smoothed loss passed {test.diverge:g}x its lowest"
            break
    found.suggested, found.rule, found.reason = suggest(found.lrs, found.smoothed)
    return found


def find_for(inputs: Inputs, test: RangeTest, emit: Callable[[Any], None]) -> Finding:
    """The range test of a resolved spec (``read_inputs``), on a model built for it alone."""
    test.check()
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise SpecError("--lr auto runs the range test in one process, not under torchrun",
                        fix="run `workbench lr-find` with the same flags first and pass the lr it suggests")
    state = throwaway_state(inputs, test, emit)
    try:
        found = run_range(state, test, emit)
    finally:
        del state  # the throwaway model and optimizer go before the run's are built
    if inputs.spec.optim.lr == LR_AUTO:
        default, _ = resolve_spec(inputs.spec.as_run_spec().replace(lr=None), base_config=inputs.base_config)
        found.default_lr = float(default.optim.lr)
    else:
        found.default_lr = float(inputs.spec.optim.lr)
    return found


def find_lr(spec: RunSpec, test: RangeTest, emit: Callable[[Any], None]) -> Finding:
    """``workbench lr-find``: the spec checked and resolved as ``run`` would, then the range test."""
    test.check()  # bad finder flags: before anything loads

    quiet_libraries()
    return find_for(read_inputs(spec, None, spec.out, None, emit), test, emit)


def settle_auto(inputs: Inputs, emit: Callable[[Any], None]) -> dict[str, str]:
    """``lr = "auto"``: run the range test, put the suggested lr in ``inputs.spec``, and return
    the ``run.toml`` meta that says how it was found (the spec keeps a plain number, so the run
    resumes at that lr without a second test)."""
    found = find_for(inputs, AUTO_TEST, emit)
    if found.suggested is None:
        raise TrainingError(f"--lr auto found no learning rate: {found.reason}",
                            fix="pass a learning rate with --lr, or look at the curve with `workbench lr-find`")
    inputs.spec = inputs.spec.replace(lr=found.suggested)
    emit(Message(text=f"--lr auto: {found.suggested:.2e} ({found.reason})"))
    return {"lr_found_by": found.found_by()}
