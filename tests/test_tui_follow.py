"""``workbench.runs.follow`` and ``workbench.runs.launch``: tailing metrics.jsonl that another
process writes, and starting, following and stopping runs in other processes (no Textual)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import tiny_overrides

from workbench.config import RunSpec
from workbench.errors import WorkbenchError
from workbench.experiments.launch import prepare_detached
from workbench.runs.follow import MetricsTail, follow
from workbench.runs.launch import (
    DetachedRun,
    detached_command,
    follow_detached,
    follow_run,
    last_log_line,
    spawn_detached,
    start_detached,
    stop_run,
    write_spec_file,
)

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



def test_tail_starts_at_an_offset_and_skips_lines_that_are_not_json_objects(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    old = line(step=1)
    path.write_text(old + "error: not json\n" + "[1, 2]\n" + line(step=2))
    assert [e["step"] for e in MetricsTail(path, start=len(old)).read()] == [2]


# ---------------------------------------------------------------------- launch
def test_detached_command_adds_torchrun_only_for_several_gpus() -> None:
    one = detached_command("spec.toml")
    assert one[1:] == ["-m", "workbench", "run", "--config", "spec.toml", "--json"]
    assert detached_command("spec.toml", gpus=2)[-2:] == ["--gpus", "2"]


def test_spawn_detached_starts_a_session_of_its_own_and_appends_to_its_log(tmp_path: Path) -> None:
    """The one way runs and sweeps are started detached: a new session, output appended to
    the log, and the offset where this process's output starts."""
    log = tmp_path / "x.log"
    log.write_text("an older launch\n")
    spec_file = write_spec_file("a = 1\n", tmp_path, "x", ".sweep.toml")
    assert spec_file.name.startswith(".x.") and spec_file.name.endswith(".sweep.toml")
    assert spec_file.read_text() == "a = 1\n"
    code = "import os, sys; print(os.getsid(0) == os.getpid()); print(open(sys.argv[1]).read().strip())"
    process, offset = spawn_detached([sys.executable, "-c", code, str(spec_file)], log, cwd=tmp_path)
    assert process.wait(timeout=60) == 0
    assert offset == len("an older launch\n")
    assert log.read_text().splitlines() == ["an older launch", "True", "a = 1"]
    assert last_log_line(log, offset) == "a = 1" and last_log_line(tmp_path / "none.log") == ""


def test_start_detached_takes_a_resolved_name_only(tmp_path: Path) -> None:
    """Resolving the name imports the task modules: the caller does it (``prepare_detached``), never the run layer."""
    with pytest.raises(ValueError, match="prepare_detached"):
        start_detached(RunSpec(out=str(tmp_path)))
    assert not list(tmp_path.iterdir())


def test_launch_module_does_not_import_textual() -> None:
    code = "import sys, workbench.runs.launch; print(any(m.split('.')[0] == 'textual' for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.timeout(300)
@pytest.mark.slow  # a detached default run
def test_a_detached_default_run_is_followed_to_the_finish(tmp_path: Path) -> None:
    """The default spec (clm on the built-in corpus), two steps, in a process of its own."""
    spec = RunSpec(max_steps=2, out=str(tmp_path / "runs"), **tiny_overrides(eval_interval=1, log_interval=1))
    run = start_detached(prepare_detached(spec))
    try:
        assert os.getsid(run.pid) == run.pid  # a session of its own: it outlives its caller
        assert run.name.startswith("clm-general-")  # the name resolve_spec gives
        assert run.log_path == tmp_path / "runs" / f"{run.name}.log" and run.spec_path.is_file()
        events = list(follow_detached(run, interval=0.05))
    finally:
        code = run.process.wait(timeout=120)
    assert code == 0, run.log_path.read_text()
    assert run.run_dir == tmp_path / "runs" / run.name
    kinds = [e.kind for e in events]
    assert set(kinds[: kinds.index("started")]) <= {"message", "preparing"}  # what it says while loading, from its log
    assert "preparing" in kinds[: kinds.index("started")]  # tokenizing's progress reaches a follower too
    assert kinds.count("started") == 1 and kinds[-1] == "finished" and events[-1].status == "finished"
    assert [e.step for e in events if e.kind == "step"] == [1, 2]
    assert not run.spec_path.exists()  # the run keeps its spec in run.toml
    assert json.loads((run.run_dir / "status.json").read_text())["status"] == "finished"
    # the same run, followed again as a finished run directory
    assert [e.kind for e in follow_run(run.run_dir)][-1] == "finished"


FAKE_RUN = r"""
import json, os, signal, sys, time
log_only, run = sys.argv[1] == "log", sys.argv[2]
def say(**event):
    print(json.dumps({"time": 0, **event}), flush=True)
say(event="message", text="Training a bpe tokenizer")
if log_only:
    print("error: corpus 'nope' not found. Fix: pass a built-in name", flush=True)
    sys.exit(2)
os.makedirs(run)
def status(state):
    with open(os.path.join(run, ".s"), "w") as f:
        json.dump({"status": state, "pid": os.getpid()}, f)
    os.replace(os.path.join(run, ".s"), os.path.join(run, "status.json"))
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
out = open(os.path.join(run, "metrics.jsonl"), "a")
def emit(**event):
    out.write(json.dumps({"time": 0, **event}) + "\n"); out.flush()
started = dict(event="started", run_dir=run, name="fake", objective="clm", corpus="general", total_steps=0,
               parameters=1, device="cpu", precision="fp32")
status("running"); emit(**started); say(**started)
while not stop:
    time.sleep(0.02)
emit(event="finished", status="stopped", step=0, run_dir=run, model_dir="")
status("stopped")
"""
"""A stand-in for a `workbench run --json` process (no workbench import: it starts at once)."""


def fake_detached(tmp_path: Path, mode: str) -> DetachedRun:
    log_path = tmp_path / "fake.log"
    log_path.write_text("error: an older run's line\n")
    offset = log_path.stat().st_size
    spec_path = tmp_path / ".fake.spec.toml"
    spec_path.write_text("")
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-c", FAKE_RUN, mode, str(tmp_path / "fake")], stdout=log,
                                   stderr=subprocess.STDOUT)
    return DetachedRun(process, "fake", spec_path, log_path, offset)


def test_a_detached_run_that_ends_before_starting_raises_its_error_line(tmp_path: Path) -> None:
    run = fake_detached(tmp_path, "log")
    events = []
    with pytest.raises(WorkbenchError, match="corpus 'nope' not found") as error:
        for event in follow_detached(run, interval=0.02):
            events.append(event)
    assert "an older run" not in str(error.value)  # only this process's part of the log
    assert [e.kind for e in events] == ["message"]  # what it said before failing reached the caller


def test_stop_run_signals_the_launcher_or_the_pid_in_status_json(tmp_path: Path) -> None:
    run = fake_detached(tmp_path, "run")
    try:
        events = follow_detached(run, interval=0.02)
        assert [next(events).kind, next(events).kind] == ["message", "started"]
        assert run.run_dir == tmp_path / "fake"
        assert stop_run(run.run_dir) == run.pid  # by status.json's pid
        assert run.process.wait(timeout=30) == 0
        assert [e.kind for e in events] == ["finished"]
        with pytest.raises(WorkbenchError, match="not running"):
            stop_run(run.run_dir)
        with pytest.raises(WorkbenchError, match="no metrics.jsonl"):
            list(follow_run(tmp_path / "missing"))
    finally:
        if run.process.poll() is None:
            run.process.kill()
    (tmp_path / "again").mkdir()
    launcher = fake_detached(tmp_path / "again", "run")
    try:
        for event in follow_detached(launcher, interval=0.02):
            if event.kind == "started":
                break
        assert stop_run(None, launcher) == launcher.pid  # a run this process launched: through its launcher
        assert launcher.process.wait(timeout=30) == 0
    finally:
        if launcher.process.poll() is None:
            launcher.process.kill()
