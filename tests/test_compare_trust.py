"""Compare shows a value only for what it is: each row's state and step, completed rows first,
non-final rows out of summaries and fits (with a note), and no ranking across objectives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sweep_fixtures import fixed_sweep, write_fixed_trial, write_results
from typer.testing import CliRunner

from workbench.cli import app
from workbench.experiments.compare import collect, scaling_view, seed_summary

runner = CliRunner()
PRUNED_REASON = "pruned at step 20: eval_loss 3.5 is behind the other trials, and this reason is long on purpose"


def cut_at(run: Path, step: int, status: str, loss: float | None = None) -> None:
    """Make a fixed trial end at ``step`` (no finished event): a pruned or stopped run; ``loss``: its last eval's."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    kept = [line for line in lines if line["event"] != "finished" and line.get("step", 0) <= step]
    if loss is not None:
        next(line for line in reversed(kept) if line["event"] == "eval")["eval_loss"] = loss
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in kept))
    (run / "status.json").write_text(json.dumps({"status": status, "step": step}))


def sweep_with_a_pruned_and_a_stopped_trial(root: Path) -> Path:
    """The fixed 3 x 2 sweep; the widest trials (lowest losses) are pruned and stopped at step 20."""
    folder = fixed_sweep(root)
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    cut_at(folder / "t004", 20, "stopped", loss=1.25)  # lower than any final loss
    cut_at(folder / "t005", 20, "stopped")
    lines[4].update(state="pruned", reason=PRUNED_REASON, value=3.5, step=20)
    lines[5].update(state="complete")  # the record says complete; the run itself says it stopped
    write_results(folder, lines)
    return folder


def test_pruned_and_stopped_trials_are_marked_with_their_step_and_sorted_last(tmp_path: Path) -> None:
    comparison = collect([str(sweep_with_a_pruned_and_a_stopped_trial(tmp_path))])
    states = [(row.name, row.state, row.value_step, row.is_final) for row in comparison.rows]
    assert [state[1] for state in states[:4]] == ["complete"] * 4 and all(step == 40 and final for _, _, step, final in states[:4])
    assert {(name, state, step) for name, state, step, _ in states[4:]} == {("t004", "pruned", 20), ("t005", "stopped", 20)}
    pruned = next(row for row in comparison.rows if row.name == "t004")
    assert pruned.final_eval_loss is None and pruned.eval_loss is not None  # its last loss is shown, never called final
    assert pruned.value < min(row.value for row in comparison.rows[:4])  # lower, and still sorted after the completed ones


def test_summaries_and_the_fit_use_completed_rows_and_say_what_they_left_out(tmp_path: Path) -> None:
    comparison = collect([str(sweep_with_a_pruned_and_a_stopped_trial(tmp_path))])
    summary = seed_summary(comparison)
    assert summary["left_out"] == {"pruned": 1, "stopped": 1} and "left out 1 pruned, 1 stopped" in summary["note"]
    assert sum(entry["n"] for entry in summary["fields"]["d_model"]) == 4
    view = scaling_view(comparison)
    assert {name for _, _, name in view.points} == {"t000", "t001", "t002", "t003"}
    assert view.left_out == {"pruned": 1, "stopped": 1}


def test_compare_json_and_table_give_every_row_its_state_and_step(tmp_path: Path) -> None:
    folder = sweep_with_a_pruned_and_a_stopped_trial(tmp_path)
    data = json.loads(runner.invoke(app, ["compare", str(folder), "--json"], catch_exceptions=False).stdout)
    by_name = {row["name"]: row for row in data["rows"]}
    assert (by_name["t004"]["state"], by_name["t004"]["step"], by_name["t004"]["final"]) == ("pruned", 20, False)
    assert by_name["t004"]["final_eval_loss"] is None and by_name["t004"]["eval_step"] == 20
    assert by_name["t000"]["final"] is True and by_name["t000"]["step"] == 40
    assert "left out 1 pruned, 1 stopped" in data["scaling"]["note"]
    done = runner.invoke(app, ["compare", str(folder)], env={"COLUMNS": "80"}, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if "name" in line and "state" in line)
    assert "step" in header and "eval loss" in header and "final" not in header
    pruned_line = next(line for line in lines if "t004" in line)
    value = f"{next(row for row in collect([str(folder)]).rows if row.name == 't004').value:.4f}"
    assert value in pruned_line and "pruned" in pruned_line  # the reason is cut, never the value
    assert "left out 1 pruned, 1 stopped" in " ".join(done.output.split())


def mixed_objectives(root: Path) -> list[Path]:
    """Three clm runs of three widths, an mlm run and a sentiment run whose loss is lowest of all."""
    runs = []
    for trial, d_model in enumerate((32, 64, 128)):
        write_fixed_trial(root, trial, d_model, 1e-3)
        runs.append(root / f"t{trial:03d}")
    for trial, objective in ((3, "mlm"), (4, "sentiment")):
        write_fixed_trial(root, trial, 64, 1e-3)
        run = root / f"t{trial:03d}"
        toml = (run / "run.toml").read_text().replace('objective = "clm"', f'objective = "{objective}"')
        (run / "run.toml").write_text(toml)
        if objective == "sentiment":  # a classification cross-entropy: low, and no perplexity
            lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            for line in lines:
                if line["event"] == "eval":
                    line.update(eval_loss=0.696, perplexity=None, metrics={"accuracy": 0.51})
            (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        runs.append(run)
    return runs


def test_mixed_objectives_are_grouped_not_ranked_and_fitted_apart(tmp_path: Path) -> None:
    runs = mixed_objectives(tmp_path)
    comparison = collect([str(run) for run in runs])
    assert comparison.groups()[0] == "clm" and set(comparison.groups()) == {"clm", "mlm", "sentiment"}
    assert [row.objective for row in comparison.rows][:3] == ["clm"] * 3  # the sentiment loss is lower, but not ranked first
    sentiment = next(row for row in comparison.rows if row.objective == "sentiment")
    assert sentiment.task_metric == "accuracy"  # never a perplexity for a classification loss
    view = scaling_view(comparison)
    assert view.group == "clm" and {name for _, _, name in view.points} == {"t000", "t001", "t002"}
    assert view.other_groups == 2 and view.outcome.fit is not None
    data = json.loads(runner.invoke(app, ["compare", *map(str, runs), "--json"], catch_exceptions=False).stdout)
    assert data["objectives"] == comparison.groups() and set(data["scaling_by_objective"]) == {"clm", "mlm", "sentiment"}
    assert data["scaling_by_objective"]["sentiment"]["fit"] is None
    done = runner.invoke(app, ["compare", *map(str, runs)], env={"COLUMNS": "100"}, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "3 objectives" in text and "ranked within each objective" in text
    assert len(re.findall(r"exponent", text)) == 1  # only the clm group has three sizes
    assert "ppl" not in next(line for line in done.output.splitlines() if "t004" in line)


# ---------------------------------------------------------------------------- the Compare pane
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_compare_pane_shows_the_value_at_80_columns_whatever_the_reason(tmp_path: Path) -> None:
    from textual.widgets import DataTable

    from workbench.tui.app import create_app
    from workbench.tui.panes.compare import ComparePane

    sweep_with_a_pruned_and_a_stopped_trial(tmp_path)
    app = create_app(tmp_path, corpora=["general"], runs_poll_seconds=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await pilot.app.workers.wait_for_complete()
        await pilot.press("enter")  # the sweep comes first
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        pane = app.query_one(ComparePane)
        assert pane.comparison is not None
        table = app.query_one("#compare-table", DataTable)
        widths = {column.key.value: column.get_render_width(table) for column in table.columns.values()}
        keys = list(widths)
        end = sum(widths[key] for key in keys[: keys.index("value") + 1])
        assert end <= table.scrollable_content_region.width  # the value is on screen, not scrolled off
        assert [str(label.plain) for label in (table.columns[key].label for key in keys[:4])] == ["name", "eval loss", "step", "state"]
        pruned = [str(cell) for cell in table.get_row_at(4)]
        assert pruned[0] == "t004" and pruned[2] == "20" and pruned[3].startswith("pruned") and len(pruned[3]) <= 24
