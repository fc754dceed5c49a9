"""The sweep's results table: ``results.jsonl`` (one object per trial) and ``results.csv``.

Both are rebuilt from the study whenever a trial changes state and replaced atomically
(temp file + rename), so every process of a sweep writes the whole table and a reader never
sees half of it. What the folder holds and how it is read is ``workbench.runs.sweepdir``.
Row::

    {"trial": 3, "name": "t003", "run_dir": "t003", "params": {"lr": 0.001, "seed": 43},
     "state": "running|complete|pruned|failed|stopped|missing", "reason": null,
     "value": 3.21, "value_step": 40, "value_is_final": true, "step": 40,
     "updated": "2026-11-30T08:01:02+00:00"}

``value`` is the sweep's metric at step ``value_step``: the final one for a complete trial
(``value_is_final``), the last reported for a pruned or stopped one (not final), null for a
failed or missing one. ``step`` is the last step the trial reached. ``run_dir`` is relative
to the sweep folder. Trials still queued are not listed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from pathlib import Path
from typing import Any

from workbench.runs.rundir import atomic_write_text
from workbench.runs.sweepdir import (
    CSV_FILE,
    FINAL_STATE,
    RESULTS_FILE,
    SPEC_FILE,
    STATES,
    is_run,
    is_sweep,
    load_results,
    trial_name,
)
from workbench.sweep.study import EXTRA, owner_gone

COLUMNS = ("trial", "name", "state", "value", "value_step", "value_is_final", "step", "reason", "run_dir", "updated")
"""``results.csv``'s columns; the swept fields come between ``name`` and ``state``."""

__all__ = ["CSV_FILE", "COLUMNS", "RESULTS_FILE", "SPEC_FILE", "STATES", "is_sweep", "load_results", "study_rows",
           "write_results"]


def iso(when: Any) -> str:
    if isinstance(when, dt.datetime):
        return when.astimezone().isoformat(timespec="seconds")
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def trial_row(frozen: Any, folder: Path, swept: list[str]) -> dict[str, Any] | None:
    """One row from an Optuna trial and the attributes the sweep recorded on it."""
    from optuna.trial import TrialState  # optuna: loaded on first use

    attrs = frozen.user_attrs
    if frozen.state == TrialState.WAITING or attrs.get(EXTRA):
        return None
    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}.get(frozen.state)
    reason = attrs.get("reason")
    if state is None:  # RUNNING: running, or stopped (Ctrl-C) / interrupted (its process died)

        state = "stopped" if owner_gone(frozen) else "running"
        if state == "stopped" and attrs.get("state") != "stopped":
            reason = "interrupted: its process ended; resume the sweep to continue it"
    params = {**frozen.system_attrs.get("fixed_params", {}), **frozen.params}
    reported = frozen.intermediate_values
    last_report = max(reported) if reported else None
    step = attrs.get("step", last_report)
    value, value_step = None, None
    if state == "complete":
        value, value_step = _finite(frozen.value), step
    elif state in ("pruned", "stopped") and last_report is not None:
        value, value_step = _finite(reported[last_report]), last_report
    name = trial_name(frozen.number)
    run_dir = attrs.get("run_dir") or name
    if state in ("complete", "pruned", "stopped") and not is_run(folder / run_dir):
        state, value, value_step, reason = "missing", None, None, f"its folder {run_dir}/ is not in the sweep folder"
    return {"trial": frozen.number, "name": name, "run_dir": run_dir,
            "params": {k: params[k] for k in swept if k in params}, "state": state, "reason": reason,
            "value": value, "value_step": value_step, "value_is_final": state == FINAL_STATE and value is not None,
            "step": step, "updated": attrs.get("updated") or iso(frozen.datetime_complete or frozen.datetime_start)}


def study_rows(study: Any, folder: Path, swept: list[str]) -> list[dict[str, Any]]:
    rows = [trial_row(t, folder, swept) for t in study.get_trials(deepcopy=False)]
    return sorted((r for r in rows if r is not None), key=lambda r: r["trial"])


def write_results(folder: Path, rows: list[dict[str, Any]], swept: list[str]) -> None:
    atomic_write_text(folder / RESULTS_FILE, "".join(json.dumps(row) + "\n" for row in rows))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS[:2], *swept, *COLUMNS[2:]])
    for row in rows:
        writer.writerow([row["trial"], row["name"], *(row["params"].get(k, "") for k in swept),
                         *("" if row[c] is None else row[c] for c in COLUMNS[2:])])
    atomic_write_text(folder / CSV_FILE, buffer.getvalue())
