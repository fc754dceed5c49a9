"""The forgetting monitor's numbers, read back from a run's ``metrics.jsonl``.

The fine-tuning engine's eval hook evaluates a fine-tuning run on its base's
pre-training eval split and logs ``EvalDone(split="base_eval")``; the inspector only
summarises those events: first and last value of each curve, and the change.
"""

from __future__ import annotations

import math
from typing import Any

from workbench.runs.rundir import RunDir

SPLIT = "base_eval"


def forgetting_summary(run: RunDir) -> dict[str, Any] | None:
    """``{"evals": n, "first_step", "last_step", "curves": {name: {"first", "last", "change"}}}``
    or None when the run logged no ``base_eval`` events."""
    events = [e for e in run.events() if e.get("event") == "eval" and e.get("split") == SPLIT]
    if not events:
        return None
    events.sort(key=lambda e: e.get("step", 0))
    first, last = events[0], events[-1]

    def values(event: dict) -> dict[str, float]:
        out = {"eval_loss": event.get("eval_loss"), "perplexity": event.get("perplexity")}
        out.update({k: v for k, v in (event.get("metrics") or {}).items() if isinstance(v, (int, float))})
        return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}

    a, b = values(first), values(last)
    curves = {name: {"first": a[name], "last": b[name], "change": b[name] - a[name]} for name in a if name in b}
    return {"evals": len(events), "first_step": first.get("step"), "last_step": last.get("step"), "curves": curves}
