"""Start runs and sweeps as processes of their own, from a UI (the TUI, in thread workers).

UI-free. The launching itself is the run layer's (``workbench.runs.launch``: ``spawn_detached``,
``write_spec_file``); what needs the engine is here, above it:

* ``prepare_detached(spec, gpus)`` resolves a run spec's name and checks ``gpus`` against the
  visible GPUs, so a bad setting fails before any process starts; ``start_detached`` takes
  the spec it returns.
* ``parse_grid`` reads the grid a user types (``lr=1e-3,3e-3 d_model=32,64``); ``start_sweep``
  writes the fixed part of the sweep (a run spec, less its name and run root) to a hidden TOML
  file under the run root and starts ``python -m workbench sweep --config FILE --grid ...
  --name NAME --out ROOT`` detached, like a run; its output goes to ``<root>/<name>.sweep.log``.
  The sweep folder ``<root>/<name>/`` is then read like any other (``compare.read_sweep``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from workbench.config import RunSpec
from workbench.engine.spec_resolution import resolve_spec
from workbench.errors import SpecError
from workbench.runs.launch import last_log_line, spawn_detached, write_spec_file

AXIS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=([^\s=]+)")


def parse_grid(text: str) -> dict[str, str]:
    """``"lr=1e-3,3e-3 d_model=32,64"`` -> ``{"lr": "1e-3,3e-3", "d_model": "32,64"}`` (the
    values are checked by ``workbench sweep`` itself, by each field's own rules)."""
    parts = text.replace(";", " ").split()
    if not parts:
        raise SpecError("no grid given", fix="type FIELD=V1,V2 for each swept field, e.g. lr=1e-3,3e-3 d_model=32,64")
    axes: dict[str, str] = {}
    for part in parts:
        match = AXIS.fullmatch(part)
        if match is None:
            raise SpecError(f"cannot read {part!r} as FIELD=V1,V2,...", fix="write e.g. lr=1e-3,3e-3 d_model=32,64")
        axes[match.group(1)] = match.group(2)
    return axes


def prepare_detached(spec: RunSpec, gpus: int = 1) -> RunSpec:
    """``spec`` with its run name resolved (as ``workbench run`` will name it), ready for
    ``workbench.runs.launch.start_detached``; ``gpus`` > 1 is checked against the visible GPUs.
    Raises the spec's error. Imports the objective's task module (and torch, to count GPUs):
    seconds the first time, so call it from a worker thread in a UI."""
    resolved, _task = resolve_spec(spec)
    if gpus > 1:
        from workbench.engine.distributed import check_gpus  # torch

        check_gpus(gpus, spec.device)
    return spec.replace(name=resolved.name)


@dataclass
class LaunchedSweep:
    process: subprocess.Popen
    name: str
    folder: Path
    log_path: Path
    log_offset: int = 0
    """Where this process's output starts in the log (a log of the same name is appended to)."""

    def last_log_line(self) -> str:
        return last_log_line(self.log_path, self.log_offset)


def sweep_command(spec_file: Path, axes: dict[str, str], root: Path, name: str) -> list[str]:
    command = [sys.executable, "-m", "workbench", "sweep", "--config", str(spec_file), "--name", name, "--out", str(root)]
    for field, values in axes.items():
        command += ["--grid", f"{field}={values}"]
    return command


def start_sweep(spec: dict[str, Any], axes: dict[str, str], root: Path, name: str | None = None) -> LaunchedSweep:
    """Start the sweep (``spec``: ``RunSpec.to_dict()``; its swept fields, name and run root are left out of the fixed part)."""
    name = name or time.strftime("sweep-%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    fixed = {key: value for key, value in spec.items() if key not in ("name", "out", *axes)}
    spec_file = write_spec_file(tomli_w.dumps(fixed), root, name, ".sweep.toml")
    log_path = root / f"{name}.sweep.log"
    process, offset = spawn_detached(sweep_command(spec_file, axes, root, name), log_path)
    return LaunchedSweep(process, name, root / name, log_path, offset)
