"""`--report-to tensorboard|trackio` and `workbench export`: read back with TensorBoard's own reader."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from faults_helpers import subprocess_env, workbench_cmd
from typer.testing import CliRunner

from tests.conftest import tiny_overrides
from workbench.cli import app
from workbench.config import RunSpec
from workbench.errors import SpecError
from workbench.runs.reporting import check_reporters, destinations, event_scalars

runner = CliRunner()
TINY = dict(objective="clm", max_steps=8, n_layer=1, n_head=2, d_model=16, device="cpu",
            **tiny_overrides(log_interval=2, eval_interval=4, keep_checkpoints=1))


def tiny_run(corpus: Path, out: Path, name: str, **extra) -> Path:
    from workbench.engine.runner import run_spec

    return run_spec(RunSpec(corpus=str(corpus), out=str(out), name=name, **TINY, **extra)).run_dir


def scalars_in(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a folder of event files, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def from_metrics(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "train/loss": [(e["step"], e["loss"]) for e in events if e["event"] == "step"],
        "train/lr": [(e["step"], e["lr"]) for e in events if e["event"] == "step"],
        "eval/loss": [(e["step"], e["eval_loss"]) for e in events if e["event"] == "eval" and e.get("split", "eval") == "eval"],
    }


def test_report_to_tensorboard_and_export_match_metrics_jsonl(story_corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    run_dir = tiny_run(story_corpus, tmp_path, "reported", report_to="tensorboard")
    expected = from_metrics(run_dir)
    assert len(expected["train/loss"]) == 4 and len(expected["eval/loss"]) == 3
    live = scalars_in(run_dir / "tensorboard")
    done = runner.invoke(app, ["export", str(run_dir), "--format", "tensorboard", "--to", str(tmp_path / "exported")])
    assert done.exit_code == 0, done.output
    exported = scalars_in(tmp_path / "exported")
    for found in (live, exported):
        assert {"train/loss", "train/lr", "train/tokens_per_s", "eval/loss", "eval/perplexity"} <= set(found)
        for tag, points in expected.items():
            assert [step for step, _ in found[tag]] == [step for step, _ in points], tag
            assert [value for _, value in found[tag]] == pytest.approx([value for _, value in points], rel=1e-6), tag


def test_export_csv_has_a_row_per_step_and_eval(story_corpus: Path, tmp_path: Path) -> None:
    run_dir = tiny_run(story_corpus, tmp_path, "plain")
    assert not (run_dir / "tensorboard").exists()  # report_to defaults to none
    done = runner.invoke(app, ["export", "plain", "--out", str(tmp_path), "--format", "csv"])
    assert done.exit_code == 0, done.output
    with (run_dir / "metrics.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected = from_metrics(run_dir)
    steps = [row for row in rows if row["event"] == "step"]
    evals = [row for row in rows if row["event"] == "eval"]
    assert [(int(r["step"]), float(r["loss"])) for r in steps] == expected["train/loss"]
    assert [(int(r["step"]), float(r["eval_loss"])) for r in evals] == expected["eval/loss"]
    assert all(r["coverage"] and r["eval_tokens"] and not r["tokens"] for r in evals)


def trackio_values(store: Path, project: str, run: str, metric: str) -> list[tuple[int, float]]:
    """(step, value) of one metric, read back by trackio's own documented CLI (``trackio get metric``)."""
    done = subprocess.run([sys.executable, "-c", "from trackio.cli import main; main()", "get", "metric", "--project", project,
                           "--run", run, "--metric", metric, "--json"], env={**subprocess_env(), "TRACKIO_DIR": str(store)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [(row["step"], row["value"]) for row in json.loads(done.stdout)["values"]]


@pytest.mark.slow  # three processes
def test_report_to_trackio_reads_back_the_losses_of_metrics_jsonl(story_corpus: Path, tmp_path: Path) -> None:
    """The real trackio, in processes of their own (it reads ``TRACKIO_DIR`` when imported):
    its banners stay off the ``--json`` stdout, and a resume continues the same trackio run."""
    pytest.importorskip("trackio")
    store, root = tmp_path / "trackio", tmp_path / "root"
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items()]
    env = {**subprocess_env(), "TRACKIO_DIR": str(store)}
    done = subprocess.run(workbench_cmd("run", "--corpus", str(story_corpus), "--out", str(root), "--name", "tracked", *flags,
                                        "--report-to", "trackio", "--json"), env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(line.startswith("{") for line in done.stdout.splitlines()), done.stdout[:500]  # JSON events only
    resumed = subprocess.run(workbench_cmd("run", "--resume", "tracked", "--out", str(root), "--max-steps", "12", "--json"),
                             env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    expected = from_metrics(root / "tracked")
    assert [step for step, _ in expected["train/loss"]] == [2, 4, 6, 8, 10, 12]
    for tag in ("train/loss", "eval/loss"):
        found = trackio_values(store, "root", "tracked", tag)
        assert [step for step, _ in found] == [step for step, _ in expected[tag]], tag
        assert [value for _, value in found] == pytest.approx([value for _, value in expected[tag]], rel=1e-6), tag
    assert [p.name for p in store.iterdir() if p.suffix == ".db"] == ["root.db"]  # nothing else written there


def test_a_missing_extra_is_one_line_before_training(story_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("tensorboard", "trackio") else real(name, *a))
    with pytest.raises(SpecError, match=r'pip install "lm-workbench\[trackio\]"'):
        check_reporters("trackio")
    done = runner.invoke(app, ["run", "--corpus", str(story_corpus), "--out", str(tmp_path), "--max-steps", "1",
                               "--report-to", "tensorboard"])
    assert done.exit_code == 2, done.output
    assert done.output.strip().count("\n") == 0 and 'pip install "lm-workbench[tensorboard]"' in done.output
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing started


def test_report_to_values() -> None:
    assert destinations("none") == [] and destinations("tensorboard,trackio") == ["tensorboard", "trackio"]
    with pytest.raises(SpecError, match="unknown report_to"):
        RunSpec(report_to="wandb").validate()
    scalars = event_scalars({"event": "eval", "step": 4, "eval_loss": 2.0, "perplexity": 7.39, "split": "base_eval",
                             "metrics": {"accuracy": 0.5, "label": "x", "bad": float("nan")}})
    assert scalars == [("base_eval/loss", 2.0, 4), ("base_eval/perplexity", 7.39, 4), ("base_eval/accuracy", 0.5, 4)]
