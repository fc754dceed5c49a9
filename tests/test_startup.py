"""`workbench --help`, `workbench run --help` and `workbench runs` start without the heavy libraries.

Each runs in a fresh interpreter (this test process has torch loaded already) and reports
which of torch, transformers, datasets and textual it imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench.config import RunSpec
from workbench.runs.events import RunStarted, StepLogged
from workbench.runs.rundir import MetricsWriter, RunDir

HEAVY = ("torch", "transformers", "datasets", "textual")

REPORT_HEAVY = f"""
import sys
from workbench.cli import main
sys.argv = ["workbench", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print("HEAVY:" + ",".join(sorted({{m.split(".")[0] for m in sys.modules}} & {set(HEAVY)!r})))
print("COMMANDS:" + ",".join(sorted(m for m in sys.modules if m.startswith("workbench.commands."))))
"""


def heavy_modules_after(*args: str) -> tuple[list[str], str]:
    """Run `workbench ARGS` in a fresh interpreter: the heavy libraries it imported, and its output."""
    done = subprocess.run([sys.executable, "-c", REPORT_HEAVY, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = [line for line in done.stdout.splitlines() if line.startswith("HEAVY:")][-1]
    return [name for name in report[len("HEAVY:"):].split(",") if name], done.stdout


def write_finished_run(root: Path, name: str) -> None:
    run = RunDir(root / name)
    run.path.mkdir(parents=True)
    run.write_run_toml(RunSpec(name=name), {"created": 1.0})
    writer = MetricsWriter(run.metrics)
    writer(RunStarted(run_dir=str(run.path), name=name, objective="clm", corpus="general", total_steps=4,
                      parameters=1000, device="cpu", precision="fp32"))
    writer(StepLogged(step=4, total_steps=4, loss=3.0, lr=1e-3, tokens=512, tokens_per_s=100.0, elapsed_s=1.0, eta_s=0.0))
    writer.close()
    run.write_status("finished")


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]], ids=["help", "run-help"])
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    heavy, output = heavy_modules_after(*args)
    assert heavy == [], f"`workbench {' '.join(args)}` imported {heavy}"
    assert "Usage" in output


def test_runs_listing_imports_no_heavy_library(tmp_path: Path) -> None:
    write_finished_run(tmp_path, "listed-run")
    heavy, output = heavy_modules_after("runs", "--out", str(tmp_path))
    assert heavy == [], f"`workbench runs` imported {heavy}"
    assert "listed-run" in output and "finished" in output
    commands = [line for line in output.splitlines() if line.startswith("COMMANDS:")][-1][len("COMMANDS:"):].split(",")
    assert "workbench.commands.runs" in commands
    assert not {"workbench.commands.run", "workbench.commands.sweep", "workbench.commands.transfer"} & set(commands), commands
