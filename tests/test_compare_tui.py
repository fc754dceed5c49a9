"""The TUI's Compare pane: a real sweep with its fitted exponent, runs overlaid, live updates, snapshots."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from conftest import wait_until
from sweep_fixtures import WIDTHS, fixed_sweep, real_sweep, sweeps_root, write_results
from textual.widgets import DataTable, OptionList, TabbedContent

from workbench.tui.app import create_app
from workbench.tui.panes.compare import ComparePane

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300), pytest.mark.slow]  # drives the whole TUI: `pytest -m "not slow"` skips it


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def width_sweep(tmp_path_factory: pytest.TempPathFactory, story_corpus: Path) -> Path:
    return real_sweep(sweeps_root(tmp_path_factory), story_corpus, "width", WIDTHS)


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def legend(app) -> str:
    return str(app.query_one("#compare-legend").render())


def choose(app, name: str) -> int:
    """The index of ``name`` in the pane's list of sweeps and runs."""
    options = app.query_one("#compare-sources", OptionList)
    return [Path(str(options.get_option_at_index(i).id)).name for i in range(options.option_count)].index(name)


async def test_compare_pane_opens_a_sweep_and_shows_the_exponent(width_sweep: Path) -> None:
    app = create_app(width_sweep.parent, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        await settle(pilot)
        assert app.query_one(TabbedContent).active == "compare"
        assert isinstance(app.focused, OptionList)
        app.query_one("#compare-sources", OptionList).highlighted = choose(app, "width")
        await pilot.press("enter")
        await settle(pilot)
        pane = app.query_one(ComparePane)
        assert pane.comparison is not None and pane.comparison.kind == "sweep"
        table = app.query_one("#compare-table", DataTable)
        assert table.row_count == 3
        assert [str(table.get_row_at(i)[0]) for i in range(3)] == ["t002", "t001", "t000"]  # widest first: lowest loss
        assert pane.plot == "scaling"
        assert "exponent" in legend(app) and "N = parameters" in legend(app)
        fit = app.query_one("#compare-scaling").view.outcome.fit
        assert fit is not None and fit.b > 0
        await pilot.press("a")  # the size axis: FLOPs next
        await settle(pilot)
        assert app.query_one("#compare-scaling").view.x == "flops" and "C = flops" in legend(app)
        await pilot.press("g")
        assert pane.plot == "curves" and "t000" in legend(app) and "t002" in legend(app)


async def test_compare_pane_overlays_chosen_runs(tmp_path: Path) -> None:
    folder = fixed_sweep(tmp_path)
    for name in ("t000", "t004"):  # two runs of their own under the run root
        shutil.copytree(folder / name, tmp_path / f"run-{name}")
    app = create_app(tmp_path, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await settle(pilot)
        options = app.query_one("#compare-sources", OptionList)
        for name in ("run-t000", "run-t004"):
            options.highlighted = choose(app, name)
            await pilot.press("enter")
            await settle(pilot)
        pane = app.query_one(ComparePane)
        assert pane.comparison.kind == "runs" and [row.name for row in pane.comparison.rows] == ["run-t004", "run-t000"]
        assert pane.comparison.fields == ["d_model"]  # the fixed runs.toml hold the unresolved spec
        assert "run-t004" in legend(app) and "run-t000" in legend(app)
        assert len(app.query_one("#compare-curves").curves) == 2
        options.highlighted = choose(app, "run-t000")
        await pilot.press("enter")  # chosen again: taken out
        await settle(pilot)
        assert [row.name for row in pane.comparison.rows] == ["run-t004"]


async def test_compare_pane_follows_a_running_sweep(tmp_path: Path) -> None:
    """Trials another process adds (a run folder, then its results line) appear by themselves."""
    folder = fixed_sweep(tmp_path)
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    parked = tmp_path / "parked"
    parked.mkdir()
    for name in ("t003", "t004", "t005"):
        shutil.move(str(folder / name), str(parked / name))
    write_results(folder, lines[:3])
    app = create_app(tmp_path, corpora=["general"], runs_poll_seconds=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await settle(pilot)
        await pilot.press("enter")  # the sweep comes first
        await wait_until(pilot, lambda: app.query_one("#compare-table", DataTable).row_count == 3)
        assert "needs at least 3 distinct sizes" in legend(app)
        for name in ("t003", "t004", "t005"):
            shutil.move(str(parked / name), str(folder / name))
            time.sleep(0.01)
        write_results(folder, lines)
        await wait_until(pilot, lambda: app.query_one("#compare-table", DataTable).row_count == 6)
        await wait_until(pilot, lambda: "exponent" in legend(app))


async def test_a_run_writing_redraws_its_curve_not_the_list(tmp_path: Path) -> None:
    """A compared run that logs 10,000 steps: its curve reaches the pane already thinned (the
    UI thread never filters 10k points) and follows new steps; the list of sweeps and runs is
    not rebuilt for it (a run's metrics change the root's signature, not the list); the hidden
    scaling plot is not drawn until it is shown."""
    folder = fixed_sweep(tmp_path)
    run = tmp_path / "run-long"
    shutil.copytree(folder / "t000", run)
    metrics = run / "metrics.jsonl"
    steps = [json.dumps({"event": "step", "time": 1.0 + step, "step": step, "total_steps": 20_000, "loss": 3 + 1 / step,
                         "lr": 1e-3, "tokens": step * 64, "tokens_per_s": 1.0, "elapsed_s": 0.1, "eta_s": 1.0})
             for step in range(1, 10_001)]
    metrics.write_text("\n".join(steps) + "\n")
    app = create_app(tmp_path, corpora=["general"], runs_poll_seconds=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        await settle(pilot)
        options = app.query_one("#compare-sources", OptionList)
        options.highlighted = choose(app, "run-long")
        await pilot.press("enter")
        pane = app.query_one(ComparePane)
        await wait_until(pilot, lambda: len(pane.curves) == 1)
        curve = pane.curves[0]
        assert curve.train_steps[0] == 1 and curve.train_steps[-1] == 10_000 and 20 <= len(curve.train_steps) <= 400
        assert len(curve.train_tokens) == len(curve.train_steps) and curve.train_tokens[-1] == 640_000
        assert app.query_one("#compare-scaling").stale  # hidden: nothing drawn for it
        first = options.get_option_at_index(0)
        with metrics.open("a") as handle:
            handle.write(json.dumps({"event": "step", "time": 1e4, "step": 10_001, "total_steps": 20_000, "loss": 2.5, "lr": 1e-3,
                                     "tokens": 10_001 * 64, "tokens_per_s": 1.0, "elapsed_s": 0.1, "eta_s": 1.0}) + "\n")
        await wait_until(pilot, lambda: pane.curves[0].train_steps[-1] == 10_001)
        assert pane.curves[0].train_loss[-1] == 2.5  # the last point is kept exactly
        assert options.get_option_at_index(0) is first  # the list was not rebuilt
        await pilot.press("g")
        assert not app.query_one("#compare-scaling").stale  # shown: drawn now


# ---------------------------------------------------------------------------- snapshots
@pytest.fixture
def fixed_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    root = tmp_path / "runs"
    fixed_sweep(root)
    yield root
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_compare_pane_snapshot(snap_compare, fixed_root: Path, size) -> None:
    """The fixed 3 x 2 width x lr sweep: the table, the scaling plot and its fit."""

    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in ("6", "enter"):
            await pilot.press(key)
            await settle(pilot)
        await pilot.pause(0.3)  # the tab underline's animation

    assert snap_compare(create_app(fixed_root, corpora=["general"], runs_poll_seconds=0), terminal_size=size, run_before=run_before)


async def test_a_sweep_started_from_the_pane_is_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """S, a grid, Enter: the Objective pane's spec and the grid go to `workbench sweep` (here a stand-in
    that writes a finished sweep folder), and the pane opens that sweep."""
    import workbench.tui.panes.compare as compare_pane
    from workbench.experiments.launch import LaunchedSweep

    asked = {}

    class Done:
        pid = 4242

        def poll(self) -> int:
            return 0

    def fake_start(spec: dict, axes: dict, root: Path, name: str | None = None) -> LaunchedSweep:
        asked.update(spec=spec, axes=axes, root=root)
        fixed_sweep(root, "from-tui")
        return LaunchedSweep(Done(), "from-tui", root / "from-tui", root / "from-tui.sweep.log")

    monkeypatch.setattr(compare_pane, "start_sweep_process", fake_start)
    app = create_app(tmp_path, corpora=["general", "domain"], runs_poll_seconds=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await settle(pilot)
        await pilot.press("S")
        await pilot.press(*"lr=1e-3,3e-3 d_model=32", "enter")
        await settle(pilot)
        assert asked["axes"] == {"lr": "1e-3,3e-3", "d_model": "32"} and asked["root"] == tmp_path
        assert asked["spec"]["corpus"] == "general" and asked["spec"]["objective"] == "clm"
        pane = app.query_one(ComparePane)
        await wait_until(pilot, lambda: pane.comparison is not None and len(pane.comparison.rows) == 6)
        assert pane.sweep == str((tmp_path / "from-tui").resolve()) and "exponent" in legend(app)
        assert not app.query_one("#compare-grid").display  # the grid field is hidden again
