"""Eval hooks: extra work after each eval (probe predictions, the forgetting check).

Hooks are passed to ``TrainingRun`` explicitly, as a function that builds them from the
spec once the tokenizer and run directory exist (``default_eval_hooks`` unless the caller
gives another). Each hook sees only an ``EvalContext``: the model being trained, its
tokenizer, the step, the run directory and ``emit``, never the run itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from workbench.runs.events import Event


@dataclass
class EvalContext:
    model: Any
    """transformers' model (its train/eval mode is restored by the hook)."""
    tokenizer: Any
    step: int
    run_dir: Path
    emit: Callable[[Event], None]


class EvalHook(Protocol):
    def __call__(self, ctx: EvalContext) -> None:
        """Runs after each eval on the main process; reports through ``ctx.emit``."""

    def summary(self) -> dict[str, Any]:
        """Figures for ``summary.json``'s ``metrics`` at the end of the run."""


HookFactory = Callable[..., "list[EvalHook]"]
"""``(spec, task, tokenizer, run_dir, emit) -> hooks``."""


def default_eval_hooks(spec: Any, task: Any, tokenizer: Any, run_dir: Any, emit: Callable[[Event], None]) -> list[EvalHook]:
    """Probe predictions when the spec has probes; the forgetting check when the task
    tracks one and the base is a workbench run."""
    hooks: list[EvalHook] = []
    if spec.probes:
        from workbench.inspector.probes import ProbeRecorder

        hooks.append(ProbeRecorder(list(spec.probes)))
    if spec.base and task.forgetting_objective:
        from workbench.tasks.finetune.forgetting import forgetting_monitor

        monitor = forgetting_monitor(spec, task.forgetting_objective, tokenizer, run_dir, emit)
        if monitor is not None:
            hooks.append(monitor)
    return hooks
