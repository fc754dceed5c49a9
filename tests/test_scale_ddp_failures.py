"""Failures in multi-process runs (torchrun, gloo, CPU) end as one-line errors with exit 2.

Out of memory on one rank must not hang the other: the run stops, rank 0's checkpoints are
intact, and the resume uses half the micro-batch with the same global batch. Bad input is
reported once (by rank 0), without torchrun's crash report.

The fault is injected into the ranks through a ``sitecustomize`` module on PYTHONPATH, so
the engine itself carries no test hooks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import tiny_overrides

from workbench.config import RunSpec
from workbench.runs.checkpoint import complete_checkpoints, read_state

pytestmark = pytest.mark.slow  # several processes: CI runs it, `pytest -m "not slow"` skips it

INJECT = textwrap.dedent('''
    import os
    if os.environ.get("RANK") == "1":
        import torch
        from workbench.lean_gpt2 import LeanGPT2

        original = LeanGPT2.forward
        calls = [0]

        def forward(self, input_ids, labels=None, **kwargs):
            if self.training:
                calls[0] += 1
                if calls[0] > 3 and input_ids.shape[0] > 2:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB (simulated on rank 1)")
            return original(self, input_ids, labels, **kwargs)

        LeanGPT2.forward = forward
''')


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo is tested on Linux/macOS")
def test_oom_on_one_rank_stops_the_run_and_the_resume_halves_the_micro_batch(story_corpus: Path, tmp_path: Path) -> None:
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT)
    runs = tmp_path / "runs"
    config = tmp_path / "ddp.toml"
    config.write_text(RunSpec(**tiny_overrides(
        corpus=str(story_corpus), out=str(runs), name="ddp-oom", device="cpu", max_steps=8, batch_size=4,
        log_interval=1, eval_interval=100, save_interval=3, keep_checkpoints=3, probes=[],
    )).to_toml())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")])}

    failed = subprocess.run([sys.executable, "-m", "workbench", "run", "--config", str(config), "--gpus", "2", "--json"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert failed.returncode == 2, failed.stderr[-3000:]
    lines = failed.stderr.strip().splitlines()
    assert "Traceback" not in failed.stderr and len(lines) <= 2, failed.stderr[-3000:]  # no torchrun crash report
    assert any("out of memory at step 4 on rank 1 with micro-batch 4" in line for line in lines)
    run_dir = runs / "ddp-oom"
    assert [p.name for p in complete_checkpoints(run_dir / "checkpoints")] == ["step-0000003"]
    assert json.loads((run_dir / "oom.json").read_text())["micro_batch"] == 2

    resumed = subprocess.run([sys.executable, "-m", "workbench", "run", "--resume", str(run_dir), "--out", str(runs),
                              "--gpus", "2", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = read_state(complete_checkpoints(run_dir / "checkpoints")[-1])
    assert state["step"] == 8 and state["micro_batch"] == 2 and state["global_batch"] == 8


def test_bad_input_under_torchrun_is_one_line_from_rank_0(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('text,label\n"unclosed,1\n')
    done = subprocess.run([sys.executable, "-m", "workbench", "run", "--gpus", "2", "--device", "cpu", "--corpus", str(bad),
                           "--out", str(tmp_path / "runs")], cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {bad}: line 2: 1 fields, but the header has 2. Fix: quote fields "
                                                "that contain the delimiter, or fix the row"]


@pytest.mark.parametrize(("exitcode", "expected", "words"), [(2, 2, None), (1, 1, "exited with code 1"), (-9, 137, "SIGKILL")])
def test_launcher_exit_codes(exitcode: int, expected: int, words: str | None) -> None:
    from workbench.runs.torchrun import describe, exit_code_for

    assert exit_code_for(exitcode) == expected
    if words:
        assert words in describe(1, exitcode)


def running_with(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="the check for processes left behind reads /proc")
def test_ctrl_c_stops_every_rank_at_the_same_step_with_a_checkpoint(story_corpus: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = tmp_path / "endless.toml"
    config.write_text(RunSpec(**tiny_overrides(
        corpus=str(story_corpus), out=str(runs), name="ctrl-c", device="cpu", max_steps=100_000, batch_size=4,
        log_interval=2, eval_interval=100_000, save_interval=100_000, probes=[],
    )).to_toml())
    # A session of its own, as a shell's foreground job: SIGINT to the launcher is Ctrl-C.
    process = subprocess.Popen([sys.executable, "-m", "workbench", "run", "--config", str(config), "--gpus", "2", "--json"],
                               cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = runs / "ctrl-c" / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while not (metrics.is_file() and metrics.read_text().count('"event": "step"') >= 2):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.stderr else ""
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.count("Stopped by SIGINT") == 1, stderr[-3000:]
    status = json.loads((runs / "ctrl-c" / "status.json").read_text())
    assert status["status"] == "stopped"
    (checkpoint,) = complete_checkpoints(runs / "ctrl-c" / "checkpoints")
    assert read_state(checkpoint)["step"] == status["step"] and status["step"] % 2 == 0  # a step both ranks agreed on
    time.sleep(1)
    assert running_with(str(config)) == []  # torchrun and both ranks are gone
