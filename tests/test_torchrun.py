"""How a stop signal travels through ``python -m workbench.runs.torchrun`` (what
``workbench run --gpus N`` starts) to the ranks, with stand-in ranks that only record the
signals they get, so the mechanism is checked in seconds rather than through training.

torchrun passes a SIGINT/SIGTERM it receives to each rank once and waits while the rank
checkpoints; a second signal reaches the ranks again (a rank then leaves at once); nothing is
left running either way. The full run (real ranks agreeing on a stop step) is covered in
``test_scale_ddp_failures.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench.runs.torchrun import STOP_GRACE_S, allow_graceful_stop

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="torchrun's signal handling is tested on Linux/macOS")]

RANK = textwrap.dedent('''
    import os, signal, sys, time

    folder, checkpoint_s = sys.argv[1], float(sys.argv[2])
    rank, got = os.environ["RANK"], []

    def stop(signum, frame):
        with open(os.path.join(folder, f"rank{rank}.signals"), "a") as log:
            log.write(f"{signum}\\n")
        got.append(signum)
        if len(got) > 1:  # like workbench.runs.signals: a second signal leaves at once
            os._exit(128 + got[0])

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    with open(os.path.join(folder, f"rank{rank}.tmp"), "w") as out:
        out.write(str(os.getpid()))
    os.replace(os.path.join(folder, f"rank{rank}.tmp"), os.path.join(folder, f"rank{rank}.pid"))
    while not got:
        time.sleep(0.05)
    time.sleep(checkpoint_s)  # the checkpoint
    open(os.path.join(folder, f"rank{rank}.saved"), "w").close()
    sys.exit(128 + got[0])
''')


def start(tmp_path: Path, checkpoint_s: float) -> tuple[subprocess.Popen, list[int]]:
    """torchrun with two stand-in ranks, in a session of its own as ``launch()`` starts it;
    returns it once both ranks are up, with the ranks' pids."""
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    command = [sys.executable, "-m", "workbench.runs.torchrun", "--standalone", "--nproc-per-node=2",
               str(script), str(tmp_path), str(checkpoint_s)]
    process = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    pid_files = [tmp_path / f"rank{rank}.pid" for rank in range(2)]
    deadline = time.monotonic() + 120
    while not all(path.is_file() for path in pid_files):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_all(process)
            pytest.fail(f"the ranks did not start: {process.stderr.read() if process.stderr else ''}")
        time.sleep(0.1)
    return process, [int(path.read_text()) for path in pid_files]


def stop_all(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def signals_seen(tmp_path: Path) -> list[list[int]]:
    return [[int(line) for line in (tmp_path / f"rank{rank}.signals").read_text().split()]
            if (tmp_path / f"rank{rank}.signals").is_file() else [] for rank in range(2)]


def finish(process: subprocess.Popen, pids: list[int]) -> str:
    """Wait for torchrun to exit; fail if it or any rank is still running shortly after."""
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        stop_all(process)
    deadline = time.monotonic() + 10
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, f"rank pid {pid} is still running"
            time.sleep(0.1)
    return stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_reaches_each_rank_once_and_torchrun_waits_for_the_checkpoint(tmp_path: Path, signum: int) -> None:
    process, pids = start(tmp_path, checkpoint_s=3.0)
    os.kill(process.pid, signum)
    stderr = finish(process, pids)
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert signals_seen(tmp_path) == [[signum], [signum]]
    assert all((tmp_path / f"rank{rank}.saved").is_file() for rank in range(2))


def test_a_second_signal_reaches_the_ranks_again_and_they_leave_at_once(tmp_path: Path) -> None:
    process, pids = start(tmp_path, checkpoint_s=600.0)
    os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while [len(seen) for seen in signals_seen(tmp_path)] != [1, 1]:
        assert time.monotonic() < deadline, signals_seen(tmp_path)
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGINT)
    stderr = finish(process, pids)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert [len(seen) for seen in signals_seen(tmp_path)] == [2, 2]
    assert not any((tmp_path / f"rank{rank}.saved").exists() for rank in range(2))


def test_torchrun_gives_the_ranks_longer_than_its_default_30_s(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.distributed.launcher.api import LaunchConfig
    from torch.distributed.run import config_from_args, get_args_parser

    if "shutdown_timeout" not in LaunchConfig.__dataclass_fields__:
        pytest.skip("this torch has no grace-period setting (it waits 30 s)")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "")  # recorded, so what allow_graceful_stop sets is undone
    monkeypatch.delenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT")
    allow_graceful_stop()
    args = get_args_parser().parse_args(["--standalone", "--nproc-per-node=2", "train.py"])
    assert config_from_args(args)[0].shutdown_timeout == STOP_GRACE_S > 30

    monkeypatch.setenv("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "45")  # the user's own setting wins
    allow_graceful_stop()
    assert config_from_args(get_args_parser().parse_args(["--standalone", "--nproc-per-node=2", "train.py"]))[0].shutdown_timeout == 45
