"""Every spec value is checked before anything is written (issue 13, item 5), through the CLI.

Bad TOML values, bad flags, bad launch options and a ``run.toml`` edited to hold a bad value
each give one line (exit 2, no traceback) naming the setting, and leave no run directory (or
the resumed one untouched). ``--resume`` takes the overrides that make sense and says so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import one_line_error
from typer.testing import CliRunner

from tests.conftest import tiny_overrides
from workbench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)




def tiny_flags(run_root: Path) -> list[str]:
    o = tiny_overrides()
    return ["--batch-size", str(o["batch_size"]), "--seq-len", str(o["seq_len"]), "--vocab-size", str(o["vocab_size"]),
            "--eval-batches", "2", "--log-interval", "1", "--out", str(run_root)]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by content hash (the lock file, rewritten by any claim, aside)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".lock")}


# ---------------------------------------------------------------- TOML files
@pytest.mark.parametrize("line, key", [
    ('seq_len = "abc"', "seq_len"),
    ('lr = "x"', "lr"),
    ("name = 5", "name"),
    ('eval_fraction = "0.1"', "eval_fraction"),
    ("epochs = nan", "epochs"),
    ("keep_checkpoints = -1", "keep_checkpoints"),
])
def test_bad_toml_values_are_one_line(tmp_path: Path, line: str, key: str) -> None:
    config = tmp_path / "spec.toml"
    config.write_text(line + "\n", encoding="utf-8")
    run_root = tmp_path / "runs"
    one_line_error(invoke("run", "--config", str(config), "--out", str(run_root)), str(config), key, fix=True)
    assert not run_root.exists()


# ---------------------------------------------------------------- flags and launch options
@pytest.mark.parametrize("args, needle", [
    (["--epochs", "nan"], "--epochs"),
    (["--epochs", "inf"], "--epochs"),
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-1"], "--epochs"),
    (["--lr", "0"], "--lr"),
    (["--warmup-ratio", "1"], "--warmup-ratio"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--eval-fraction", "1.5"], "--eval-fraction"),
    (["--keep-checkpoints", "-1"], "--keep-checkpoints"),
    (["--gpus", "0"], "--gpus"),
    (["--gpus", "-3"], "--gpus"),
    (["--nnodes", "0"], "--nnodes"),
    (["--node-rank", "-1"], "--node-rank"),
])
def test_bad_flag_values_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    run_root = tmp_path / "runs"
    one_line_error(invoke("run", *args, "--out", str(run_root)), needle, fix=True)
    assert not run_root.exists()


@pytest.mark.parametrize("below", ["", "sub/runs"])
def test_out_that_is_a_file_or_under_one(tmp_path: Path, below: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    out = afile / below if below else afile
    one_line_error(invoke("run", "--out", str(out)), "--out", "afile", "is not a folder", fix=True)
    assert afile.read_text() == "not a folder\n"


def test_a_flag_fixes_a_bad_config_value_it_names(tmp_path: Path) -> None:
    """The file's key is reported as the file's; the flag that replaces it wins before checking."""
    config = tmp_path / "spec.toml"
    config.write_text("epochs = 0\n", encoding="utf-8")
    text = one_line_error(invoke("run", "--config", str(config), "--out", str(tmp_path / "runs")), "epochs", fix=True)
    assert "--epochs" not in text and str(config) in text


# ---------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def finished_run(story_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny run of 2 steps, copied by each test that changes it."""
    root = tmp_path_factory.mktemp("typed-runs")
    result = invoke("run", "--corpus", str(story_corpus), "--max-steps", "2", "--eval-interval", "1", "--name", "two",
                    "--json", *tiny_flags(root))
    assert result.exit_code == 0, result.output
    return root / "two"


def copy_of(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "runs" / run.name
    shutil.copytree(run, target)
    return target


@pytest.mark.parametrize("old, new, key", [
    ("seed = 42", 'seed = "x"', "seed"),
    ("seq_len = 32", "seq_len = 1.5", "seq_len"),
    ("max_steps = 2", 'max_steps = 2\ntime_budget = "fast"', "time_budget"),
    ("eval_fraction = 0.05", "eval_fraction = 2", "eval_fraction"),
])
def test_bad_value_in_run_toml_is_one_line_and_touches_nothing(finished_run: Path, tmp_path: Path, old: str, new: str, key: str) -> None:
    run = copy_of(finished_run, tmp_path)
    text = run.joinpath("run.toml").read_text(encoding="utf-8")
    assert old in text
    run.joinpath("run.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    before = snapshot(run)
    one_line_error(invoke("run", "--resume", str(run)), "run.toml", key, fix=True)
    assert snapshot(run) == before


@pytest.mark.parametrize("args, flag", [
    (["--lr", "1"], "--lr"),
    (["--seq-len", "64"], "--seq-len"),
    (["--no-compile"], "--compile"),
    (["--probe", "x"], "--probe"),
    (["--config", "spec.toml"], "--config"),
])
def test_resume_refuses_flags_it_cannot_apply(finished_run: Path, tmp_path: Path, args: list[str], flag: str) -> None:
    run = copy_of(finished_run, tmp_path)
    before = snapshot(run)
    one_line_error(invoke("run", "--resume", str(run), *args), flag, "resum", fix=True)
    assert snapshot(run) == before


def test_resume_checks_its_overrides(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    before = snapshot(run)
    one_line_error(invoke("run", "--resume", str(run), "--epochs", "0"), "--epochs", fix=True)
    one_line_error(invoke("run", "--resume", str(run), "--max-steps", "-4"), "--max-steps", fix=True)
    assert snapshot(run) == before


def test_resume_with_more_steps_continues_and_says_so(finished_run: Path, tmp_path: Path) -> None:
    run = copy_of(finished_run, tmp_path)
    original = run.joinpath("run.toml").read_text(encoding="utf-8")
    result = invoke("run", "--resume", run.name, "--out", str(run.parent), "--max-steps", "4", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    said = [e["text"] for e in events if e["event"] == "message"]
    assert "Resuming with max_steps = 4 (was 2)" in said, said
    started = next(e for e in events if e["event"] == "started")
    assert started["resumed_from_step"] == 2 and started["total_steps"] == 4 and started["spec"]["max_steps"] == 4
    assert events[-1]["event"] == "finished" and events[-1]["step"] == 4
    assert run.joinpath("run.toml").read_text(encoding="utf-8") == original  # the run keeps its original spec


def test_resume_overrides_reach_every_rank_as_flags(finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``--gpus N`` each rank runs ``workbench run --resume RUN`` itself: the launcher
    passes the checked overrides on as flags, and a rank given them resumes as one process does."""
    import workbench.engine.distributed as distributed
    from workbench.commands.run import child_flags

    launched: dict = {}

    def fake_launch(spec, **options):  # torchrun itself is tested in test_scale_ddp*.py
        launched.update(options)
        return 0

    monkeypatch.setattr(distributed, "launch", fake_launch)
    run = copy_of(finished_run, tmp_path)
    result = invoke("run", "--resume", str(run), "--out", str(run.parent), "--gpus", "2", "--max-steps", "4", "--json")
    assert result.exit_code == 0, result.output
    assert launched["child_flags"] == ["--max-steps", "4", "--json"] == child_flags({"max_steps": 4}, True)
    rank = invoke("run", "--resume", str(run), "--out", str(run.parent), *launched["child_flags"])  # what one rank runs
    assert rank.exit_code == 0, rank.output
    said = [json.loads(line)["text"] for line in rank.stdout.splitlines() if '"event": "message"' in line]
    assert "Resuming with max_steps = 4 (was 2)" in said, said
