"""Two CPU processes through `workbench run --gpus 2 --device cpu` (torchrun, gloo, DDP)
train and evaluate the same losses as one process on the same global batch, only rank 0
writes the run directory, and the run resumes in one process with the same sample sequence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_overrides
from safetensors import safe_open

from workbench.config import RunSpec
from workbench.engine import TrainingRun
from workbench.engine.runner import resume_run
from workbench.runs.checkpoint import read_state

STEPS = 6
GLOBAL_BATCH = 8


pytestmark = pytest.mark.slow  # several processes: CI runs it, `pytest -m "not slow"` skips it

def step_losses(run_dir: Path, event: str = "step", key: str = "loss") -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row[key] for row in rows if row["event"] == event}


def coverage(run_dir: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["examples"], r["tokens"], r["coverage"]) for r in rows if r["event"] == "eval"]


def spec_values(corpus: Path, out: Path, name: str, batch_size: int, grad_accum: int = 1) -> dict:
    return tiny_overrides(
        corpus=str(corpus), out=str(out), name=name, device="cpu", max_steps=STEPS, batch_size=batch_size,
        grad_accum=grad_accum, log_interval=1, eval_interval=3, eval_batches=5, save_interval=3, keep_checkpoints=3,
        probes=[],
    )


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo is tested on Linux/macOS")
def test_two_processes_match_one_and_resume_with_one(story_corpus: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # One process, two micro-batches of 4: the same global batch and the same eval batches as 2 x 4.
    single = TrainingRun(RunSpec(**spec_values(story_corpus, runs, "single", GLOBAL_BATCH // 2, grad_accum=2))).run()

    config = tmp_path / "ddp.toml"
    config.write_text(RunSpec(**spec_values(story_corpus, runs, "ddp", GLOBAL_BATCH // 2)).to_toml())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "run", "--config", str(config), "--gpus", "2", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    # Rank 1 wrote nothing of its own: one run directory, one event per step in metrics.jsonl.
    assert sorted(p.name for p in runs.iterdir()) == ["ddp", "single"]
    expected = step_losses(single.run_dir)
    distributed = step_losses(runs / "ddp")
    assert sorted(distributed) == list(range(1, STEPS + 1))
    for step, loss in expected.items():
        assert distributed[step] == pytest.approx(loss, rel=1e-4), f"step {step}"
    # Eval batches are shared out between the ranks and summed: the same eval losses.
    expected_eval = step_losses(single.run_dir, "eval", "eval_loss")
    distributed_eval = step_losses(runs / "ddp", "eval", "eval_loss")
    assert sorted(distributed_eval) == sorted(expected_eval) == [0, 3, 6]
    for step, loss in expected_eval.items():
        assert distributed_eval[step] == pytest.approx(loss, rel=1e-4), f"eval at step {step}"
    # What each eval covered is added up across the ranks (a batch each here), none counted twice.
    covered = coverage(single.run_dir)
    assert coverage(runs / "ddp") == covered and all(c[1] > GLOBAL_BATCH // 2 for c in covered)
    state = read_state(runs / "ddp" / "checkpoints" / "step-0000003")
    assert state["world_size"] == 2 and state["global_batch"] == GLOBAL_BATCH
    with safe_open(runs / "ddp" / "model" / "model.safetensors", "pt") as weights:
        assert not any(key.startswith(("_orig_mod.", "module.")) for key in weights.keys())

    # Resume the 2-process run from step 3 in one process: the global batch of 8 is kept
    # (two micro-batches of 4), so steps 4-6 see the same samples as both runs above.
    shutil.rmtree(runs / "ddp" / "checkpoints" / "step-0000006")
    resumed = resume_run(runs / "ddp", out=str(runs))
    assert resumed.step == STEPS
    lines = [json.loads(line) for line in (runs / "ddp" / "metrics.jsonl").read_text().splitlines()]
    after_resume = [row for row in lines if row["event"] == "step"][-3:]
    for row in after_resume:
        assert row["loss"] == pytest.approx(expected[row["step"]], rel=1e-4), f"resumed step {row['step']}"


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo is tested on Linux/macOS")
def test_two_processes_share_one_budget_clock(story_corpus: Path, tmp_path: Path) -> None:
    """A time budget alone over two processes: they read one clock (the slowest rank's), so
    the lr is the same on both, they stop at the same step, and the run says why it stopped."""
    runs = tmp_path / "runs"
    values = spec_values(story_corpus, runs, "budget", GLOBAL_BATCH // 2)
    values.update(max_steps=None, time_budget=6.0, eval_interval=100_000, lr=1e-3)
    config = tmp_path / "budget.toml"
    config.write_text(RunSpec(**values).to_toml())
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "run", "--config", str(config), "--gpus", "2", "--json"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads((runs / "budget" / "status.json").read_text())
    assert status["status"] == "finished" and status["stopped"] == "time budget"
    lrs = step_losses(runs / "budget", key="lr")
    assert len(lrs) >= 3 and max(lrs.values()) <= 1e-3 and lrs[max(lrs)] < 0.5 * max(lrs.values())
