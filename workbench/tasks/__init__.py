"""Tasks by objective: ``get_task`` imports the task module an objective names.

The registry itself (``Objective``, ``register``, ``get_objective``...) lives in
``workbench/objectives.py``, below the spec, and is re-exported here for older callers.
Task modules are imported only by ``get_task``, so listing or validating objectives (the
CLI's ``--help``, the TUI's choices) imports neither torch nor transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workbench.models import is_decoder
from workbench.objectives import OBJECTIVES, Objective, get_objective, objective_names, register

if TYPE_CHECKING:
    from workbench.tasks.base import Task

__all__ = ["OBJECTIVES", "Objective", "get_objective", "get_task", "objective_names", "register"]


def get_task(name: str, base_config: Any = None) -> Task:
    """A fresh task for objective ``name``; ``base_config`` picks the decoder variant."""
    objective = get_objective(name)
    target = objective.task
    if objective.decoder_task and base_config is not None:
        if is_decoder(base_config):
            target = objective.decoder_task
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()
