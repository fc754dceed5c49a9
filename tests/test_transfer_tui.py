"""The Compare pane's transfer view: a fixed transfer study (no training), Pilot and snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import wait_until
from sweep_fixtures import CREATED, result, write_results, write_sweep_toml
from textual.widgets import DataTable, OptionList

from workbench.config import RunSpec
from workbench.runs.rundir import RunDir
from workbench.runs.transferdir import pretrain_entry, write_transfer
from workbench.tui.app import create_app
from workbench.tui.panes.compare import ComparePane

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300), pytest.mark.slow]  # drives the whole TUI: `pytest -m "not slow"` skips it

STEPS = (10, 40)
ACCURACY = {"pre@10": (0.55, 0.57, 0.56), "pre@40": (0.60, 0.62, 0.64), "pre@initial": (0.50, 0.52, 0.51),
            "minilm": (0.70, 0.72, 0.71)}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_pretrain(root: Path) -> Path:
    """A pre-training run's folder as the view reads it: run.toml, a started event, kept checkpoints' states."""
    run = RunDir(root / "pre")
    run.path.mkdir(parents=True)
    run.write_run_toml(RunSpec(objective="mlm", name="pre", out=str(root)), {"created": CREATED})
    run.metrics.write_text(json.dumps({"event": "started", "time": CREATED, "run_dir": "pre", "name": "pre", "objective": "mlm",
                                       "corpus": "general", "total_steps": 40, "parameters": 800_000, "device": "cpu",
                                       "precision": "fp32"}) + "\n", encoding="utf-8")
    for step in STEPS:
        folder = run.path / "checkpoints" / f"step-{step:07d}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}", encoding="utf-8")
        (folder / "trainer_state.json").write_text(json.dumps({"step": step, "tokens_seen": step * 512}), encoding="utf-8")
    return run.path


def write_trial(folder: Path, trial: int, base: str, seed: int, accuracy: float) -> None:
    run = RunDir(folder / f"t{trial:03d}")
    run.path.mkdir(parents=True)
    spec = RunSpec(objective="sentiment", base=base, seed=seed, name=run.path.name, out=str(folder))
    run.write_run_toml(spec, {"created": CREATED + trial})
    (run.path / "status.json").write_text(json.dumps({"status": "finished", "step": 10}), encoding="utf-8")
    loss = 0.7 - (accuracy - 0.5)
    events = [{"event": "started", "time": CREATED + trial, "run_dir": run.path.name, "name": run.path.name,
               "objective": "sentiment", "corpus": "reviews.csv", "total_steps": 10, "parameters": 800_000,
               "device": "cpu", "precision": "fp32"},
              {"event": "eval", "time": CREATED + trial + 5, "step": 10, "eval_loss": loss, "perplexity": 2.0,
               "examples": 1067, "tokens": 30000, "fraction": 1.0, "coverage": "whole eval split (1067 examples)",
               "metrics": {"accuracy": accuracy}},
              {"event": "finished", "time": CREATED + trial + 6, "status": "finished", "step": 10, "run_dir": run.path.name}]
    run.metrics.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    run.write_summary({"status": "finished", "steps": 10, "eval_loss_after": loss, "metrics": {"accuracy": accuracy}})


def fixed_study(root: Path) -> Path:
    pre = write_pretrain(root)
    folder = root / "study"
    bases = [f"{pre}@{s}" for s in STEPS] + [f"{pre}@initial", "minilm"]
    write_sweep_toml(folder, {"objective": "sentiment", "max_steps": 10}, {"base": bases}, seeds=3)
    write_transfer(folder, [pretrain_entry(folder, str(pre), "mlm", list(STEPS), True)], ["minilm"])
    results, trial = [], 0
    for base in bases:
        key = Path(base).name
        for seed, accuracy in zip((42, 43, 44), ACCURACY[key]):
            write_trial(folder, trial, base, seed, accuracy)
            results.append(result(trial, {"base": base, "seed": seed}, "complete", accuracy, 10, folder))
            trial += 1
    write_results(folder, results)
    return folder


async def test_the_compare_pane_shows_a_transfer_study_as_one_row_per_base(tmp_path: Path) -> None:
    study = fixed_study(tmp_path)
    app = create_app(tmp_path, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        pane = app.query_one(ComparePane)
        await wait_until(pilot, lambda: pane.targets)
        options = app.query_one("#compare-sources", OptionList)
        names = [Path(str(options.get_option_at_index(i).id)).name for i in range(options.option_count)]
        options.highlighted = names.index(study.name)
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.transfer is not None)
        table = app.query_one("#compare-table", DataTable)
        assert table.row_count == 4
        assert [str(c) for c in table.get_row_at(0)][:4] == ["pre@10", "10", "5.12k", "24.6G"]
        assert "transfer study" in str(app.query_one("#compare-title").render())
        assert "minilm" in str(app.query_one("#compare-legend").render())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_transfer_view_snapshot(snap_compare, tmp_path_factory: pytest.TempPathFactory, size) -> None:
    root = tmp_path_factory.mktemp("transfer-snap")
    fixed_study(root)

    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.press("6")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        options = pilot.app.query_one("#compare-sources", OptionList)
        names = [Path(str(options.get_option_at_index(i).id)).name for i in range(options.option_count)]
        options.highlighted = names.index("study")
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.3)

    assert snap_compare(create_app(root, corpora=["general"], runs_poll_seconds=0), terminal_size=size, run_before=run_before)
