"""Base vs fine-tuned predictions side by side, as plain data (no UI).

``inspect_models([RUN])`` or ``inspect_models([A, B], texts)`` returns an
``InspectReport``; ``render`` turns it into Rich renderables; ``probes`` answers probes
for one model (the engine's probe hook, ``engine/hooks/probes.py``, calls it during
training) and reads a run's probe timeline back. The inspector never imports the engine.
The public names load on first use, so a training run that only records probes never
imports the report and query modules.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "SCHEMA": "workbench.inspector.report",
    "InspectReport": "workbench.inspector.report",
    "inspect_models": "workbench.inspector.report",
    "QueryOptions": "workbench.inspector.queries",
    "QueryResult": "workbench.inspector.queries",
    "run_query": "workbench.inspector.queries",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'workbench.inspector' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
