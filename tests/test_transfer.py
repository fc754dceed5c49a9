"""Transfer studies: kept checkpoints, RUN@STEP bases, `workbench transfer`, its view and export."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, write_story_corpus

from workbench.errors import BaseModelError, SpecError
from workbench.runs.kept import planned_steps

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]  # pre-trains and fine-tunes: `pytest -m "not slow"` skips it

ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TINY = ["--batch-size", "8", "--seq-len", "32", "--vocab-size", "300", "--eval-batches", "2", "--log-interval", "2",
        "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--probe", "The dog wagged its"]


def workbench(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=500)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def write_reviews(path: Path, lines: int = 40) -> Path:
    """A tiny sentiment corpus: short labelled lines, half positive."""
    good, bad = ["good", "great", "lovely", "fine", "superb"], ["bad", "awful", "dull", "poor", "boring"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(lines):
            word = (good if i % 2 == 0 else bad)[i % 5]
            writer.writerow([f"the film was {word} and the cast was {word}", "positive" if i % 2 == 0 else "negative"])
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny mlm run of 6 steps keeping steps 2 and 4 (evals and saves at 3 and 6, none other kept),
    then resumed to 8 steps: kept checkpoints must survive both rotation and the resume."""
    root = tmp_path_factory.mktemp("transfer")
    write_story_corpus(root / "stories.txt")
    write_reviews(root / "reviews.csv")
    workbench("run", "-o", "mlm", "-c", "stories.txt", "--out", "runs", "--name", "pre", *TINY, "--max-steps", "6",
              "--eval-interval", "3", "--keep-steps", "2,4", "--keep-checkpoints", "0", cwd=root)
    workbench("run", "--resume", "runs/pre", "--max-steps", "8", cwd=root)
    return root


def test_keep_steps_plan_a_list_or_a_log_spread() -> None:
    assert planned_steps("log:4", 1000) == [125, 250, 500, 1000]
    assert planned_steps("log:4", 6) == [1, 2, 3, 6]
    assert planned_steps("400, 100,200", 400) == [100, 200, 400]
    with pytest.raises(SpecError, match="past the run's last step"):
        planned_steps("100,500", 400)
    with pytest.raises(SpecError, match="time budget"):
        planned_steps("log:4", None)


def test_a_bad_keep_steps_flag_is_one_line(tmp_path: Path) -> None:
    done = workbench("run", "-o", "mlm", "--keep-steps", "every:3", cwd=tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--keep-steps" in done.stderr and "log:4" in done.stderr


def test_kept_checkpoints_survive_rotation_and_resume(pretrained: Path) -> None:
    run = pretrained / "runs" / "pre"
    saved = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step-"))
    assert saved == ["step-0000002", "step-0000004", "step-0000008"]  # 3 and 6 rotated away, 2 and 4 kept
    assert "[kept]" in (run / "run.toml").read_text(encoding="utf-8")
    listed = json.loads(workbench("runs", "--out", "runs", "--json", cwd=pretrained).stdout)
    assert listed[0]["kept_steps"] == [2, 4]


def test_run_at_step_loads_exactly_that_steps_weights(pretrained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from transformers import AutoModelForMaskedLM

    from workbench.models import resolve_base

    monkeypatch.chdir(pretrained)
    ref = resolve_base("runs/pre@4")
    folder = pretrained / "runs" / "pre" / "checkpoints" / "step-0000004"
    assert Path(ref.model_dir) == folder.resolve() and ref.kind == "run"
    ids = torch.tensor([[2, 5, 7, 9, 3]])
    via_base = AutoModelForMaskedLM.from_pretrained(ref.model_dir).eval()
    direct = AutoModelForMaskedLM.from_pretrained(folder).eval()
    final = AutoModelForMaskedLM.from_pretrained(pretrained / "runs" / "pre" / "model").eval()
    with torch.no_grad():
        assert torch.equal(via_base(ids).logits, direct(ids).logits)
        assert not torch.equal(via_base(ids).logits, final(ids).logits)
    assert Path(resolve_base("runs/pre@initial").model_dir).name == "initial"


def test_a_missing_step_or_a_lora_checkpoint_is_refused_in_one_line(pretrained: Path, tmp_path: Path) -> None:
    import shutil

    from workbench.models import resolve_base

    done = workbench("run", "-o", "sentiment", "-c", "reviews.csv", "--base", "runs/pre@5", "--out", "runs", cwd=pretrained,
                     check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no checkpoint at step 5" in done.stderr and "2, 4, 8" in done.stderr
    lora = tmp_path / "lora"
    shutil.copytree(pretrained / "runs" / "pre", lora)
    toml = lora / "run.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('method = "full"', 'method = "lora"'),
                    encoding="utf-8")
    with pytest.raises(BaseModelError, match="method lora"):
        resolve_base(f"{lora}@4")


def test_a_study_has_one_row_per_base_with_its_pretraining(pretrained: Path) -> None:
    study_flags = ["-o", "sentiment", "-c", "reviews.csv", "--out", "runs", "--name", "study", "--seeds", "1",
                   "--max-steps", "2", "--batch-size", "8", "--seq-len", "32", "--eval-batches", "2", "--probe", "good film"]
    bad = workbench("transfer", "runs/pre", "--base", "x", *study_flags, cwd=pretrained, check=False)
    assert bad.returncode == 2 and "--base is what a transfer study varies" in bad.stderr
    workbench("transfer", "runs/pre", "--steps", "2,4", *study_flags, cwd=pretrained)
    study = pretrained / "runs" / "study"
    assert "relative" in (study / "transfer.toml").read_text(encoding="utf-8")
    view = json.loads(workbench("compare", "runs/study", "--json", cwd=pretrained).stdout)
    assert view["kind"] == "transfer" and view["metric"] == "accuracy"
    rows = {row["base"]: row for row in view["rows"]}
    assert sorted(rows) == ["runs/pre@2", "runs/pre@4", "runs/pre@initial"]
    assert [rows[b]["pretrain_step"] for b in ("runs/pre@2", "runs/pre@4", "runs/pre@initial")] == [2, 4, 0]
    assert 0 < rows["runs/pre@2"]["pretrain_tokens"] < rows["runs/pre@4"]["pretrain_tokens"]
    assert rows["runs/pre@4"]["pretrain_flops"] == 6 * rows["runs/pre@4"]["pretrain_parameters"] * rows["runs/pre@4"]["pretrain_tokens"]
    for row in rows.values():
        assert row["seeds_finished"] == 1 and 0 <= row["metric"]["mean"] <= 1 and row["eval_loss"]["n"] == 1
    table = workbench("compare", "runs/study", cwd=pretrained).stdout
    assert "pre@initial" in table and "accuracy" in table
    workbench("export", "runs/study", "--format", "csv", cwd=pretrained)
    with (study / "transfer.csv").open(encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == 3 and {line["pretrain_step"] for line in lines} == {"2", "4", "0"}


@pytest.mark.slow
def test_ctrl_c_then_resume_finishes_the_study_without_rerunning_done_trials(pretrained: Path) -> None:
    # 120 steps: after t001's first checkpoint (step 5) it still has long to go when the signal
    # comes (with 30 an idle CI machine once finished the study in between two looks)
    flags = ["-o", "sentiment", "-c", "reviews.csv", "--out", "runs", "--name", "stopped", "--seeds", "1",
             "--max-steps", "120", "--batch-size", "8", "--seq-len", "32", "--eval-batches", "2", "--eval-interval", "5",
             "--steps", "2", "--probe", "good film"]
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "transfer", "runs/pre", *flags], cwd=pretrained, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    study = pretrained / "runs" / "stopped"
    deadline = time.monotonic() + 300
    while not list(study.glob("t001/checkpoints/step-*")):  # the second trial is training: the first is done
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    finished_at = (study / "t000" / "summary.json").stat().st_mtime_ns
    resumed = workbench("transfer", "--resume", "runs/stopped", cwd=pretrained)
    assert "t001 resumed" in resumed.stdout and "t000 started" not in resumed.stdout
    assert (study / "t000" / "summary.json").stat().st_mtime_ns == finished_at
    view = json.loads(workbench("compare", "runs/stopped", "--json", cwd=pretrained).stdout)
    assert all(row["seeds_finished"] == 1 for row in view["rows"]) and len(view["rows"]) == 2
