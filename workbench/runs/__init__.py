"""The run layer: what a run directory is, and the processes that write and follow it.

A run directory (``rundir``) holds ``run.toml``, ``metrics.jsonl`` of ``events``, a status,
hashed ``checkpoint`` folders and the final ``model/``; one process writes it at a time
(``lock``). ``follow`` reads a run another process writes, ``launch`` starts one detached,
``signals`` and ``control`` stop or pause one, ``torchrun`` starts one over several
processes, and ``reporting`` mirrors its events to TensorBoard or trackio.

This package imports neither the engine nor the tasks: the engine, inspector, experiments,
sweeps and TUI all read and write runs through it. Public names load on first use (PEP 562),
so reading a run directory or an event does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "RunControl": "workbench.runs.control",
    "CheckpointSaved": "workbench.runs.events",
    "EvalDone": "workbench.runs.events",
    "Event": "workbench.runs.events",
    "Message": "workbench.runs.events",
    "ProbesRecorded": "workbench.runs.events",
    "RunFailed": "workbench.runs.events",
    "RunFinished": "workbench.runs.events",
    "RunStarted": "workbench.runs.events",
    "StepLogged": "workbench.runs.events",
    "event_from_json": "workbench.runs.events",
    "RunDir": "workbench.runs.rundir",
    "find_run": "workbench.runs.rundir",
    "list_runs": "workbench.runs.listing",
}
"""Each public name and the module it lives in."""

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:  # AttributeError lets `from workbench.runs import rundir` find the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
