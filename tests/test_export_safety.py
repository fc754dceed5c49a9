"""Export writes only where it says, whole, once: no writing through links, atomic CSV,
event files swapped in (twice == once), and one line for a place it cannot write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sweep_fixtures import write_fixed_trial
from test_export import scalars_in, tiny_run
from typer.testing import CliRunner

from workbench.cli import app

runner = CliRunner()


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A finished run's files (fixed numbers, no training): 4 steps and 3 evals."""
    write_fixed_trial(tmp_path / "runs", 0, 32, 1e-3)
    return tmp_path / "runs" / "t000"


def export(run: Path, fmt: str, *extra: str):
    return runner.invoke(app, ["export", str(run), "--format", fmt, *extra])


def one_line_refusal(done) -> str:
    assert done.exit_code == 2, done.output
    assert len(done.output.strip().splitlines()) == 1 and "Traceback" not in done.output, done.output
    return done.output


@pytest.mark.parametrize("fmt,name", [("csv", "metrics.csv"), ("tensorboard", "tensorboard")])
def test_export_through_a_symlink_is_refused_and_the_victim_unchanged(run: Path, fmt: str, name: str) -> None:
    victim = run.parent.parent / "victim"
    if fmt == "csv":
        victim.write_text("precious\n")
    else:
        victim.mkdir()
        (victim / "precious").write_text("precious\n")
    os.symlink(os.path.relpath(victim, run), run / name)
    text = one_line_refusal(export(run, fmt))
    assert "symbolic link" in text and name in text
    assert (victim.read_text() if fmt == "csv" else sorted(os.listdir(victim))) == ("precious\n" if fmt == "csv" else ["precious"])
    assert (run / name).is_symlink()  # left as it was: refused, not replaced


def test_csv_export_twice_is_the_same_as_once(run: Path) -> None:
    assert export(run, "csv").exit_code == 0
    once = (run / "metrics.csv").read_bytes()
    assert export(run, "csv").exit_code == 0
    assert (run / "metrics.csv").read_bytes() == once
    assert not [name for name in os.listdir(run) if name.endswith(".tmp")]  # no temp file left behind


def test_tensorboard_export_twice_is_the_same_as_once(run: Path) -> None:
    pytest.importorskip("tensorboard")
    assert export(run, "tensorboard").exit_code == 0
    once = scalars_in(run / "tensorboard")
    assert len(once["train/loss"]) == 4 and len(once["eval/loss"]) == 3
    done = export(run, "tensorboard")
    assert done.exit_code == 0, done.output
    assert scalars_in(run / "tensorboard") == once  # each point once, not twice
    assert len(os.listdir(run / "tensorboard")) == 1  # one event file
    assert not [name for name in os.listdir(run) if name.startswith(".tensorboard")]


def test_a_file_where_the_event_folder_goes_is_one_line(run: Path) -> None:
    (run / "tensorboard").write_text("not a folder\n")
    one_line_refusal(export(run, "tensorboard"))
    assert (run / "tensorboard").read_text() == "not a folder\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only mode")
def test_a_read_only_destination_is_one_line(run: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        one_line_refusal(export(run, "csv", "--to", str(locked / "metrics.csv")))
        one_line_refusal(export(run, "tensorboard", "--to", str(locked / "tb")))
    finally:
        locked.chmod(0o755)


def test_a_stopped_run_that_cannot_report_stays_stopped(story_corpus: Path, tmp_path: Path) -> None:
    """Resuming a run that reports to TensorBoard, with its event folder unusable (a file in its
    place: the stand-in for a read-only folder that works as root too): one line, nothing touched."""
    pytest.importorskip("tensorboard")
    run_dir = tiny_run(story_corpus, tmp_path, "reported", report_to="tensorboard")
    for file in (run_dir / "tensorboard").iterdir():
        file.unlink()
    (run_dir / "tensorboard").rmdir()
    (run_dir / "tensorboard").write_text("in the way\n")
    (run_dir / "status.json").write_text(json.dumps({"status": "stopped", "step": 8}))
    metrics = (run_dir / "metrics.jsonl").read_bytes()
    done = runner.invoke(app, ["run", "--resume", str(run_dir), "--out", str(tmp_path), "--max-steps", "12"])
    assert done.exit_code == 2 and "Traceback" not in done.output, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tensorboard" in errors[0] and "a file is in the folder's place" in errors[0]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "stopped"
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics
