"""The training engine: no UI imports here, ever (a test checks ``sys.modules``).

The public names below are imported on first use (PEP 562), so reading a run directory or
an event does not load torch: only ``TrainingRun`` and friends pull in the runner.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "RunControl": "workbench.engine.control",
    "CheckpointSaved": "workbench.engine.events",
    "EvalDone": "workbench.engine.events",
    "Event": "workbench.engine.events",
    "Message": "workbench.engine.events",
    "ProbesRecorded": "workbench.engine.events",
    "RunFailed": "workbench.engine.events",
    "RunFinished": "workbench.engine.events",
    "RunStarted": "workbench.engine.events",
    "StepLogged": "workbench.engine.events",
    "event_from_json": "workbench.engine.events",
    "RunDir": "workbench.engine.rundir",
    "find_run": "workbench.engine.rundir",
    "list_runs": "workbench.engine.rundir",
    "RunResult": "workbench.engine.runner",
    "TrainingRun": "workbench.engine.runner",
    "resume_run": "workbench.engine.runner",
    "run_spec": "workbench.engine.runner",
}
"""Each public name and the module it lives in."""

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:  # AttributeError lets `from workbench.engine import checkpoint` find the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
