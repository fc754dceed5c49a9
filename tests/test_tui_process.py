"""The real `workbench` process in a pseudo-terminal: it starts, quits on `q` with exit code 0
and leaves the terminal as it found it (alternate screen left) at any moment: as soon as it
has drawn, while torch & co. still import and workers wait for them, and once they are loaded
(then it exits without Python's slow clean-up of them, and without waiting for its workers).
How fast is measured, not asserted: ``benchmarks/tui_latency.py --process-quits``."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")]


def read_until(fd: int, needle: bytes, seconds: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


@pytest.mark.parametrize("moment", ["drawn", "importing", "warm"])
def test_q_quits_the_real_tui_with_exit_code_0(tmp_path: Path, moment: str) -> None:
    leader, follower = os.openpty()
    settings = termios.tcgetattr(follower)  # cooked mode, as a shell leaves it
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "tui", "--out", str(tmp_path / "runs")],
                            stdin=follower, stdout=follower, stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    try:
        assert b"Objective" in read_until(leader, b"Objective", 60), "the TUI never drew its tabs"
        if moment == "importing":  # the corpus and defaults workers wait for the libraries
            read_until(leader, b"never printed", 0.5)
        elif moment == "warm":  # the Objective pane's defaults line needs torch and transformers
            os.write(leader, b"2")
            read_until(leader, b"parameters", 60)
        os.write(leader, b"q")
        tail = read_until(leader, b"\x1b[?1049l", 30)
        assert proc.wait(timeout=30) == 0
        assert b"\x1b[?1049l" in tail, "the alternate screen was not left"
        assert termios.tcgetattr(leader) == settings, "the terminal was left in raw mode"  # the pty's settings
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
