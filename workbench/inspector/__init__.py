"""Base vs fine-tuned predictions side by side, as plain data (no UI).

``inspect_models([RUN])`` or ``inspect_models([A, B], texts)`` returns an
``InspectReport``; ``render`` turns it into Rich renderables; ``probes`` is the engine's
eval hook that records probe predictions during training.
"""

from workbench.inspector.queries import QueryOptions, QueryResult, run_query
from workbench.inspector.report import SCHEMA, InspectReport, inspect_models

__all__ = ["SCHEMA", "InspectReport", "QueryOptions", "QueryResult", "inspect_models", "run_query"]
