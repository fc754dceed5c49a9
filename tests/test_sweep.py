"""`workbench sweep` in this process: spec checks, a 2 x 2 grid, failed and diverged trials.

The Ctrl-C/resume and several-process cases are in ``test_sweep_processes.py``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import one_line_error
from typer.testing import CliRunner

from workbench.cli import app
from workbench.sweep import is_sweep, load_results, read_sweep_spec
from workbench.sweep.spec import SweepSpec, check_sweep, read_sweep_toml

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["sweep", *args], catch_exceptions=False)


def tiny_sweep_flags(corpus: Path, out: Path, name: str, steps: int = 4, every: int = 2) -> list[str]:
    """Tiny trials with one probe and an eval (and checkpoint) every ``every`` steps."""
    return ["--corpus", str(corpus), "--out", str(out), "--name", name, "--batch-size", "8", "--seq-len", "32",
            "--vocab-size", "300", "--eval-batches", "2", "--log-interval", "2", "--n-layer", "1", "--n-head", "2",
            "--d-model", "16", "--max-steps", str(steps), "--eval-interval", str(every), "--probe", "The dog wagged its"]




def started_events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "started"]


# ---------------------------------------------------------------------- bad input, nothing trained
@pytest.mark.parametrize(("args", "needles"), [
    (["--grid", "nope=1,2"], ("'nope' is not a field a sweep can vary",)),
    (["--grid", "lr=abc"], ("--grid lr", "lr")),
    (["--grid", "lr=20"], ("too large for a learning rate",)),
    (["--grid", "n_layer=0,2"], ("--grid n_layer", "at least 1")),
    (["--search", "lr=loguniform:1e-4:3e-3"], ("needs a trial count", "--trials")),
    (["--search", "lr=gauss:1:2", "--trials", "2"], ("cannot read", "loguniform")),
    (["--search", "schedule=uniform:0:1", "--trials", "2"], ("--search schedule",)),
    (["--grid", "lr=1e-3", "--search", "dropout=uniform:0:0.2", "--trials", "2"], ("a grid or a search",)),
    (["--grid", "lr=1e-3", "--trials", "3"], ("--trials",)),
    (["--grid", "lr=1e-3", "--sampler", "tpe"], ("needs --search",)),
    (["--grid", "seed=1,2", "--seeds", "2"], ("do not also sweep seed",)),
    (["--grid", "lr=1e-3", "--parallel", "0"], ("--parallel must be at least 1",)),
    (["--grid", "lr=1e-3", "--epochs", "0"], ("--epochs",)),
    (["--grid", "lr=1e-3", "--grid", "lr=3e-3"], ("--grid lr is given twice",)),
    (["--search", "lr=uniform:0.001:0.1", "--trials", "100000", "--seeds", "1000"], ("100000000 trials", "--max-trials")),
    (["--grid", "lr=1e-3,2e-3", "--seeds", "600"], ("1200 trials", "limit of 1000")),
    (["--grid", "lr=1e-3,2e-3", "--seeds", "6", "--max-trials", "10"], ("12 trials", "--max-trials 12")),
    (["--grid", "lr=1e-3", "--metric", "bogus"], ("--metric bogus", "eval_loss")),
    (["--grid", "lr=1e-3", "--metric", "accuracy"], ("objective clm does not report it",)),
    (["--grid", "objective=clm,nsp", "--metric", "nsp_accuracy"], ("objective clm does not report it",)),
    (["--grid", "objective=clm,mlm", "--prune"], ("cannot prune a sweep over objective", "--no-prune")),
], ids=["field", "value", "lr-range", "int-range", "no-trials", "distribution", "numeric-only", "grid-and-search",
        "trials-with-grid", "tpe-without-search", "seed-twice", "parallel", "fixed-flag", "grid-field-twice", "huge-search",
        "huge-grid", "max-trials", "metric-unknown", "metric-of-another-task", "metric-not-in-every-objective",
        "prune-across-objectives"])
def test_bad_sweep_input_is_one_line(tmp_path: Path, args: list[str], needles: tuple[str, ...]) -> None:
    result = invoke("--out", str(tmp_path / "runs"), "--name", "bad", *args)
    one_line_error(result, *needles)
    assert not (tmp_path / "runs" / "bad").exists()  # nothing made before the spec is good


def test_resume_refuses_spec_flags_and_unknown_sweeps(tmp_path: Path) -> None:
    one_line_error(invoke("--resume", str(tmp_path / "none")), "no such sweep")
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "sweep.toml").write_text("[grid]\nlr = [1e-3]\n", encoding="utf-8")
    one_line_error(invoke("--resume", str(folder), "--lr", "1e-3"), "--lr cannot be changed")


def test_bad_sweep_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text("bogus = 1\n[grid]\nlr = [1e-3]\n", encoding="utf-8")
    one_line_error(invoke("--config", str(config), "--out", str(tmp_path)), "unknown setting 'bogus'", str(config))
    config.write_text('sampler = "annealing"\n[grid]\nlr = [1e-3]\n', encoding="utf-8")
    one_line_error(invoke("--config", str(config), "--out", str(tmp_path)), "sampler must be")


def test_sweep_toml_tables_top_level_fields_and_points(tmp_path: Path) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text('max_steps = 10\nseeds = 2\n[fixed]\ncorpus = "general"\n[grid]\nlr = [1e-3, 3e-4]\nn_layer = [1, 2]\n',
                      encoding="utf-8")
    spec = read_sweep_toml(config)
    check_sweep(spec)
    assert spec.fixed == {"max_steps": 10, "corpus": "general"} and spec.sampler_name == "grid"
    points = spec.points()
    assert len(points) == 8 and points[0] == {"lr": 1e-3, "n_layer": 1, "seed": 42} and points[1]["seed"] == 43
    assert spec.swept == ["lr", "n_layer", "seed"]
    again = tmp_path / "again.toml"
    again.write_text(spec.to_toml(), encoding="utf-8")
    assert read_sweep_toml(again).to_dict() == spec.to_dict()  # what the sweep folder holds reads back the same
    search = SweepSpec(search={"lr": "loguniform:1e-4:3e-3"}, trials=3, seeds=2)
    check_sweep(search)
    assert search.sampler_name == "tpe" and search.points() == [{"seed": 42}, {"seed": 43}] * 3
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nlr = [1e-3, 30]\n", encoding="utf-8")
    with pytest.raises(Exception, match="too large for a learning rate"):
        read_sweep_toml(bad)


def test_results_reader_skips_what_is_not_a_row(tmp_path: Path) -> None:
    assert not is_sweep(tmp_path) and load_results(tmp_path) == []
    (tmp_path / "sweep.toml").write_text("", encoding="utf-8")
    (tmp_path / "results.jsonl").write_text('{"trial": 1, "params": {}}\nnot json\n[]\n{"trial": 0, "params": {"lr": 1}}\n',
                                            encoding="utf-8")
    assert is_sweep(tmp_path) and [r["trial"] for r in load_results(tmp_path)] == [0, 1]


# ---------------------------------------------------------------------- real trials
def test_grid_of_four_trials_finishes_with_a_results_table(story_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = invoke(*tiny_sweep_flags(story_corpus, out, "grid", every=4), "--grid", "lr=1e-3,3e-3", "--grid", "d_model=16,32",
                    "--json")
    assert result.exit_code == 0, result.output
    folder = out / "grid"
    rows = load_results(folder)
    assert [r["name"] for r in rows] == ["t000", "t001", "t002", "t003"]
    assert [r["params"] for r in rows] == [{"lr": 1e-3, "d_model": 16}, {"lr": 1e-3, "d_model": 32},
                                          {"lr": 3e-3, "d_model": 16}, {"lr": 3e-3, "d_model": 32}]
    assert all(r["state"] == "complete" and r["step"] == 4 and r["value"] > 0 for r in rows)
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert printed == rows
    for row in rows:  # each trial an ordinary run directory, its values in run.toml, trained once
        run_dir = folder / row["run_dir"]
        assert row["run_dir"] == row["name"]  # relative to the sweep folder
        spec = (run_dir / "run.toml").read_text(encoding="utf-8")
        assert f"lr = {row['params']['lr']}" in spec and f"d_model = {row['params']['d_model']}" in spec
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        assert summary["eval_loss_after"] == pytest.approx(row["value"])
        assert len(started_events(run_dir)) == 1
    assert read_sweep_spec(folder).grid == {"lr": [1e-3, 3e-3], "d_model": [16, 32]}
    assert (folder / "study.db").is_file() and (folder / "results.csv").read_text().count("\n") == 5
    again = invoke("--resume", str(folder))  # nothing left to do: no trial runs twice
    assert again.exit_code == 0, again.output
    assert all(len(started_events(folder / r["run_dir"])) == 1 for r in rows)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["t000", "t001", "t002", "t003"]
    one_line_error(invoke(*tiny_sweep_flags(story_corpus, out, "grid"), "--grid", "lr=1e-3"), "exists already")


def test_a_failed_trial_is_recorded_and_the_sweep_goes_on(story_corpus: Path, tmp_path: Path) -> None:
    result = invoke(*tiny_sweep_flags(story_corpus, tmp_path, "heads", steps=2, every=2), "--grid", "n_head=3,2", "--no-prune")
    assert result.exit_code == 0, result.output
    failed, done = load_results(tmp_path / "heads")
    assert failed["state"] == "failed" and "n_head" in failed["reason"] and failed["value"] is None
    assert done["state"] == "complete" and done["params"] == {"n_head": 2}


def test_a_search_into_divergent_learning_rates_stops_them_with_a_reason(story_corpus: Path, tmp_path: Path) -> None:
    result = invoke(*tiny_sweep_flags(story_corpus, tmp_path, "lrs", steps=6, every=3), "--search", "lr=loguniform:1e-3:9.5",
                    "--trials", "3", "--sampler", "random")
    assert result.exit_code == 0, result.output
    rows = load_results(tmp_path / "lrs")
    assert len(rows) == 3 and all(r["state"] in ("complete", "pruned", "failed") for r in rows)
    stopped = [r for r in rows if r["state"] != "complete"]
    assert stopped and all(r["reason"] and ("diverged" in r["reason"] or "pruned" in r["reason"]) for r in stopped)
    assert all(r["params"]["lr"] > 0.1 for r in stopped)
    assert any(r["state"] == "complete" for r in rows)
    lrs = [r["params"]["lr"] for r in rows]
    assert len(set(lrs)) == 3 and all(1e-3 <= lr <= 9.5 for lr in lrs)


def test_example_config_reads_and_help_loads_no_heavy_library() -> None:
    spec = read_sweep_toml(Path(__file__).resolve().parents[1] / "examples" / "sweep_lr_width.toml")
    check_sweep(spec)
    assert len(spec.points()) == 6 and spec.fixed["corpus"] == "general"
    probe = ("import sys\nfrom workbench.cli import main\nsys.argv = ['workbench', 'sweep', '--help']\n"
             "try:\n    main()\nexcept SystemExit as done:\n    assert done.code in (0, None)\n"
             "print('HEAVY:' + ','.join(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'torch', 'transformers', 'datasets', 'textual', 'optuna'})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--grid" in done.stdout and done.stdout.strip().splitlines()[-1] == "HEAVY:"


def test_queue_hands_each_trial_out_once_and_repeats_a_drawn_point_per_seed(tmp_path: Path) -> None:
    """No training: the study's queue alone, taken from two study objects as two processes would."""
    from workbench.sweep.runner import suggest
    from workbench.sweep.study import open_study, queue_lock, reopen, resumable, storage_url, take_next

    grid = SweepSpec(grid={"lr": [1e-3, 3e-3], "n_layer": [1, 2]})
    check_sweep(grid)
    url = storage_url(tmp_path, None)
    first, second = open_study(grid, "g", url, create=True), open_study(grid, "g", url, create=False)
    taken = [take_next(study, queue_lock(url), grid) for study in (first, second, first, second, first)]
    assert [t.number for t in taken[:4]] == [0, 1, 2, 3] and taken[4] is None  # a running point is never reissued
    assert [suggest(t, grid) for t in taken[:4]] == [{"lr": 1e-3, "n_layer": 1}, {"lr": 1e-3, "n_layer": 2},
                                                   {"lr": 3e-3, "n_layer": 1}, {"lr": 3e-3, "n_layer": 2}]
    assert reopen(first, 2, grid) is None and resumable(first) == []  # running in a live process (this one)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = {"host": socket.gethostname(), "pid": int(gone.stdout)}
    taken[1].set_user_attr("owner", owner)  # as if killed (SIGKILL) while training
    assert [t.number for t in resumable(second)] == [1] and reopen(second, 1, grid).number == 1
    assert resumable(first) == []  # reopened: this process runs it now
    search = SweepSpec(search={"lr": "loguniform:1e-4:1e-2"}, trials=2, seeds=2, sampler="random")
    check_sweep(search)
    (tmp_path / "s").mkdir()
    study = open_study(search, "s", storage_url(tmp_path / "s", None), create=True)
    drawn = []
    while (trial := take_next(study, None, search)) is not None:
        drawn.append(suggest(trial, search))
    assert [d["seed"] for d in drawn] == [42, 43, 42, 43]
    assert drawn[0]["lr"] == drawn[1]["lr"] and drawn[2]["lr"] == drawn[3]["lr"] and drawn[0]["lr"] != drawn[2]["lr"]


def test_trial_watch_reports_evals_prunes_and_calls_divergence() -> None:
    from workbench.runs.control import RunControl
    from workbench.runs.events import EvalDone, RunStarted
    from workbench.sweep.runner import TrialWatch

    class FakeTrial:
        def __init__(self, prune_at: int) -> None:
            self.reports, self.prune_at = [], prune_at

        def report(self, value: float, step: int) -> None:
            self.reports.append((step, value))

        def should_prune(self) -> bool:
            return self.reports[-1][0] >= self.prune_at

    def evals(watch: TrialWatch, *points: tuple[int, float]) -> None:
        watch(RunStarted(run_dir="r", name="r", objective="clm", corpus="c", total_steps=20, parameters=1, device="cpu",
                         precision="fp32"))
        for step, loss in points:
            watch(EvalDone(step=step, eval_loss=loss, perplexity=1.0))

    spec = SweepSpec(grid={"lr": [1e-3]}, prune=True)  # a grid prunes only when asked
    watch = TrialWatch(FakeTrial(prune_at=10), spec, RunControl())
    evals(watch, (0, 5.0), (5, 4.0), (10, 3.9), (15, 3.8))
    assert watch.trial.reports == [(5, 4.0), (10, 3.9)] and watch.control.stop_reason == "pruned"  # step 0 never reported
    assert watch.verdict[0] == "pruned" and "step 10" in watch.verdict[1]
    at_end = TrialWatch(FakeTrial(prune_at=20), spec, RunControl())
    evals(at_end, (0, 5.0), (20, 4.0), (20, 3.9))
    assert at_end.verdict is None and at_end.trial.reports == [(20, 4.0)]  # the last eval: nothing left to stop
    diverged = TrialWatch(FakeTrial(prune_at=99), spec, RunControl())
    evals(diverged, (0, 5.0), (5, 8.0))
    assert diverged.verdict[0] == "failed" and "diverged" in diverged.verdict[1] and diverged.control.stop_requested
    off = TrialWatch(FakeTrial(prune_at=5), SweepSpec(grid={"lr": [1e-3]}, prune=False), RunControl())
    evals(off, (0, 5.0), (5, 80.0))
    assert off.verdict is None and not off.control.stop_requested and off.trial.reports == [(5, 80.0)]


# ---------------------------------------------------------------------- storage, size, pruning (no training)
def test_a_bad_storage_names_its_cause_leaves_nothing_and_never_shows_the_password(tmp_path: Path, monkeypatch) -> None:
    import sqlite3

    import workbench.sweep.study as study_module

    out = tmp_path / "runs"

    def attempt(url: str, *needles: str) -> str:
        result = invoke("--out", str(out), "--name", "s", "--grid", "lr=1e-3", "--storage", url)
        one_line_error(result, *needles)
        assert not (out / "s").exists()  # the name is still free
        return result.output

    import importlib.util

    if importlib.util.find_spec("pg8000") is None:  # a driver this environment lacks
        shown = attempt("postgresql+pg8000://alice:s3cret@localhost:5432/sweeps", "database driver pg8000 is not installed",
                        "alice@localhost")
        assert "s3cret" not in shown
    if importlib.util.find_spec("psycopg") or importlib.util.find_spec("psycopg2"):  # nothing listens on port 1
        driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
        shown = attempt(f"postgresql+{driver}://alice:s3cret@127.0.0.1:1/sweeps", "refused the connection")
        assert "s3cret" not in shown
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just bytes " * 100)
    attempt(f"sqlite:///{garbage}", "not a study database", "restore study.db")
    attempt(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder.db'}", "cannot be opened")
    locked = tmp_path / "locked.db"
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(study_module, "SQLITE_TIMEOUT_S", 0.2)
    try:
        attempt(f"sqlite:///{locked}", "locked by another process")
    finally:
        holder.close()
    assert garbage.read_bytes().startswith(b"this is not a database")  # nothing of the user's is touched


def test_storage_causes_and_the_stored_url_has_no_password() -> None:
    from workbench.sweep.study import storage_problem

    url = "postgresql://bob:hunter2@db.example:5432/sweeps"
    for error, needle in [(OSError("connection to server failed: Connection refused"), "refused the connection"),
                          (OSError('could not translate host name "db.example" to address'), "host is unknown"),
                          (OSError('password authentication failed for user "bob"'), "PGPASSWORD"),
                          (RuntimeError("weird failure with hunter2 inside"), "***")]:
        problem, fix = storage_problem(error, url)
        assert needle in problem + fix and "hunter2" not in problem + fix
    spec = SweepSpec(grid={"lr": [1e-3]}, storage=url)
    check_sweep(spec)
    assert "hunter2" not in spec.to_toml() and 'storage = "postgresql://bob@db.example:5432/sweeps"' in spec.to_toml()


def test_pruning_is_off_for_grids_and_seeds_and_warms_up_for_a_search() -> None:
    import optuna

    from workbench.sweep.study import make_pruner, pruning_line

    grid = SweepSpec(grid={"lr": [1e-3, 3e-4]}, fixed={"max_steps": 20})
    seeds = SweepSpec(fixed={"max_steps": 20}, seeds=3)
    for spec in (grid, seeds):
        check_sweep(spec)
        assert not spec.pruning and isinstance(make_pruner(spec, 20), optuna.pruners.NopPruner)
        assert pruning_line(spec).startswith("pruning: off") and "--prune" in pruning_line(spec)
    search = SweepSpec(search={"lr": "loguniform:1e-4:1e-2"}, trials=8, fixed={"max_steps": 100})
    check_sweep(search)
    assert search.pruning and pruning_line(search) == ("pruning: median, after 3 finished trials, from step 34 of 100; "
                                                       "diverged trials stop")
    assert "successive halving, rungs from step 34 of 100" in pruning_line(SweepSpec(**{**vars(search), "pruner": "halving"}))
    assert not SweepSpec(search={"objective": "choice:clm,mlm"}, trials=4).pruning  # never across objectives
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=make_pruner(search, 100))
    for value in (1.0, 1.1, 1.2):  # three finished trials, good all along
        trial = study.ask()
        for step in (10, 50, 100):
            trial.report(value, step)
        study.tell(trial, value)
    behind = study.ask()
    behind.report(9.0, 10)
    assert not behind.should_prune()  # step 10 of 100: too early to judge
    behind.report(9.0, 50)
    assert behind.should_prune()  # past a third of the steps, behind the median


def test_no_private_optuna_access_in_the_sweep_code() -> None:
    import re

    root = Path(__file__).resolve().parents[1] / "workbench"
    for path in [*(root / "sweep").glob("*.py"), root / "commands" / "sweep.py", root / "runs" / "sweepdir.py"]:
        found = re.findall(r"\._(?:storage|trial_id|study_id|backend|cached_frozen_trial)\b", path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"


def test_sweepdir_lists_trials_relative_and_a_deleted_one_as_missing(tmp_path: Path) -> None:
    from workbench.runs import sweepdir
    from workbench.runs.rundir import RunDir

    folder, elsewhere = tmp_path / "sw", tmp_path / "original"
    (folder / "t000").mkdir(parents=True)
    (folder / "t000" / "run.toml").write_text("", encoding="utf-8")
    (elsewhere / "t001").mkdir(parents=True)
    (elsewhere / "t001" / "run.toml").write_text("", encoding="utf-8")
    (folder / "sweep.toml").write_text('study = "first-name"\n[grid]\nlr = [1e-3]\n', encoding="utf-8")
    rows = [{"trial": 0, "name": "t000", "run_dir": "t000", "params": {}, "state": "complete", "value": 3.0},
            {"trial": 1, "name": "t001", "run_dir": str(elsewhere / "t001"), "params": {}, "state": "complete", "value": 2.0},
            {"trial": 2, "name": "t002", "run_dir": "t002", "params": {}, "state": "failed", "value": None}]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert sweepdir.is_sweep(folder) and not sweepdir.is_sweep(elsewhere)
    assert sweepdir.read_sweep_toml(folder)[0]["study"] == "first-name"
    listed = sweepdir.trials(folder)
    assert [(r["run_dir"], r["state"], r["value"]) for r in listed] == [("t000", "complete", 3.0), ("t001", "missing", None),
                                                                         ("t002", "failed", None)]
    from workbench.experiments.compare import is_sweep as compare_is_sweep
    from workbench.experiments.compare import read_sweep_toml as compare_read

    assert compare_is_sweep(folder) and compare_read(folder) == sweepdir.read_sweep_toml(folder)
    run = RunDir(tmp_path / "run")  # a run's own files name it relative to itself, read back where it is now
    run.path.mkdir()
    run.write_summary({"objective": "clm", "run_dir": str(run.path), "model_dir": str(run.model_dir),
                       "inspect_command": f"workbench inspect {run.path}"})
    assert str(tmp_path) not in (run.path / "summary.json").read_text(encoding="utf-8")
    moved = RunDir(tmp_path / "moved")
    run.path.rename(moved.path)
    assert moved.summary()["model_dir"] == str(moved.model_dir) and moved.summary()["run_dir"] == str(moved.path)


# ---------------------------------------------------------------------- copied, moved and pruned sweeps
def stop_at_checkpoint(monkeypatch, trial_number: int, step: int) -> None:
    """Ctrl-C (a real SIGINT to this process) once trial ``trial_number`` has saved step ``step``."""
    import os
    import signal

    from workbench.runs.events import CheckpointSaved
    from workbench.sweep.runner import TrialWatch

    original, sent = TrialWatch.__call__, []

    def call(self: TrialWatch, event) -> None:
        original(self, event)
        if isinstance(event, CheckpointSaved) and self.trial.number == trial_number and event.step == step and not sent:
            sent.append(step)  # once: a second Ctrl-C means "exit now"
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(TrialWatch, "__call__", call)


def file_hashes(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_copied_or_moved_stopped_sweep_resumes_itself_alone(story_corpus: Path, tmp_path: Path, monkeypatch) -> None:
    import shutil
    import signal

    from workbench.runs import sweepdir

    out = tmp_path / "sw"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with monkeypatch.context() as patch:
        stop_at_checkpoint(patch, trial_number=1, step=2)
        try:
            stopped = invoke(*tiny_sweep_flags(story_corpus, out, "C2", steps=4, every=2), "--save-interval", "2",
                             "--grid", "lr=1e-3,3e-3")
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)  # the stopped sweep leaves a second Ctrl-C ignored
    assert stopped.exit_code == 130, stopped.output
    assert "pruning: off" in stopped.output
    original = out / "C2"
    assert [(r["run_dir"], r["state"]) for r in load_results(original)] == [("t000", "complete"), ("t001", "stopped")]
    assert str(tmp_path) not in (original / "results.jsonl").read_text() + (original / "sweep.toml").read_text()
    before = file_hashes(original)

    copy = tmp_path / "cp" / "C2"
    shutil.copytree(original, copy, symlinks=True)
    resumed = invoke("--resume", str(copy))
    assert resumed.exit_code == 0, resumed.output
    assert file_hashes(original) == before  # the original is untouched, byte for byte
    rows = load_results(copy)
    assert [(r["run_dir"], r["state"], r["value_step"], r["value_is_final"]) for r in rows] == [
        ("t000", "complete", 4, True), ("t001", "complete", 4, True)]
    assert [e["resumed_from_step"] for e in started_events(copy / "t001")] == [0, 2]  # from its checkpoint
    assert sorted(p.name for p in copy.iterdir() if p.is_dir()) == ["t000", "t001"]  # no t001-2

    moved = tmp_path / "mv" / "B_moved"  # renamed too: the study is found from the folder, not its name
    moved.parent.mkdir()
    original.rename(moved)
    again = invoke("--resume", str(moved))
    assert again.exit_code == 0, again.output
    assert [r["state"] for r in load_results(moved)] == ["complete", "complete"]
    assert [e["resumed_from_step"] for e in started_events(moved / "t001")] == [0, 2]

    shutil.rmtree(copy / "t000")  # a trial deleted from a sweep is missing, not complete with borrowed numbers
    shown = invoke("--resume", str(copy), "--json")
    assert shown.exit_code == 0, shown.output
    assert [(r["state"], r["value"]) for r in sweepdir.trials(copy)] == [("missing", None), ("complete", rows[1]["value"])]
    assert load_results(copy)[0]["state"] == "missing"
    header = (copy / "results.csv").read_text().splitlines()[0].split(",")
    assert header == ["trial", "name", "lr", "state", "value", "value_step", "value_is_final", "step", "reason", "run_dir",
                      "updated"]
