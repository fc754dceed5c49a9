"""The sweep's results table: ``results.jsonl`` (one object per trial) and ``results.csv``.

Both are rebuilt from the study whenever a trial changes state and replaced atomically
(temp file + rename), so every process of a sweep writes the whole table and a reader never
sees half of it. Row::

    {"trial": 3, "name": "t003", "run_dir": "...", "params": {"lr": 0.001, "seed": 43},
     "state": "running|complete|pruned|failed|stopped", "reason": null, "value": 3.21,
     "step": 40, "updated": "2026-11-30T08:01:02+00:00"}

``value`` is the sweep's metric: the final one for a complete trial, the last reported for
a pruned or stopped one, null for a failed one. Trials still queued are not listed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from pathlib import Path
from typing import Any

SPEC_FILE = "sweep.toml"
RESULTS_FILE = "results.jsonl"
CSV_FILE = "results.csv"
STATES = ("running", "complete", "pruned", "failed", "stopped")
COLUMNS = ("trial", "name", "state", "value", "step", "reason", "run_dir", "updated")


def is_sweep(folder: str | Path) -> bool:
    """A sweep folder holds ``sweep.toml`` (and, once a trial started, ``results.jsonl``)."""
    try:
        return (Path(folder) / SPEC_FILE).is_file()
    except OSError:
        return False


def load_results(folder: str | Path) -> list[dict[str, Any]]:
    """The rows of ``results.jsonl``, by trial number; lines that are not rows are skipped."""
    path = Path(folder) / RESULTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("trial"), int) and isinstance(row.get("params"), dict):
            rows.append(row)
    return sorted(rows, key=lambda r: r["trial"])


def iso(when: Any) -> str:
    if isinstance(when, dt.datetime):
        return when.astimezone().isoformat(timespec="seconds")
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def trial_row(frozen: Any, folder: Path, swept: list[str]) -> dict[str, Any] | None:
    """One row from an Optuna trial and the attributes the sweep recorded on it."""
    from optuna.trial import TrialState

    if frozen.state == TrialState.WAITING:
        return None
    attrs = frozen.user_attrs
    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}.get(frozen.state)
    reason = attrs.get("reason")
    if state is None:  # RUNNING: running, or stopped (Ctrl-C) / interrupted (its process died)
        from workbench.sweep.study import owner_gone

        state = "stopped" if owner_gone(frozen) else "running"
        if state == "stopped" and attrs.get("state") != "stopped":
            reason = "interrupted: its process ended; resume the sweep to continue it"
    params = {**frozen.system_attrs.get("fixed_params", {}), **frozen.params}
    steps = frozen.intermediate_values
    last_step = max(steps) if steps else None
    value, step = None, attrs.get("step", last_step)
    if state == "complete":
        value = _finite(frozen.value)
    elif state in ("pruned", "stopped") and last_step is not None:
        value, step = _finite(steps[last_step]), attrs.get("step", last_step)
    name = f"t{frozen.number:03d}"
    return {"trial": frozen.number, "name": name, "run_dir": attrs.get("run_dir", str(folder / name)),
            "params": {k: params[k] for k in swept if k in params}, "state": state, "reason": reason,
            "value": value, "step": step, "updated": attrs.get("updated") or iso(frozen.datetime_complete or frozen.datetime_start)}


def study_rows(study: Any, folder: Path, swept: list[str]) -> list[dict[str, Any]]:
    rows = [trial_row(t, folder, swept) for t in study.get_trials(deepcopy=False)]
    return sorted((r for r in rows if r is not None), key=lambda r: r["trial"])


def write_results(folder: Path, rows: list[dict[str, Any]], swept: list[str]) -> None:
    from workbench.runs.rundir import atomic_write_text

    atomic_write_text(folder / RESULTS_FILE, "".join(json.dumps(row) + "\n" for row in rows))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS[:2], *swept, *COLUMNS[2:]])
    for row in rows:
        writer.writerow([row["trial"], row["name"], *(row["params"].get(k, "") for k in swept),
                         *("" if row[c] is None else row[c] for c in COLUMNS[2:])])
    atomic_write_text(folder / CSV_FILE, buffer.getvalue())
