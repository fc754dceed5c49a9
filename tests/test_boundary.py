"""The engine, corpora, tasks and inspector never import Textual; the CLI imports it only for the TUI."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CORE_MODULES = [
    "workbench.config",
    "workbench.corpora",
    "workbench.corpora.stats",
    "workbench.engine",
    "workbench.runs.follow",
    "workbench.tasks",
    "workbench.models",
    "workbench.tokenization",
    "workbench.console",
    "workbench.cli",
    "workbench.inspector",
    "workbench.tasks.finetune",
    "workbench.experiments.compare",
    "workbench.experiments.scaling",
]


def textual_importers(modules: list[str]) -> list[str]:
    """Import each module in one fresh interpreter; return those after which textual is loaded."""
    code = (
        "import importlib, sys\n"
        "found = []\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    if name == 'workbench.tasks':\n"
        "        from workbench.tasks import get_task; get_task('clm')\n"
        "    if name == 'workbench.engine':\n"
        "        import workbench.engine.runner, workbench.engine.hooks.probes, workbench.engine.hooks.forgetting\n"
        "    if any(m == 'textual' or m.startswith('textual.') for m in sys.modules):\n"
        "        found.append(name); break\n"
        "print('FOUND:' + ','.join(found))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = [text for text in out.stdout.splitlines() if text.startswith("FOUND:")][-1]
    return [m for m in line[len("FOUND:"):].split(",") if m]


@pytest.mark.slow  # imports every module in fresh processes
def test_core_does_not_import_textual() -> None:
    present = [m for m in CORE_MODULES if importlib.util.find_spec(m) is not None]
    assert "workbench.engine" in present
    assert textual_importers(present) == [], "this module pulls in textual"


def test_import_contract_holds() -> None:
    """import-linter's contract in pyproject.toml: engine, corpora, tasks and inspector
    never import ``workbench.tui`` or textual (the test above checks it at run time)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint_imports), "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_ruff_finds_nothing() -> None:
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "workbench", "tests", "benchmarks", "corpora"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow  # trains in a fresh process
def test_a_training_run_imports_no_report_pairing_or_query_module(tmp_path: Path) -> None:
    """Eval hooks are built from the spec: probes need only the inspector's prediction code."""
    code = (
        "import sys\n"
        "from workbench.config import RunSpec\n"
        "from workbench.engine.runner import run_spec\n"
        f"run_spec(RunSpec(max_steps=2, eval_interval=1, eval_batches=1, batch_size=4, out={str(tmp_path)!r}, name='r'))\n"
        "heavy = [m for m in sys.modules if m in ('workbench.inspector.report', 'workbench.inspector.pairing',\n"
        "         'workbench.inspector.queries') or m.split('.')[0] == 'textual']\n"
        "assert 'workbench.inspector.probes' in sys.modules\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert (tmp_path / "r" / "probes.jsonl").is_file()
    assert out.stdout.strip().splitlines()[-1] == "HEAVY:"
