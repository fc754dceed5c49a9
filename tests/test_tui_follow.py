"""``workbench.engine.follow``: tailing metrics.jsonl that another process writes (no Textual)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from workbench.engine.follow import MetricsTail, follow

STEP = {"event": "step", "time": 0, "step": 1, "total_steps": 3, "loss": 2.0, "lr": 1e-3, "tokens": 10,
        "tokens_per_s": 1.0, "elapsed_s": 1.0, "eta_s": 1.0}


def line(**changes) -> str:
    return json.dumps({**STEP, **changes}) + "\n"


def test_tail_holds_back_a_torn_line_until_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read() == []  # no file yet
    full = line(step=1)
    path.write_text(full + full[:25])
    assert [e["step"] for e in tail.read()] == [1]
    with path.open("a") as handle:
        handle.write(full[25:])
    assert [e["step"] for e in tail.read()] == [1]
    assert tail.read() == []


def test_tail_starts_over_when_the_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(line(step=1) + line(step=2))
    tail = MetricsTail(path)
    assert len(tail.read()) == 2
    tmp = tmp_path / "new.jsonl"
    tmp.write_text(line(step=7))
    os.replace(tmp, path)
    assert [e["step"] for e in tail.read()] == [7]


def test_follow_ends_after_the_finished_event(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        line(step=1) + json.dumps({"event": "finished", "time": 0, "status": "finished", "step": 1, "run_dir": str(run),
                                   "model_dir": ""}) + "\n" + line(step=99)
    )
    kinds = [e.kind for e in follow(run, interval=0.01)]
    assert kinds == ["step", "finished"]


def test_follow_stops_when_asked_and_when_the_writer_is_gone(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(line(step=1))
    stop = threading.Event()
    stop.set()
    assert list(follow(run, stop=stop)) == []
    # status says running, but the pid is dead: following ends after what was written
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / "run.toml").write_text('[spec]\nobjective = "clm"\n')
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": int(dead.stdout)}))
    assert [e.step for e in follow(run, interval=0.01)] == [1]


def test_follow_sees_lines_another_process_appends(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    writer = f"""
import json, sys, time
step = {STEP!r}
with open(sys.argv[1], "a") as handle:
    for i in range(1, 6):
        step["step"] = i
        text = json.dumps(step) + "\\n"
        handle.write(text[:20]); handle.flush(); time.sleep(0.02)   # a torn line, for a moment
        handle.write(text[20:]); handle.flush(); time.sleep(0.05)
    handle.write(json.dumps({{"event": "finished", "time": 0, "status": "finished", "step": 5,
                              "run_dir": "", "model_dir": ""}}) + "\\n")
"""
    process = subprocess.Popen([sys.executable, "-c", writer, str(run / "metrics.jsonl")])
    try:
        events = list(follow(run, interval=0.01, idle_timeout=30))
    finally:
        process.wait(timeout=30)
    assert [e.step for e in events if e.kind == "step"] == [1, 2, 3, 4, 5]
    assert events[-1].kind == "finished"

