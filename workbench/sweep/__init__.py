"""Sweeps: many runs of one spec over a grid, seeds or a search, with Optuna as the engine.

A sweep folder ``<out>/<sweep>/`` holds ``sweep.toml`` (the sweep spec), ``study.db`` (the
Optuna study, unless ``--storage``), ``results.jsonl`` and ``results.csv`` (one row per
trial) and one ordinary run directory per trial (``t000``, ``t001``, ...).

What a sweep folder is, and reading it, is ``workbench.runs.sweepdir`` (``is_sweep``,
``load_results``, ``trials``, ``read_sweep_toml``); ``read_sweep_spec(folder)`` here reads its
``sweep.toml`` as a checked ``SweepSpec``.
Nothing here imports torch, Optuna or Textual at import time.
"""

from __future__ import annotations

from pathlib import Path

from workbench.runs.sweepdir import CSV_FILE, RESULTS_FILE, SPEC_FILE, STATES, is_sweep, load_results
from workbench.sweep.spec import SweepSpec, read_sweep_toml


def read_sweep_spec(folder: str | Path) -> SweepSpec:
    """The sweep spec of a sweep folder (``SpecError`` when it is missing or invalid)."""
    return read_sweep_toml(Path(folder) / SPEC_FILE)


__all__ = ["CSV_FILE", "RESULTS_FILE", "SPEC_FILE", "STATES", "SweepSpec", "is_sweep", "load_results", "read_sweep_spec"]
