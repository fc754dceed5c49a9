"""`workbench compare` and its library: real tiny sweeps, the power-law fit, bad input."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest
from sweep_fixtures import GRID_2X2, WIDTHS, fixed_sweep, real_sweep, sweeps_root, write_results
from typer.testing import CliRunner

from workbench.cli import app
from workbench.experiments.compare import collect, scaling_view, seed_summary
from workbench.experiments.scaling import fit_power_law

runner = CliRunner()


@pytest.fixture(scope="session")
def grid_sweep(tmp_path_factory: pytest.TempPathFactory, story_corpus: Path) -> Path:
    return real_sweep(sweeps_root(tmp_path_factory), story_corpus, "grid", GRID_2X2)


@pytest.fixture(scope="session")
def width_sweep(tmp_path_factory: pytest.TempPathFactory, story_corpus: Path) -> Path:
    return real_sweep(sweeps_root(tmp_path_factory), story_corpus, "width", WIDTHS)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# ---------------------------------------------------------------------------- the fit
def test_fit_recovers_a_known_exponent() -> None:
    sizes = [1e4, 3e4, 1e5, 3e5, 1e6, 3e6]
    rng = random.Random(0)
    losses = [(7.0 * x ** -0.28 + 1.7) * (1 + rng.gauss(0, 0.001)) for x in sizes]
    fit = fit_power_law(sizes, losses).fit
    assert fit is not None and not fit.exact
    assert fit.b == pytest.approx(0.28, abs=0.02)
    assert fit.c == pytest.approx(1.7, abs=0.05)
    assert fit.rms < 0.01
    assert fit.predict(1e5) == pytest.approx(7.0 * 1e5 ** -0.28 + 1.7, rel=0.01)


def test_fit_says_why_it_cannot_fit() -> None:
    assert fit_power_law([1, 2], [3.0, 2.0]).reason == "needs at least 3 distinct sizes with a loss, has 2"
    assert fit_power_law([1, 1, 1, 2], [3.0, 2.9, 2.8, 2.0]).fit is None  # 2 distinct sizes
    rising = fit_power_law([1e3, 1e4, 1e5], [2.0, 2.5, 3.0])
    assert rising.fit is None and "does not fall" in rising.reason
    assert fit_power_law([0, -1, math.nan, 4], [1.0, 1.0, 1.0, 1.0]).fit is None


# ---------------------------------------------------------------------------- real sweeps
def test_grid_sweep_json_lists_four_trials(grid_sweep: Path) -> None:
    done = invoke("compare", str(grid_sweep), "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert data["kind"] == "sweep" and len(data["rows"]) == 4
    assert data["fields"][:2] == ["lr", "d_model"]
    combos = {(row["fields"]["lr"], row["fields"]["d_model"]) for row in data["rows"]}
    assert combos == {(1e-3, 16), (1e-3, 32), (3e-3, 16), (3e-3, 32)}
    values = [row["value"] for row in data["rows"]]
    assert values == sorted(values) and all(v is not None and 0 < v < 10 for v in values)
    for row in data["rows"]:
        assert row["state"] == "complete" and row["steps"] == 40
        assert row["final_eval_loss"] == row["value"] and "whole eval split" in row["final_eval_covers"]
        assert row["best_eval_loss"] <= row["final_eval_loss"] and row["best_eval_covers"].startswith("lowest of 3 evals")
        assert row["tokens"] == 40 * 8 * 32
        assert row["flops"] == 6 * row["parameters"] * row["tokens"]
        assert row["task_metric"]["name"] == "perplexity"
        assert row["wall_s"] > 0 and row["train_s"] > 0
    small = {row["parameters"] for row in data["rows"] if row["fields"]["d_model"] == 16}
    large = {row["parameters"] for row in data["rows"] if row["fields"]["d_model"] == 32}
    assert len(small) == len(large) == 1 and small.pop() < large.pop()
    by_lr = {entry["value"]: entry for entry in data["summary"]["fields"]["lr"]}
    assert by_lr[1e-3]["n"] == by_lr[3e-3]["n"] == 2


def test_width_sweep_prints_the_fitted_exponent(width_sweep: Path) -> None:
    done = invoke("compare", str(width_sweep))
    assert done.exit_code == 0, done.output
    assert "exponent" in done.output and "3 sizes" in done.output, done.output
    for name in ("t000", "t001", "t002"):
        assert name in done.output
    view = scaling_view(collect([str(width_sweep)]))
    assert view.x == "parameters" and len(view.frontier) == 3
    assert view.outcome.fit is not None and view.outcome.fit.b > 0


def test_runs_by_name_show_the_fields_that_differ(width_sweep: Path) -> None:
    comparison = collect(["t000", "t002"], out=str(width_sweep))
    assert comparison.kind == "runs"
    assert [row.name for row in comparison.rows] == ["t002", "t000"]  # the wider model reaches a lower loss
    assert comparison.fields == ["d_model", "d_ff"]  # d_ff follows d_model; name and out are left out


# ---------------------------------------------------------------------------- sweeps as files
def test_a_failed_trial_without_a_run_is_listed_with_its_reason(tmp_path: Path) -> None:
    folder = fixed_sweep(tmp_path)
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    shutil.rmtree(folder / "t005")
    lines[5].update(state="failed", reason="out of memory at step 3", value=None)
    write_results(folder, lines + ["not a trial"])  # type: ignore[list-item]
    comparison = collect([str(folder)])
    failed = comparison.rows[-1]
    assert (failed.name, failed.state, failed.reason, failed.path) == ("t005", "failed", "out of memory at step 3", None)
    assert failed.value is None and len(comparison.rows) == 6
    assert comparison.problems == ["results.jsonl: 1 unreadable line skipped"]


def test_seed_summary_gives_mean_and_spread_over_seeds(tmp_path: Path) -> None:
    folder = fixed_sweep(tmp_path)
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    for line in lines:  # read the lr axis as two seeds of each width
        line["params"] = {"d_model": line["params"]["d_model"], "seed": 42 if line["params"]["lr"] < 2e-3 else 43}
    write_results(folder, lines)
    (folder / "sweep.toml").write_text('seeds = 2\nmetric = "eval_loss"\n[grid]\nd_model = [32, 64, 128]\n')
    comparison = collect([str(folder)])
    assert comparison.swept == ["d_model", "seed"]
    groups = seed_summary(comparison)["groups"]
    assert [group["n"] for group in groups] == [2, 2, 2]
    assert all(group["std"] == pytest.approx(0.08 / math.sqrt(2)) for group in groups)
    done = invoke("compare", str(folder))
    assert "eval_loss over seeds" in done.output


def test_running_trials_are_listed_but_not_fitted(tmp_path: Path) -> None:
    folder = fixed_sweep(tmp_path)
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    for line in lines[4:]:  # the widest two: still running, their last eval is not their final one
        line.update(state="running", value=None)
    write_results(folder, lines[:5])  # t005 has started but is not in results.jsonl yet
    comparison = collect([str(folder)])
    assert len(comparison.rows) == 6 and {row.name for row in comparison.rows if not row.is_final} == {"t004"}
    view = scaling_view(comparison)
    assert [size for size, _, _ in view.frontier] == sorted({row.parameters for row in comparison.rows if row.name != "t004"})
    assert "t004" not in [name for _, _, name in view.points]


def test_bad_paths_are_one_line_errors(tmp_path: Path) -> None:
    for args in (["compare", str(tmp_path / "nothing")], ["compare", str(fixed_sweep(tmp_path)), "--x", "colour"]):
        done = invoke(*args)
        assert done.exit_code == 2, done.output
        assert len(done.output.strip().splitlines()) == 1 and "Fix:" in done.output, done.output


def test_a_typed_grid_becomes_sweep_flags(tmp_path: Path) -> None:
    from workbench.errors import SpecError
    from workbench.experiments.launch import parse_grid, sweep_command

    axes = parse_grid("lr=1e-3,3e-3; d_model=32,64")
    assert axes == {"lr": "1e-3,3e-3", "d_model": "32,64"}
    command = sweep_command(tmp_path / "spec.toml", axes, tmp_path, "s1")
    assert command[2:5] == ["workbench", "sweep", "--config"] and command[-4:] == ["--grid", "lr=1e-3,3e-3", "--grid", "d_model=32,64"]
    for bad in ("", "lr", "lr=1=2"):
        with pytest.raises(SpecError):
            parse_grid(bad)


def test_a_narrow_table_leaves_out_columns_never_the_name(tmp_path: Path) -> None:
    from rich.console import Console

    from workbench.commands.compare import compare_table

    folder = fixed_sweep(tmp_path, "a-sweep-with-a-long-name")
    comparison = collect([str(folder)])
    for width, kept, gone in ((160, ["time", "best eval"], []), (60, ["eval loss", "step", "state"], ["best eval", "tokens", "time"])):
        console = Console(width=width, record=True)
        console.print(compare_table(comparison, width))
        text = console.export_text()
        assert all(len(line) <= width for line in text.splitlines())
        assert all(name in text for name in ("t000", "t005")) and all(column in text for column in kept)
        assert not any(column in text for column in gone)
