"""What a sweep folder is, for every reader (the sweep itself, compare, scaling, the TUI).

A sweep folder ``<out>/<sweep>/`` holds::

    sweep.toml      the sweep spec ([fixed], [grid], [search], seeds, metric, ..., study)
    study.db        the Optuna study (absent with --storage)
    results.jsonl   one JSON object per trial (see ``ROW_KEYS``)
    results.csv     the same rows as a table
    t000/ t001/     one ordinary run directory per trial

Every path a sweep stores about itself is relative to the folder (a trial's ``run_dir`` is
``t000``), so a sweep survives ``cp -a``, ``mv`` and ``rsync``. An absolute ``run_dir``
(written by older versions) is never followed out of the folder: the trial is looked for
as ``<folder>/<name>``. A trial whose folder is gone is listed as ``missing``.

This module is part of the run layer: it imports neither the engine, the tasks, the sweep
package nor the experiments, and no heavy library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.config import tomllib
from workbench.runs.rundir import RUN_FILES, read_small_file

SPEC_FILE = "sweep.toml"
RESULTS_FILE = "results.jsonl"
CSV_FILE = "results.csv"
STUDY_FILE = "study.db"
STATES = ("running", "complete", "pruned", "failed", "stopped", "missing")
"""A trial's state in ``results.jsonl``; only ``complete`` means its value is final."""
FINAL_STATE = "complete"
ROW_KEYS = ("trial", "name", "run_dir", "params", "state", "reason", "value", "value_step", "value_is_final",
            "step", "updated")
"""A row of ``results.jsonl``: ``value`` is the sweep's metric at step ``value_step``
(``value_is_final`` only for a complete trial); ``step`` is the last step the trial reached."""


def is_sweep(folder: str | Path) -> bool:
    """A sweep folder is one that holds ``sweep.toml``."""
    try:
        return (Path(folder) / SPEC_FILE).is_file()
    except OSError:
        return False


def read_sweep_toml(folder: str | Path) -> tuple[dict[str, Any], list[str]]:
    """``sweep.toml`` as a dict (empty when it is missing), and why it could not be read."""
    path = Path(folder) / SPEC_FILE
    if not path.exists():
        return {}, []
    try:
        data = tomllib.loads(read_small_file(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{SPEC_FILE} is unreadable ({exc})"]
    return data, []


def load_results(folder: str | Path) -> list[dict[str, Any]]:
    """The rows of ``results.jsonl`` as written, by trial number; lines that are not rows are skipped."""
    path = Path(folder) / RESULTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    rows: dict[int, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        number = row.get("trial") if isinstance(row, dict) else None
        if isinstance(number, int) and not isinstance(number, bool) and isinstance(row.get("params"), dict):
            rows[number] = row  # one per trial; should one appear twice, the last wins
    return [rows[n] for n in sorted(rows)]


def trial_name(number: int) -> str:
    return f"t{number:03d}"


def relative_run_dir(folder: Path, run_dir: str | Path) -> str:
    """A trial's run directory as stored: relative to the sweep folder (``t000``)."""
    path = Path(run_dir)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return path.name  # outside the folder (an old absolute path): the trial's own name


def trial_path(folder: str | Path, row: dict[str, Any]) -> Path:
    """Where a trial's run directory is: ``run_dir`` against the folder when relative, else
    ``<folder>/<name>``. Never a path outside the folder."""
    folder = Path(folder)
    given = row.get("run_dir")
    if isinstance(given, str) and given and not Path(given).is_absolute() and ".." not in Path(given).parts:
        return folder / given
    name = row.get("name") if isinstance(row.get("name"), str) else trial_name(row["trial"])
    return folder / Path(name).name


def is_run(path: Path) -> bool:
    try:
        return path.is_dir() and any((path / name).exists() for name in RUN_FILES)
    except OSError:
        return False


def trials(folder: str | Path) -> list[dict[str, Any]]:
    """The rows of ``results.jsonl`` as they stand now: ``run_dir`` relative to the folder,
    and state ``missing`` (no value) for a trial that has started but whose folder is gone."""
    folder = Path(folder)
    rows = []
    for row in load_results(folder):
        row = dict(row)
        path = trial_path(folder, row)
        row["run_dir"] = relative_run_dir(folder, path)
        if not is_run(path) and row.get("state") != "failed":  # a failed trial may never have made its folder
            row.update(state="missing", value=None, value_is_final=False,
                       reason=f"its folder {row['run_dir']}/ is not in the sweep folder")
        rows.append(row)
    return rows
