"""One writer per run directory, and writes that stay inside it (issue 13, items 3 and 4)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from faults_helpers import REPO, endless_clm_config, events, fault_spec, subprocess_env, workbench_cmd

import workbench.runs.checkpoint as ckpt
from workbench.engine import TrainingRun
from workbench.engine.runner import resume_run
from workbench.engine.saving import Saver
from workbench.errors import RunDirError
from workbench.runs import lock
from workbench.runs.events import Message
from workbench.runs.rundir import MetricsWriter, RunDir, atomic_write_text, new_run_dir

POSIX = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(child.stdout)


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------------------- the lock itself
def test_a_second_claim_is_refused_with_the_holders_pid_until_released(tmp_path: Path) -> None:
    held = lock.claim(tmp_path)
    holder = json.loads((tmp_path / lock.LOCK_FILE).read_text(encoding="utf-8"))
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with pytest.raises(RunDirError) as refused:
        lock.claim(tmp_path)  # flock is per open file: the same process is refused too (a TUI run on the same folder)
    line = _one_line(refused.value)
    assert f"pid {os.getpid()}" in line and f"kill -INT {os.getpid()}" in line and str(tmp_path) in line
    held.release()
    held.release()  # idempotent
    assert (tmp_path / lock.LOCK_FILE).read_text(encoding="utf-8") == ""  # a clean release empties it
    again = lock.claim(tmp_path)
    assert again.previous == {}  # nothing to take over after a clean release
    again.release()


HOLD = """
import sys, time
from pathlib import Path
from workbench.runs import lock
lock.claim(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


@POSIX
def test_a_lock_held_by_another_process_is_refused_and_taken_over_once_it_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"pid {holder.pid} on "):
            lock.claim(tmp_path)
    finally:
        holder.kill()
        holder.wait(30)
    # The kernel dropped the dead process's flock: its file (with its pid) is simply locked again.
    heard: list = []
    taken = lock.claim(tmp_path, heard.append)
    assert taken.previous["pid"] == holder.pid
    assert isinstance(heard[0], Message) and f"pid {holder.pid}" in heard[0].text and "no longer running" in heard[0].text
    taken.release()


def test_without_fcntl_a_dead_holders_file_is_taken_over_and_a_live_one_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock, "fcntl", None)
    path = tmp_path / lock.LOCK_FILE
    dead = _dead_pid()
    path.write_text(json.dumps({"pid": dead, "host": socket.gethostname()}), encoding="utf-8")
    taken = lock.claim(tmp_path)
    assert taken.previous["pid"] == dead and json.loads(path.read_text(encoding="utf-8"))["pid"] == os.getpid()
    with pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
        lock.claim(tmp_path)  # this process is alive
    taken.release()
    assert not path.exists()  # the O_EXCL lock is its file
    path.write_text(json.dumps({"pid": dead, "host": "another-host"}), encoding="utf-8")
    with pytest.raises(RunDirError, match=f"pid {dead} on another-host.*on another-host"):
        lock.claim(tmp_path)  # a pid on another host cannot be checked: assumed alive


def test_two_processes_starting_the_same_name_at_once_get_two_folders(tmp_path: Path) -> None:
    made: list[Path] = []
    held: list[lock.RunLock] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        run_dir = new_run_dir(str(tmp_path), "same")
        made.append(run_dir.path)
        held.append(lock.claim(run_dir.path))  # never refused: nobody else has this folder

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(made) == len(set(made)) == len(held) == 8
    for taken in held:
        taken.release()


# ---------------------------------------------------------------------------- symlinks
def _saver(run: Path, parts, heard: list) -> Saver:
    model, tokenizer, _, _ = parts
    run.mkdir(parents=True, exist_ok=True)
    state = SimpleNamespace(run_dir=RunDir(run), model=model, tokenizer=tokenizer)
    return Saver(state, guard=None, meter=None, emit=heard.append)  # type: ignore[arg-type]


def test_a_model_tmp_symlink_is_moved_aside_never_written_through(tmp_path: Path, parts) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n", encoding="utf-8")
    run, heard = tmp_path / "run", []
    saver = _saver(run, parts, heard)
    (run / ".model-tmp").symlink_to(outside)
    saver.final_model()
    assert outside.read_text(encoding="utf-8") == "keep me\n"
    model_dir = run / "model"
    assert model_dir.is_dir() and not model_dir.is_symlink() and (model_dir / "config.json").is_file()
    aside = sorted(p for p in run.iterdir() if ".moved-" in p.name)
    assert [p.name.split(".moved-")[0] for p in aside] == [".model-tmp"] and all(p.is_symlink() for p in aside)
    assert any("aside" in e.text for e in heard) and not (run / ".model-tmp").exists()
    # the replaced model/ goes through a link planted at its "old" name without following it
    (run / f".model.old-{os.getpid()}").symlink_to(tmp_path)  # a link to a folder outside: not emptied
    saver.final_model()
    assert outside.read_text(encoding="utf-8") == "keep me\n" and (model_dir / "config.json").is_file()
    assert (run / f".model.old-{os.getpid()}").is_symlink()  # left as it was: not ours to follow or delete


def test_a_model_symlink_is_refused_with_one_line(tmp_path: Path, parts) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("mine", encoding="utf-8")
    run = tmp_path / "run"
    saver = _saver(run, parts, [])
    (run / "model").symlink_to(elsewhere)
    with pytest.raises(RunDirError, match="symbolic link") as refused:
        saver.final_model()
    assert str(run / "model") in _one_line(refused.value)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.txt"] and (run / "model").is_symlink()


def test_the_final_model_is_fsynced_before_it_is_renamed_into_place(tmp_path: Path, parts, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    saver = _saver(run, parts, [])
    saver.final_model()  # a previous final model, to be replaced
    log: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (log.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (log.append(f"replace {Path(a).name} {Path(b).name}"), real_replace(a, b))[1])
    saver.final_model()
    files = [p for p in (run / "model").iterdir() if p.is_file()]
    into_place = log.index("replace .model-tmp model")
    assert log[:into_place].count("fsync") >= len(files) + 1  # every file and the folder
    assert "fsync" in log[into_place:]  # the run directory's entry
    assert not (run / ".model-old").exists() and not (run / ".model-tmp").exists()


def test_checkpoints_never_go_through_a_symlink(tmp_path: Path, parts) -> None:
    model, tokenizer, optimizer, scheduler = parts
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").symlink_to(elsewhere)
    with pytest.raises(RunDirError, match="symbolic link"):
        ckpt.save_checkpoint(run / "checkpoints", 3, model, tokenizer, optimizer, scheduler, {})
    (run / "checkpoints").unlink()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ckpt.step_dir_name(3)).symlink_to(elsewhere)
    with pytest.raises(RunDirError, match="symbolic link"):
        ckpt.save_checkpoint(run / "checkpoints", 3, model, tokenizer, optimizer, scheduler, {})
    assert list(elsewhere.iterdir()) == []


def test_metrics_and_status_never_write_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n", encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to(outside)
    with pytest.raises(RunDirError, match="symbolic link"):
        MetricsWriter(run / "metrics.jsonl")
    (run / "status.json").symlink_to(outside)
    RunDir(run).write_status("running", step=0)  # a temp file renamed over the link: the link is replaced
    atomic_write_text(run / "summary.json", "{}")
    assert not (run / "status.json").is_symlink() and json.loads((run / "status.json").read_text())["status"] == "running"
    assert outside.read_text(encoding="utf-8") == "keep me\n"


def test_a_symlink_where_the_run_writes_is_refused_before_it_starts(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").symlink_to(tmp_path)
    with pytest.raises(RunDirError, match="checkpoints: is a symbolic link"):
        lock.claim(run)
    (run / "checkpoints").unlink()
    (run / lock.LOCK_FILE).unlink()
    (run / lock.LOCK_FILE).symlink_to(tmp_path / "elsewhere.lock")
    with pytest.raises(RunDirError, match="symbolic link"):
        lock.claim(run)
    assert not (tmp_path / "elsewhere.lock").exists()
    (run / lock.LOCK_FILE).unlink()
    lock.claim(run).release()  # the refusals released it


def test_a_resume_takes_over_a_stale_lock_and_never_follows_a_planted_link(tmp_path: Path, story_corpus: Path) -> None:
    """Also: ``--out`` through a symlink (the user's own disk layout) is fine; only links inside a run are refused."""
    (tmp_path / "real").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "real")
    spec = fault_spec(story_corpus, tmp_path / "runs", "planted", max_steps=2, save_interval=2, eval_interval=2)
    run = TrainingRun(spec).run().run_dir
    assert run == (tmp_path / "real" / "planted").resolve() and (run / "model" / "config.json").is_file()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n", encoding="utf-8")
    (run / ".model-tmp").symlink_to(outside)
    dead = _dead_pid()
    (run / lock.LOCK_FILE).write_text(json.dumps({"pid": dead, "host": socket.gethostname()}), encoding="utf-8")
    heard: list = []
    assert resume_run(run, listeners=[heard.append], out=str(tmp_path / "runs")).status == "finished"
    texts = [e.text for e in heard if isinstance(e, Message)]
    assert any(f"pid {dead}" in t and "no longer running" in t for t in texts)
    assert outside.read_text(encoding="utf-8") == "keep me\n"
    assert (run / "model").is_dir() and not (run / "model").is_symlink() and (run / "model" / "config.json").is_file()
    (run / "model").rename(tmp_path / "model")
    (run / "model").symlink_to(tmp_path / "model")
    with pytest.raises(RunDirError, match="model: is a symbolic link"):
        resume_run(run, out=str(tmp_path / "runs"))
    assert json.loads((run / "status.json").read_text())["status"] == "finished"  # refused before anything was written


# ---------------------------------------------------------------------------- two writers, through the CLI
def _wait(condition, proc: subprocess.Popen, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run exited {proc.returncode} before {what}"
        assert time.monotonic() < deadline, f"no {what} in {timeout:.0f}s"
        time.sleep(0.1)


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """A ``workbench run`` whose output goes to a file (a pipe nobody reads would block it)."""
    with log.open("ab") as handle:
        return subprocess.Popen(workbench_cmd(*args), cwd=cwd, env=subprocess_env(), stdout=handle, stderr=handle,
                                start_new_session=True)


@POSIX
@pytest.mark.slow  # two writer processes
def test_a_second_writer_is_refused_with_the_pid_and_resume_works_once_the_first_stops(tmp_path: Path, story_corpus: Path) -> None:
    config = tmp_path / "spec.toml"
    config.write_text(endless_clm_config(save_interval=3, seed=5), encoding="utf-8")
    out, run = tmp_path / "runs", tmp_path / "runs" / "busy"
    first = _start(["run", "--config", str(config), "--corpus", str(story_corpus), "--out", str(out), "--name", "busy", "--json"],
                   tmp_path, tmp_path / "first.log")
    second = None
    try:
        _wait(lambda: bool(ckpt.complete_checkpoints(run / "checkpoints")), first, "first checkpoint")
        second = subprocess.run(workbench_cmd("run", "--resume", str(run), "--out", str(out)), cwd=tmp_path,
                                env=subprocess_env(), capture_output=True, text=True, timeout=300)
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert second.returncode == 2, second.stderr
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and f"kill -INT {first.pid}" in lines[0], second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        # The first run is untouched: one writer in metrics.jsonl, its own status.
        assert len(events(run, "started")) == 1 and not events(run, "failed")
        status = json.loads((run / "status.json").read_text(encoding="utf-8"))
        assert status["status"] == "running" and status["pid"] == first.pid
        steps = [e["step"] for e in events(run, "step")]
        assert steps == sorted(set(steps))  # no step logged twice
        first.send_signal(signal.SIGINT)
        assert first.wait(120) == 130
    finally:
        if first.poll() is None:
            first.kill()
    stopped_at = json.loads((run / "status.json").read_text(encoding="utf-8"))["step"]
    resumed = _start(["run", "--resume", str(run), "--out", str(out), "--json"], tmp_path, tmp_path / "resumed.log")
    try:
        _wait(lambda: len(events(run, "started")) == 2, resumed, "resumed start")
        assert events(run, "started")[1]["resumed_from_step"] == stopped_at > 0
        resumed.send_signal(signal.SIGINT)
        assert resumed.wait(120) == 130
    finally:
        if resumed.poll() is None:
            resumed.kill()
