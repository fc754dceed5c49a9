"""The training engine: set-up, the loop and its parts. No UI imports here, ever (a test checks
``sys.modules``). What a run directory is (files, checkpoints, locks, events, following,
launching, signals) lives in ``workbench.runs``, which the engine writes through.

The public names below are imported on first use (PEP 562), so importing the package does
not load torch: only ``TrainingRun`` and friends pull in the runner.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "RunResult": "workbench.engine.runner",
    "TrainingRun": "workbench.engine.runner",
    "resume_run": "workbench.engine.runner",
    "run_spec": "workbench.engine.runner",
}
"""Each public name and the module it lives in."""

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:  # AttributeError lets `from workbench.engine import setup` find the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
