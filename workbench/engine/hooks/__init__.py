"""Eval hooks: extra work after each eval (probe predictions, the forgetting check).

Hooks are passed to ``TrainingRun`` explicitly, as a function that builds them from the
spec once the tokenizer and run directory exist (``default_eval_hooks`` unless the caller
gives another). Each hook sees only an ``EvalContext`` (made by ``engine/evaluation.py``):
the model being trained, its tokenizer, the step, the run directory and ``emit``, never
the run itself. ``probes.py`` records the probes' predictions; ``forgetting.py`` measures
the loss on the base's own eval split with the engine's one eval loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

from workbench.engine.evaluation import EvalContext
from workbench.engine.hooks.forgetting import forgetting_monitor
from workbench.runs.events import Event

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec
    from workbench.runs.rundir import RunDir
    from workbench.tasks.base import Task

__all__ = ["EvalContext", "EvalHook", "HookFactory", "default_eval_hooks"]


class EvalHook(Protocol):
    def __call__(self, ctx: EvalContext) -> None:
        """Runs after each eval on the main process; reports through ``ctx.emit``."""

    def summary(self) -> dict[str, Any]:
        """Figures for ``summary.json``'s ``metrics`` at the end of the run."""


HookFactory = Callable[..., "list[EvalHook]"]
"""``(spec, task, tokenizer, run_dir, emit) -> hooks``."""


def default_eval_hooks(spec: ResolvedSpec, task: Task, tokenizer: Any, run_dir: RunDir, emit: Callable[[Event], None]) -> list[EvalHook]:
    """Probe predictions when the spec has probes; the forgetting check when the task
    tracks one and the base is a workbench run."""
    hooks: list[EvalHook] = []
    if spec.eval.probes:
        from workbench.engine.hooks.probes import ProbeRecorder  # loads transformers: only when used

        hooks.append(ProbeRecorder(list(spec.eval.probes)))
    if spec.base and task.forgetting_objective:
        monitor = forgetting_monitor(spec, task.forgetting_objective, tokenizer, run_dir, emit)
        if monitor is not None:
            hooks.append(monitor)
    return hooks
