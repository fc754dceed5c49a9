"""Snapshot tests of the main panes at 80x24 and 120x40 (pytest-textual-snapshot).

Deterministic: a fixed run root written here (fixed times, fixed losses), the repository's
built-in corpora, no clock in the header, the time zone pinned to UTC, and every worker
finished before the screenshot.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from workbench.config import RunSpec
from workbench.runs.rundir import RunDir
from workbench.tui.app import create_app

pytestmark = pytest.mark.slow  # draws the whole TUI: `pytest -m "not slow"` skips it

CREATED = 1_767_225_600.0  # 2026-01-01 00:00 UTC
SIZES = [(80, 24), (120, 40)]


def write_fixed_run(root: Path, name: str, objective: str, corpus: str, steps: int, status: str, offset: float) -> None:
    run = RunDir(root / name)
    run.path.mkdir(parents=True)
    run.write_run_toml(RunSpec(objective=objective, corpus=corpus, name=name, out=str(root)), {"created": CREATED + offset})
    (run.path / "status.json").write_text(json.dumps({"status": status, "step": steps}))
    lines = [{"event": "started", "time": 0, "run_dir": str(run.path), "name": name, "objective": objective,
              "corpus": corpus, "total_steps": 60, "parameters": 1000, "device": "cpu", "precision": "fp32"}]
    for step in range(2, steps + 1, 2):
        loss = 1.2 + 4.8 * math.exp(-step / (12 + offset / 3600)) + 0.1 * math.sin(step)
        lines.append({"event": "step", "time": 0, "step": step, "total_steps": 60, "loss": loss, "lr": 1e-3,
                      "tokens": step * 256, "tokens_per_s": 1000.0, "elapsed_s": step, "eta_s": 60 - step})
        if step % 10 == 0:
            lines.append({"event": "eval", "time": 0, "step": step, "eval_loss": loss + 0.3, "perplexity": 1.0})
    lines.append({"event": "finished", "time": 0, "status": status, "step": steps, "run_dir": str(run.path),
                  "model_dir": str(run.model_dir)})
    run.metrics.write_text("\n".join(json.dumps(line) for line in lines) + "\n")


CORPORA = ["stories.txt", "reviews.csv"]


def write_fixed_corpora(folder: Path) -> None:
    """A plain-text corpus and a labelled CSV (for the label distribution), relative to the cwd."""
    from conftest import write_story_corpus

    write_story_corpus(folder / "stories.txt", documents=40)
    rows = ["text,label"] + [
        f"{'A lovely calm' if i % 3 else 'A dull grey'} film number {i},{'pos' if i % 3 else 'neg'}" for i in range(30)
    ]
    (folder / "reviews.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def fixed_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)
    write_fixed_corpora(tmp_path)
    root = tmp_path / "runs"
    write_fixed_run(root, "mlm-general-first", "mlm", "general", 60, "finished", 0)
    write_fixed_run(root, "clm-domain-second", "clm", "domain", 36, "stopped", 3600)
    yield root
    monkeypatch.undo()
    time.tzset()


def app_for(root: Path):
    return create_app(root, corpora=CORPORA, runs_poll_seconds=0)


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def runner(*keys: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        await pilot.pause(0.3)  # let the tab underline animation finish

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_corpus_pane(snap_compare, fixed_root: Path, size) -> None:
    assert snap_compare(app_for(fixed_root), terminal_size=size, run_before=runner())


def test_corpus_pane_labelled(snap_compare, fixed_root: Path) -> None:
    assert snap_compare(app_for(fixed_root), terminal_size=(80, 24), run_before=runner("down"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_objective_pane(snap_compare, fixed_root: Path, size) -> None:
    assert snap_compare(app_for(fixed_root), terminal_size=size, run_before=runner("2"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_runs_pane(snap_compare, fixed_root: Path, size) -> None:
    assert snap_compare(app_for(fixed_root), terminal_size=size, run_before=runner("4"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_train_pane_with_an_opened_run_and_overlay(snap_compare, fixed_root: Path, size) -> None:
    # Runs pane: the newest run (clm-domain-second) is first; open it, overlay the other (the
    # chooser lists the other run only)
    assert snap_compare(app_for(fixed_root), terminal_size=size, run_before=runner("4", "enter", "o", "enter"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare, fixed_root: Path, size) -> None:
    """The keys, wrapped to the width (no sideways scrolling), each once."""
    assert snap_compare(app_for(fixed_root), terminal_size=size, run_before=runner("question_mark"))
