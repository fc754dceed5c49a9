"""Trials are runs: `workbench runs` (and --json) and the Runs pane list a sweep's trials,
grouped under their sweep; the pane folds each sweep."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sweep_fixtures import fixed_sweep
from test_runs_listing import write_run
from textual.widgets import DataTable
from typer.testing import CliRunner

from workbench.cli import app
from workbench.runs.listing import list_runs
from workbench.tui.app import create_app
from workbench.tui.panes.runs import SWEEP_KEY, RunsPane

runner = CliRunner()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A sweep of six trials between two runs of their own (one older, one newer than the sweep)."""
    root = tmp_path / "runs"
    write_run(root, "old-run", "clm", "general", "finished", 1_700_000_000.0)
    fixed_sweep(root)  # trials created 2026-01-01
    write_run(root, "new-run", "mlm", "general", "finished", time.time())
    return root


def test_runs_json_lists_trials_with_their_sweep_and_number(root: Path) -> None:
    done = runner.invoke(app, ["runs", "--out", str(root), "--json"], catch_exceptions=False)
    rows = json.loads(done.stdout)
    assert [row["name"] for row in rows] == ["new-run", *(f"width-lr/t{i:03d}" for i in range(6)), "old-run"]
    trials = [row for row in rows if row["sweep"]]
    assert {row["sweep"] for row in trials} == {"width-lr"} and [row["trial"] for row in trials] == list(range(6))
    assert rows[0]["sweep"] is None and rows[0]["trial"] is None
    assert all(row["state"] == "finished" and row["steps"] == 40 for row in trials)


def test_runs_table_groups_a_sweeps_trials(root: Path) -> None:
    done = runner.invoke(app, ["runs", "--out", str(root)], env={"COLUMNS": "100"}, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "6 of them trials of 1 sweep(s)" in " ".join(done.output.split())
    lines = done.output.splitlines()
    first, last = (next(i for i, line in enumerate(lines) if f"width-lr/t00{n}" in line) for n in (0, 5))
    assert last - first == 5  # together, in trial order
    assert lines[first - 1].startswith("├") and lines[last + 1].startswith("├")  # set apart from the runs around them


def test_a_trial_name_is_a_run_name(root: Path) -> None:
    """The name listed is the one other commands take."""
    from workbench.runs.rundir import find_run

    trial = next(row for row in list_runs(str(root)) if row.sweep)
    assert find_run(trial.name, str(root)).path.resolve() == Path(trial.path).resolve()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def keys(table: DataTable) -> list[str]:
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


@pytest.mark.anyio
async def test_runs_pane_folds_a_sweep(root: Path) -> None:
    app = create_app(root, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        await app.workers.wait_for_complete()
        await pilot.pause()
        pane = app.query_one(RunsPane)
        table = app.query_one("#runs-table", DataTable)
        assert len(pane.rows) == 8
        assert [key.rsplit("/", 1)[-1] for key in keys(table)] == ["new-run", f"{SWEEP_KEY}width-lr", "old-run"]  # folded
        assert "6 finished" in str(table.get_row_at(1)[1]) and "6 trials" in str(table.get_row_at(1)[2])
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("enter")  # unfolds
        await pilot.pause()
        assert table.row_count == 9 and [str(table.get_row_at(i)[0]).strip() for i in (2, 7)] == ["t000", "t005"]
        table.move_cursor(row=4)
        await pilot.pause()
        assert pane.selected_path() == str((root / "width-lr" / "t002").resolve())
        await pilot.press("z")  # folds the sweep of the trial under the cursor, which lands on the sweep
        await pilot.pause()
        assert table.row_count == 3 and table.cursor_row == 1 and pane.selected_path() is None
