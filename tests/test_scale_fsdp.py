"""FSDP on two CPU processes (`--gpus 2 --parallel fsdp --device cpu`: torchrun, gloo,
FSDP2's fully_shard): the same losses as one process on the same global batch, standard
checkpoints (full weights, single-process optimizer layout), and a resume in one process
that continues the same losses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from workbench.config import RunSpec
from workbench.engine import TrainingRun
from workbench.engine.runner import resume_run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo is tested on Linux/macOS")]

STEPS = 6


def events(run_dir: Path, kind: str, key: str) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row[key] for row in rows if row["event"] == kind}


def values(corpus: Path, out: Path, name: str, objective: str, grad_accum: int = 1, **extra: object) -> dict:
    return tiny_overrides(
        corpus=str(corpus), out=str(out), name=name, objective=objective, device="cpu", max_steps=STEPS, batch_size=4,
        grad_accum=grad_accum, log_interval=1, eval_interval=3, eval_batches=3, save_interval=3, keep_checkpoints=3,
        **extra,
    )


def launch_fsdp(spec: RunSpec, tmp_path: Path) -> None:
    config = tmp_path / f"{spec.name}.toml"
    config.write_text(spec.to_toml())
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "run", "--config", str(config), "--gpus", "2", "--json"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_fsdp_clm_matches_one_process_and_resumes_in_one(story_corpus: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    probes = ["The cat sat on the"]
    single = TrainingRun(RunSpec(**values(story_corpus, runs, "single", "clm", grad_accum=2, probes=probes))).run()
    launch_fsdp(RunSpec(parallel="fsdp", **values(story_corpus, runs, "fsdp", "clm", probes=probes)), tmp_path)
    fsdp = runs / "fsdp"

    assert "sharded over 2 processes" in (fsdp / "metrics.jsonl").read_text()
    expected, got = events(single.run_dir, "step", "loss"), events(fsdp, "step", "loss")
    assert sorted(got) == list(range(1, STEPS + 1))
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-4), f"step {step}"
    expected_eval, got_eval = events(single.run_dir, "eval", "eval_loss"), events(fsdp, "eval", "eval_loss")
    assert sorted(got_eval) == [0, 3, 6]
    for step, loss in expected_eval.items():
        assert got_eval[step] == pytest.approx(loss, rel=1e-4), f"eval at step {step}"

    # Probes ran on rank 0's replica with the gathered weights: the same predictions.
    probe_rows = [(fsdp / "probes.jsonl").read_text().splitlines(), (single.run_dir / "probes.jsonl").read_text().splitlines()]
    assert len(probe_rows[0]) == len(probe_rows[1]) == 3

    # Standard checkpoints: full weights that load with from_pretrained, and the optimizer in
    # the single-process layout (same keys and shapes).
    ids = torch.randint(0, 200, (1, 10))
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(fsdp / "model")(ids).logits
        b = AutoModelForCausalLM.from_pretrained(single.model_dir)(ids).logits
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    optimizer_a = load_file(fsdp / "checkpoints" / "step-0000003" / "optimizer.safetensors")
    optimizer_b = load_file(single.run_dir / "checkpoints" / "step-0000003" / "optimizer.safetensors")
    assert {k: v.shape for k, v in optimizer_a.items()} == {k: v.shape for k, v in optimizer_b.items()}
    for key, tensor in optimizer_b.items():
        torch.testing.assert_close(optimizer_a[key], tensor, rtol=1e-3, atol=1e-5)

    # Resume the sharded run from step 3 in one process: the same losses as the single run.
    shutil.rmtree(fsdp / "checkpoints" / "step-0000006")
    resume_run(fsdp, out=str(runs))
    lines = [json.loads(line) for line in (fsdp / "metrics.jsonl").read_text().splitlines()]
    for row in [row for row in lines if row["event"] == "step"][-3:]:
        assert row["loss"] == pytest.approx(expected[row["step"]], rel=1e-4), f"resumed step {row['step']}"


def test_fsdp_mlm_shards_transformers_bert(story_corpus: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    single = TrainingRun(RunSpec(**values(story_corpus, runs, "single", "mlm", grad_accum=2, probes=[]))).run()
    launch_fsdp(RunSpec(parallel="fsdp", **values(story_corpus, runs, "fsdp", "mlm", probes=[])), tmp_path)
    expected, got = events(single.run_dir, "step", "loss"), events(runs / "fsdp", "step", "loss")
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-4), f"step {step}"
    assert type(AutoModelForMaskedLM.from_pretrained(runs / "fsdp" / "model")).__name__ == "BertForMaskedLM"
