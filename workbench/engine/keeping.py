"""The checkpoints a run keeps out of rotation (``keep_steps``), planned once its steps are known."""

from __future__ import annotations

from typing import Any

from workbench.runs import kept as kept_steps
from workbench.runs.events import Message


def plan_kept(state: Any, emit: Any = None) -> None:
    """Put the kept steps in ``state.plan`` (saved at those steps, never rotated away).

    A run that recorded them (``[kept]`` in ``run.toml``) keeps that list, so a resume with a
    new ``--max-steps`` does not move them; otherwise they are planned from ``keep_steps`` and
    the plan's step count, and rank 0 records them."""
    spec, plan, run_dir = state.spec, state.plan, state.run_dir
    recorded = kept_steps.recorded_steps(run_dir)
    if recorded is None and not spec.train.keep_steps:
        return
    steps = recorded if recorded is not None else kept_steps.planned_steps(spec.train.keep_steps, plan.total_steps)
    plan.kept = frozenset(steps)
    if recorded is None and state.strategy.is_main:
        kept_steps.record_steps(run_dir, steps)
        if emit is not None:
            emit(Message(text=f"Keeping the checkpoints of steps {', '.join(map(str, steps))} out of rotation"))
