"""Start `workbench sweep` as a process of its own (the TUI's Compare pane does, from a thread).

UI-free: ``parse_grid`` reads the grid a user types (``lr=1e-3,3e-3 d_model=32,64``),
``start_sweep`` writes the fixed part of the sweep (a run spec, less its name and run root)
to a hidden TOML file under the run root and starts ``python -m workbench sweep --config FILE
--grid ... --name NAME --out ROOT`` in a session of its own, so it outlives its caller and an
SSH hang-up like a detached run; its output goes to ``<root>/<name>.sweep.log``. The sweep
folder ``<root>/<name>/`` is then read like any other (``compare.read_sweep``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from workbench.errors import SpecError

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


@dataclass
class LaunchedSweep:
    process: subprocess.Popen
    name: str
    folder: Path
    log_path: Path

    def last_log_line(self) -> str:
        try:
            lines = [line.strip() for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError:
            return ""
        lines = [line for line in lines if line]
        return lines[-1] if lines else ""


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
    fd, spec_name = tempfile.mkstemp(dir=root, prefix=f".{name}.", suffix=".sweep.toml")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(tomli_w.dumps(fixed))
    log_path = root / f"{name}.sweep.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(sweep_command(Path(spec_name), axes, root, name), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return LaunchedSweep(process, name, root / name, log_path)
