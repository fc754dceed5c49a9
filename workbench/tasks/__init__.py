"""Objectives, one module each. ``get_task(name)`` is the only lookup the engine does.

Fine-tuning objectives register here as they land (see ``REGISTRY``)."""

from __future__ import annotations

from typing import Callable

from workbench.errors import SpecError
from workbench.tasks.base import Task

REGISTRY: dict[str, Callable[[], Task]] = {}


def register(name: str, factory: Callable[[], Task]) -> None:
    REGISTRY[name] = factory


_builtin_loaded = False


def _register_builtin() -> None:
    global _builtin_loaded
    _builtin_loaded = True
    from workbench.tasks.clm import CausalLMTask
    from workbench.tasks.mlm import MaskedLMTask
    from workbench.tasks.nsp import NextSentenceTask

    register("mlm", MaskedLMTask)
    register("nsp", NextSentenceTask)
    register("clm", CausalLMTask)
    import importlib
    import importlib.util

    if importlib.util.find_spec("workbench.tasks.finetune") is not None:
        importlib.import_module("workbench.tasks.finetune")  # registers the fine-tuning tasks


def get_task(name: str) -> Task:
    if not _builtin_loaded:  # not `if not REGISTRY`: fine-tuning modules may register first
        _register_builtin()
    if name not in REGISTRY:
        raise SpecError(f"unknown objective {name!r}", fix=f"use one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]()
