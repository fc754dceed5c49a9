"""Sweep folders for the compare, scaling and Compare-pane tests.

``real_sweep`` runs the real `workbench sweep` (in this process, through typer's CliRunner)
over a grid of tiny clm runs, once per test session: the sweeps are cached here by name,
since the same folders serve several test modules. ``fixed_sweep`` writes a finished sweep
of fixed numbers and times in the same layout (``sweep.toml``, ``results.jsonl``, ``t000/``
...) without training, for snapshots and for the cases a real sweep cannot easily show
(a trial still running, a failed start, seeds).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import tomli_w

from workbench.config import RunSpec
from workbench.runs.rundir import RunDir

_MADE: dict[str, Path] = {}
"""Sweeps already trained this session, by name."""

FIXED = dict(objective="clm", max_steps=40, n_layer=1, n_head=2, batch_size=8, seq_len=32, vocab_size=300,
             eval_batches=2, eval_interval=20, log_interval=10, keep_checkpoints=1, lr=3e-3, device="cpu")
"""The fixed part of every test sweep: a tiny clm, 40 steps."""


def write_sweep_toml(folder: Path, fixed: dict[str, Any], grid: dict[str, list], seeds: int = 1) -> None:
    config = {"seeds": seeds, "sampler": "grid", "prune": False, "metric": "eval_loss", "direction": "minimize",
              "fixed": fixed, "grid": grid, "search": {}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.toml").write_text(tomli_w.dumps(config), encoding="utf-8")


def write_results(folder: Path, results: list[dict[str, Any]]) -> None:
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results), encoding="utf-8")


def result(trial: int, params: dict[str, Any], state: str, value: float | None, step: int, folder: Path) -> dict[str, Any]:
    name = f"t{trial:03d}"
    return {"trial": trial, "name": name, "run_dir": name, "params": params, "state": state, "reason": "",
            "value": value, "value_step": step if value is not None else None, "value_is_final": state == "complete",
            "step": step, "updated": 1_767_225_600.0 + trial}


def real_sweep(root: Path, corpus: Path, name: str, grid: dict[str, list]) -> Path:
    """A grid of tiny clm runs trained by the real `workbench sweep` into ``root/name``, once per session."""
    if name in _MADE:
        return _MADE[name]
    import torch
    from typer.testing import CliRunner

    from workbench.cli import app

    flags = [part for key, value in FIXED.items() for part in (f"--{key.replace('_', '-')}", str(value))]
    axes = [part for key, values in grid.items() for part in ("--grid", f"{key}={','.join(str(v) for v in values)}")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # models this small gain nothing from a second thread, and lose a lot on a busy machine
    try:
        done = CliRunner().invoke(app, ["sweep", "--name", name, "--out", str(root), "--corpus", str(corpus), "--no-prune", *flags, *axes],
                                  catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)
    assert done.exit_code == 0, done.output
    _MADE[name] = root / name
    return root / name


CREATED = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def write_fixed_trial(folder: Path, trial: int, d_model: int, lr: float, status: str = "finished") -> float:
    """A trial run directory with fixed, made-up curves (no training): loss falls with width."""
    name = f"t{trial:03d}"
    run = RunDir(folder / name)
    run.path.mkdir(parents=True)
    spec = RunSpec(**{**FIXED, "corpus": "general", "d_model": d_model, "lr": lr, "name": name, "out": str(folder)})
    run.write_run_toml(spec, {"created": CREATED + 100 * trial})
    (run.path / "status.json").write_text(json.dumps({"status": status, "step": 40}))
    parameters = 12 * d_model * d_model + 300 * d_model
    floor = 1.6 + 40.0 * parameters ** -0.35 + (0.08 if lr > 2e-3 else 0.0)
    start = CREATED + 100 * trial
    lines = [{"event": "started", "time": start, "run_dir": str(run.path), "name": name, "objective": "clm",
              "corpus": "general", "total_steps": 40, "parameters": parameters, "device": "cpu", "precision": "fp32"}]
    for step in range(0, 41, 10):
        loss = floor + 4.0 * math.exp(-step / 12)
        if step:
            lines.append({"event": "step", "time": start + step, "step": step, "total_steps": 40, "loss": loss, "lr": lr,
                          "tokens": step * 256, "tokens_per_s": 256.0, "elapsed_s": float(step), "eta_s": 40.0 - step})
        if step % 20 == 0:
            lines.append({"event": "eval", "time": start + step, "step": step, "eval_loss": loss + 0.1, "perplexity": 1.0,
                          "examples": 7, "tokens": 224, "fraction": 1.0, "coverage": "whole eval split (7 blocks)"})
    lines.append({"event": "finished", "time": start + 41, "status": status, "step": 40, "run_dir": str(run.path),
                  "model_dir": str(run.model_dir)})
    run.metrics.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return floor + 4.0 * math.exp(-40 / 12) + 0.1


def fixed_sweep(root: Path, name: str = "width-lr") -> Path:
    """A finished 3 x 2 sweep over d_model and lr with fixed numbers and times."""
    folder = root / name
    grid = {"d_model": [32, 64, 128], "lr": [1e-3, 3e-3]}
    write_sweep_toml(folder, {**FIXED, "corpus": "general"}, grid)
    results = []
    for trial, (d_model, lr) in enumerate(itertools.product(*grid.values())):
        value = write_fixed_trial(folder, trial, d_model, lr)
        results.append(result(trial, {"d_model": d_model, "lr": lr}, "complete", value, 40, folder))
    write_results(folder, results)
    return folder


GRID_2X2 = {"lr": [1e-3, 3e-3], "d_model": [16, 32]}
"""The issue's check: a 2 x 2 grid of tiny clm runs, 40 steps each."""
WIDTHS = {"d_model": [16, 32, 64]}
"""Three sizes, enough for a power-law fit."""


def sweeps_root(factory: Any) -> Path:
    """One folder for the session's real sweeps (``tmp_path_factory``'s base)."""
    return factory.getbasetemp() / "sweeps"
