"""`workbench sweep` as real processes: Ctrl-C during trial 3 then --resume, and two
worker processes (``--parallel 2``, each a `workbench sweep --resume`) sharing one SQLite study."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults_helpers import subprocess_env, workbench_cmd
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweep import load_results

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")]


def flags(corpus: Path, out: Path, name: str, steps: int) -> list[str]:
    return ["--corpus", str(corpus), "--out", str(out), "--name", name, "--batch-size", "8", "--seq-len", "32",
            "--vocab-size", "300", "--eval-batches", "2", "--log-interval", "2", "--n-layer", "1", "--n-head", "2",
            "--d-model", "16", "--max-steps", str(steps), "--probe", "The dog wagged its"]


def started_events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "started"]


def study_trials(folder: Path) -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'study.db'}").get_trials()


def wait_for(condition, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended (exit {proc.returncode}) first: {proc.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_ctrl_c_during_trial_3_then_resume_runs_it_from_its_checkpoint_and_trial_4(story_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = [*flags(story_corpus, out, "grid", steps=16), "--save-interval", "4", "--eval-interval", "8",
            "--grid", "lr=1e-3,3e-3", "--grid", "d_model=16,32"]
    proc = subprocess.Popen(workbench_cmd("sweep", *args), cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    third = out / "grid" / "t002"
    wait_for(lambda: any((third / "checkpoints").glob("step-*/MANIFEST.json")), proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    rows = load_results(out / "grid")
    assert [(r["name"], r["state"]) for r in rows] == [("t000", "complete"), ("t001", "complete"), ("t002", "stopped")]
    assert "SIGINT" in rows[2]["reason"] and not (out / "grid" / "t003").exists()
    stopped_at = json.loads((third / "status.json").read_text())["step"]
    assert 0 < stopped_at < 16

    resumed = CliRunner().invoke(app, ["sweep", "--resume", str(out / "grid")], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    rows = load_results(out / "grid")
    assert [(r["name"], r["state"], r["step"]) for r in rows] == [(f"t00{i}", "complete", 16) for i in range(4)]
    third_starts = started_events(third)
    assert [e["resumed_from_step"] for e in third_starts] == [0, stopped_at]  # continued from its checkpoint
    for name in ("t000", "t001", "t003"):  # no trial twice
        assert len(started_events(out / "grid" / name)) == 1, name
    trials = study_trials(out / "grid")
    assert len(trials) == 4 and {t.state.name for t in trials} == {"COMPLETE"}
    assert sorted((t.params["lr"], t.params["d_model"]) for t in trials) == [(1e-3, 16), (1e-3, 32), (3e-3, 16), (3e-3, 32)]


def test_two_worker_processes_split_one_study_without_duplicates(story_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    done = subprocess.run(workbench_cmd("sweep", *flags(story_corpus, out, "seeds", steps=4), "--seeds", "4", "--parallel", "2",
                                        "--no-prune", "--json"), cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = out / "seeds"
    rows = load_results(folder)
    assert [(r["name"], r["state"]) for r in rows] == [(f"t00{i}", "complete") for i in range(4)]
    assert sorted(r["params"]["seed"] for r in rows) == [42, 43, 44, 45]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["t000", "t001", "t002", "t003"]
    for row in rows:
        assert len(started_events(folder / row["run_dir"])) == 1
    trials = study_trials(folder)
    assert len(trials) == 4
    owners = {t.user_attrs["owner"]["pid"] for t in trials}
    assert len(owners) == 2, f"one worker ran every trial: {owners}"  # both processes took trials
    assert sys.executable  # the workers ran with this interpreter (python -m workbench)
