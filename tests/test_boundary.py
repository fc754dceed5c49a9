"""The engine, corpora, tasks and inspector never import Textual; the CLI imports it only for the TUI."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

CORE_MODULES = [
    "workbench.config",
    "workbench.corpora",
    "workbench.corpora.stats",
    "workbench.engine",
    "workbench.engine.follow",
    "workbench.tasks",
    "workbench.models",
    "workbench.tokenization",
    "workbench.console",
    "workbench.cli",
    "workbench.inspector",
    "workbench.tasks.finetune",
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
        "        from workbench.engine.runner import load_hook_modules; load_hook_modules()\n"
        "    if any(m == 'textual' or m.startswith('textual.') for m in sys.modules):\n"
        "        found.append(name); break\n"
        "print('FOUND:' + ','.join(found))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = [l for l in out.stdout.splitlines() if l.startswith("FOUND:")][-1]
    return [m for m in line[len("FOUND:"):].split(",") if m]


def test_core_does_not_import_textual() -> None:
    present = [m for m in CORE_MODULES if importlib.util.find_spec(m) is not None]
    assert "workbench.engine" in present
    assert textual_importers(present) == [], "this module pulls in textual"
