"""SIGINT/SIGTERM/SIGHUP sent to a real `python -m workbench run` subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from faults_helpers import endless_clm_config, start_run

from workbench.engine import checkpoint as ckpt
from workbench.engine.control import RunControl
from workbench.engine.signals import EXIT_CODES, install_stop_signals

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")

CONFIG = endless_clm_config(save_interval=4, seed=3)


def _launch(tmp_path: Path, corpus: Path, name: str) -> subprocess.Popen:
    config = tmp_path / "spec.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return start_run(["run", "--config", str(config), "--corpus", str(corpus), "--out", str(tmp_path / "runs"),
                      "--name", name, "--json"], cwd=tmp_path)


def _wait_for(proc: subprocess.Popen, predicate, timeout: float = 240.0) -> dict:
    """Read JSON events from the run's stdout until ``predicate(event)``."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        if time.monotonic() > deadline:
            break
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if predicate(event):
            return event
    proc.kill()
    raise AssertionError(f"the run never got there (rc {proc.wait()}): {proc.stderr.read() if proc.stderr else ''}")


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_finishes_the_step_checkpoints_and_exits_with_its_code(signum: int, story_corpus: Path, tmp_path: Path) -> None:
    proc = _launch(tmp_path, story_corpus, "sig")
    _wait_for(proc, lambda e: e.get("event") == "step" and e["step"] >= 2)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_CODES[signum] == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    assert f"Stopped by {signal.Signals(signum).name} at step" in err and "--resume" in err
    run_dir = tmp_path / "runs" / "sig"
    status = _state(run_dir)
    assert status["status"] == "stopped"
    latest = ckpt.complete_checkpoints(run_dir / "checkpoints")[-1]
    assert ckpt.read_state(latest)["step"] == status["step"] >= 2


def test_second_signal_exits_at_once_and_leaves_checkpoints_intact(story_corpus: Path, tmp_path: Path) -> None:
    proc = _launch(tmp_path, story_corpus, "twice")
    _wait_for(proc, lambda e: e.get("event") == "checkpoint")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.monotonic() - started < 10
    folder = tmp_path / "runs" / "twice" / "checkpoints"
    ckpt.clean_incomplete(folder)
    complete = ckpt.complete_checkpoints(folder)
    assert complete and all(ckpt.read_state(c)["step"] >= 4 for c in complete)
    assert not [p for p in folder.iterdir() if p not in complete]


def test_sighup_checkpoints_and_exits_within_10s_leaving_no_process(story_corpus: Path, tmp_path: Path) -> None:
    proc = _launch(tmp_path, story_corpus, "hup")
    _wait_for(proc, lambda e: e.get("event") == "step" and e["step"] >= 2)
    proc.send_signal(signal.SIGHUP)
    started = time.monotonic()
    proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 129
    with pytest.raises(ProcessLookupError):  # nothing is left in the run's process group
        os.killpg(proc.pid, 0)
    run_dir = tmp_path / "runs" / "hup"
    status = _state(run_dir)
    assert status["status"] == "stopped"
    assert ckpt.read_state(ckpt.complete_checkpoints(run_dir / "checkpoints")[-1])["step"] == status["step"]


def test_install_stop_signals_maps_to_request_stop_and_restores() -> None:
    control = RunControl()
    before = signal.getsignal(signal.SIGTERM)
    seen: list[int] = []
    handlers = install_stop_signals(control, signals=(signal.SIGTERM,), on_signal=seen.append)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if control.stop_requested:
                break
            time.sleep(0.01)
        assert control.stop_requested and control.stop_reason == "SIGTERM received"
        assert handlers.exit_code == 143 and seen == [signal.SIGTERM]
    finally:
        handlers.restore()
    assert signal.getsignal(signal.SIGTERM) == before


def test_hangup_deadline_exits_a_stuck_process(tmp_path: Path) -> None:
    """A front end whose run does not return (a hung step, a TUI that never exits) is still
    gone shortly after SIGHUP: no orphan holding the GPU."""
    import sys

    from faults_helpers import subprocess_env

    script = (
        "import os, signal, sys, time\n"
        "from workbench.engine.control import RunControl\n"
        "from workbench.engine.signals import install_stop_signals\n"
        "install_stop_signals(RunControl(), hangup_deadline_s=1.0)\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGHUP)
    started = time.monotonic()
    assert proc.wait(timeout=20) == 129
    assert time.monotonic() - started < 8
