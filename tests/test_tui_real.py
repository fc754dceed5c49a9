"""The workbench through a REAL tiny training run: corpus file -> clm -> points -> stop -> Runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import wait_until
from textual.widgets import DataTable, Input, TabbedContent

from workbench.tui.app import create_app

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300), pytest.mark.slow]  # drives the whole TUI: `pytest -m "not slow"` skips it
REAL_RUN_S = 240.0
"""Real training on a loaded 2-core machine: generous waits (the pytest timeout still caps them)."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_real_tiny_run_from_the_tui(story_corpus: Path, run_root: Path) -> None:
    app = create_app(run_root, corpora=["general", "domain"], runs_poll_seconds=0)
    async with app.run_test(size=(80, 24)) as pilot:
        # Corpus pane: add the tiny corpus file by path and use it
        await pilot.press("slash")
        app.query_one("#corpus-path", Input).value = str(story_corpus)
        await pilot.press("enter")
        assert app.query_one(TabbedContent).active == "objective"
        assert app.query_one("#f-corpus", Input).value == str(story_corpus)
        # Objective pane: clm from scratch with tiny settings
        # many steps, so the run is still going when the test looks (it stops it with x)
        for key, value in dict(max_steps="5000", batch_size="8", seq_len="32", vocab_size="300",
                               eval_interval="5", log_interval="2").items():
            app.query_one(f"#f-{key}", Input).value = value
        await pilot.press("escape", "s")
        assert app.is_training
        # the chart receives real points from the training thread
        await wait_until(pilot, lambda: len(app.train_pane.chart.data.train_loss) >= 2, timeout=REAL_RUN_S)
        assert all(loss > 0 for loss in app.train_pane.chart.data.train_loss)
        await pilot.press("x")  # stop, with a checkpoint
        await app.workers.wait_for_complete([app.live.worker])
        await pilot.pause(0.2)
        assert not app.is_training
        (run_dir,) = run_root.iterdir()
        assert json.loads((run_dir / "status.json").read_text())["status"] in ("stopped", "finished")
        assert any((run_dir / "checkpoints").iterdir())
        assert (run_dir / "model" / "config.json").is_file()
        # the Runs pane lists it
        await pilot.press("4")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("#runs-table", DataTable)
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert row[0] == run_dir.name or row[0] == run_dir.name[:27] + "…"
        assert (row[4], row[5], row[6]) == ("clm", "full", story_corpus.name) and row[1] in ("stopped", "finished")


@pytest.mark.slow  # a detached process
async def test_detached_run_survives_as_its_own_process_and_is_attached(story_corpus: Path, run_root: Path) -> None:
    """D starts `python -m workbench run --config ... --json` in its own session; the app follows it."""
    app = create_app(run_root, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.objective_pane
        pane.set_corpus(str(story_corpus))
        for key, value in dict(max_steps="6", batch_size="8", seq_len="32", vocab_size="300",
                               eval_interval="3", log_interval="2", name="detached-one").items():
            app.query_one(f"#f-{key}", Input).value = value
        await pilot.press("escape", "D")
        assert app.shown is app.followed and not app.is_training
        await wait_until(pilot, lambda: app.detached, timeout=REAL_RUN_S)  # launched from a worker
        (launched,) = app.detached
        process = launched.process
        assert os.getsid(process.pid) == process.pid  # a session of its own: it outlives the TUI
        await wait_until(pilot, lambda: app.followed.curves.snapshot().status in ("finished", "failed"), timeout=REAL_RUN_S)
        snap = app.followed.curves.snapshot()
        assert snap.status == "finished", (run_root / "detached-one.log").read_text()
        assert snap.train_steps[-1] == 6
        assert process.wait(timeout=60) == 0
        await pilot.press("4")
        await app.workers.wait_for_complete()
        await pilot.pause()
        row = app.query_one("#runs-table", DataTable).get_row_at(0)
        assert (row[0], row[1]) == ("detached-one", "finished")
        assert (run_root / "detached-one.log").read_text().count('"event": "step"') == 3


@pytest.mark.slow  # several processes
async def test_a_two_process_run_starts_detached_through_torchrun(story_corpus: Path, run_root: Path) -> None:
    """GPUs 2 (CPU processes here): `s` hands the run to torchrun, detached, and follows it."""
    app = create_app(run_root, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(80, 24)) as pilot:
        app.objective_pane.set_corpus(str(story_corpus))
        for key, value in dict(max_steps="4", batch_size="4", seq_len="32", vocab_size="300", eval_interval="2",
                               log_interval="2", name="two-procs", gpus="2").items():
            app.query_one(f"#f-{key}", Input).value = value
        app.query_one("#f-device").value = "cpu"
        await pilot.press("escape", "s")
        assert app.shown is app.followed and not app.is_training
        await wait_until(pilot, lambda: app.detached, timeout=REAL_RUN_S)  # launched from a worker
        (launched,) = app.detached
        process = launched.process
        assert "--gpus" in process.args and "2" in process.args
        await wait_until(pilot, lambda: app.followed.curves.snapshot().status in ("finished", "failed"), timeout=REAL_RUN_S)
        snap = app.followed.curves.snapshot()
        assert snap.status == "finished", (run_root / "two-procs.log").read_text()
        assert snap.train_steps[-1] == 4
        assert process.wait(timeout=60) == 0
        started = [json.loads(line) for line in (run_root / "two-procs" / "metrics.jsonl").read_text().splitlines()
                   if '"event": "started"' in line]
        assert len(started) == 1  # rank 1 wrote nothing


async def test_more_gpus_than_visible_is_refused_before_launch(story_corpus: Path, run_root: Path) -> None:
    from workbench.tui.screens.error import ErrorScreen

    app = create_app(run_root, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(80, 24)) as pilot:
        app.objective_pane.set_corpus(str(story_corpus))
        app.query_one("#f-gpus", Input).value = "64"
        await pilot.press("escape", "D")  # the launching worker checks the GPUs before it starts a process
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), timeout=REAL_RUN_S)
        assert "--gpus 64" in app.screen.message
        assert not app.detached and not (run_root.exists() and list(run_root.iterdir()))
