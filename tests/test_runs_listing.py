"""`workbench runs`: the name a user copies is never cut, whatever the width; ``--json`` lists the rows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench.cli import app

runner = CliRunner()

RUNS = {
    # name: (objective, corpus, status)
    "clm-general-20261231-235959": ("clm", "general", "stopped"),
    "sentiment-my-product-reviews-20261231-235959-2": ("sentiment", "/data/corpora/my-product-reviews.csv", "finished"),
    "mlm-[weird]-name": ("mlm", "domain", "running"),
}


def write_run(root: Path, name: str, objective: str, corpus: str, status: str, created: float) -> None:
    """A run folder as the engine leaves it, small: run.toml, status.json and metrics.jsonl."""
    folder = root / name
    folder.mkdir(parents=True)
    folder.joinpath("run.toml").write_text(
        f'[spec]\nobjective = "{objective}"\ncorpus = "{corpus}"\n\n[meta]\ncreated = {created}\n', encoding="utf-8")
    folder.joinpath("status.json").write_text(json.dumps({"status": status, "pid": 999_999_999}), encoding="utf-8")
    events = [{"event": "started", "time": created, "run_dir": str(folder), "name": name, "objective": objective,
               "corpus": corpus, "total_steps": 1200, "parameters": 1000, "device": "cpu", "precision": "fp32"},
              {"event": "step", "time": created, "step": 600, "total_steps": 1200, "loss": 3.5, "lr": 1e-3, "tokens": 10,
               "tokens_per_s": 10.0, "elapsed_s": 1.0, "eta_s": 1.0},
              {"event": "eval", "time": created, "step": 600, "eval_loss": 3.25, "perplexity": 25.8}]
    folder.joinpath("metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for i, (name, (objective, corpus, status)) in enumerate(RUNS.items()):
        write_run(root, name, objective, corpus, status, time.time() - 60 * i)
    return root


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_every_name_is_shown_whole_at_any_width(root: Path, width: int) -> None:
    result = runner.invoke(app, ["runs", "--out", str(root)], catch_exceptions=False, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= width for line in lines), result.output
    for name in RUNS:
        assert any(name in line for line in lines), f"{name} cut at width {width}:\n{result.output}"
    assert "…" not in result.output
    if width >= 80:
        assert "interrupted" in result.output  # the status column is kept longest after the name


def test_columns_are_left_out_least_useful_first(root: Path) -> None:
    wide = runner.invoke(app, ["runs", "--out", str(root)], env={"COLUMNS": "200"}).output
    assert all(word in wide for word in ("objective", "corpus", "steps", "best eval", "status", "date", "600/1200", "3.2500"))
    assert "/data/corpora/my-product-reviews.csv" in wide  # nothing wraps when there is room
    narrow = runner.invoke(app, ["runs", "--out", str(root)], env={"COLUMNS": "100"}).output
    assert "date" not in narrow and "status" in narrow


def test_runs_json_lists_every_run(root: Path) -> None:
    result = runner.invoke(app, ["runs", "--out", str(root), "--json"], catch_exceptions=False, env={"COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == list(RUNS)  # newest first
    first = rows[0]
    assert first["path"] == str((root / "clm-general-20261231-235959").resolve())
    assert (first["objective"], first["corpus"], first["base"]) == ("clm", "general", "")
    assert (first["steps"], first["total_steps"], first["best_eval_loss"]) == (600, 1200, 3.25)
    assert first["status"] == "stopped" and first["problems"] == [] and isinstance(first["created"], float)
    assert rows[2]["status"] == "interrupted"  # running, but its process is gone


def test_runs_json_with_no_runs_is_an_empty_list(tmp_path: Path) -> None:
    result = runner.invoke(app, ["runs", "--out", str(tmp_path / "none"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0 and json.loads(result.stdout) == []
