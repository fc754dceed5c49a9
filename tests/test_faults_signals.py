"""SIGINT/SIGTERM/SIGHUP sent to a real `python -m workbench run` subprocess."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from faults_helpers import endless_clm_config, events, hup_default, start_run, subprocess_env, workbench_cmd

from workbench.runs import checkpoint as ckpt
from workbench.runs import rundir
from workbench.runs.control import RunControl
from workbench.runs.rundir import RunDir
from workbench.runs.signals import EXIT_CODES, install_stop_signals

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")]  # real signals to real processes: CI runs it, `pytest -m "not slow"` skips it

CONFIG = endless_clm_config(save_interval=4, seed=3)
NO_PERIODIC_SAVES = endless_clm_config(save_interval=100000, seed=3)
"""Only the stop saves a checkpoint."""

INJECT = textwrap.dedent('''
    # Faults injected into the run's process (sitecustomize), so the engine carries no test hooks.
    import errno, os, time
    from pathlib import Path

    faults = os.environ.get("WORKBENCH_TEST_FAULTS", "").split(",")
    here = Path(os.environ.get("WORKBENCH_TEST_DIR", "."))
    if any(faults):
        from workbench.runs import checkpoint, rundir
        from workbench.tasks.clm import CausalLMTask

        save, atomic, saves = checkpoint.save_checkpoint, rundir.atomic_write_text, []

        def faulty_save(root, step, *args, **kwargs):
            saves.append(step)
            if "slow-save" in faults or ("slow-save-on-flag" in faults and (here / "slow").exists()):
                (here / "saving").touch()
                time.sleep(float(os.environ.get("WORKBENCH_TEST_SAVE_S", "12")))
            if "disk-full" in faults and len(saves) >= 2:
                rundir.atomic_write_text = full
                raise OSError(errno.ENOSPC, "No space left on device", str(root))
            return save(root, step, *args, **kwargs)

        def full(path, text):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        def slow_report(*args, **kwargs):
            (here / "report-started").touch()
            time.sleep(120)
            return {}

        checkpoint.save_checkpoint = faulty_save
        if "term-at-step-6" in faults:  # the stop lands between two periodic saves, however busy the machine
            import signal
            training_losses, loss = [], CausalLMTask.loss

            def loss_then_term(self, model, batch):
                if model.training:
                    training_losses.append(1)
                    if len(training_losses) == 6:
                        (here / "slow").touch()
                        os.kill(os.getpid(), signal.SIGTERM)
                return loss(self, model, batch)

            CausalLMTask.loss = loss_then_term
        if "slow-report" in faults:
            CausalLMTask.final_report = slow_report
''')


def _launch(tmp_path: Path, corpus: Path, name: str, *, config: str = CONFIG, faults: str = "",
            ignore_hup: bool = False) -> subprocess.Popen:
    """``faults``: comma-separated, see ``INJECT``; ``ignore_hup``: start it as ``nohup`` does."""
    spec = tmp_path / "spec.toml"
    spec.write_text(config, encoding="utf-8")
    args = ["run", "--config", str(spec), "--corpus", str(corpus), "--out", str(tmp_path / "runs"), "--name", name, "--json"]
    if not faults and not ignore_hup:
        return start_run(args, cwd=tmp_path)
    env = subprocess_env()
    if faults:
        inject = tmp_path / "inject"
        inject.mkdir(exist_ok=True)
        (inject / "sitecustomize.py").write_text(INJECT, encoding="utf-8")
        env.update(PYTHONPATH=str(inject) + os.pathsep + env["PYTHONPATH"], WORKBENCH_TEST_FAULTS=faults, WORKBENCH_TEST_DIR=str(tmp_path))
    return subprocess.Popen(workbench_cmd(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_nohup if ignore_hup else hup_default)


def _nohup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _wait_for_file(proc: subprocess.Popen, path: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path.name} never appeared (rc {proc.wait()}): {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.02)


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
    assert not [p for p in folder.iterdir() if p not in complete and p.name != ckpt.INITIAL]
    assert _state(tmp_path / "runs" / "twice")["status"] == "stopped"  # never left saying "running"


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
    """Handlers with no run to wait for (``wait_for_checkpoint`` off) are still gone shortly
    after SIGHUP: no orphan holding the GPU. Around a run the deadline waits for the checkpoint
    (``test_hangup_deadline_starts_only_once_the_checkpoint_is_saved``)."""
    import sys

    from faults_helpers import subprocess_env

    script = (
        "import os, signal, sys, time\n"
        "from workbench.runs.control import RunControl\n"
        "from workbench.runs.signals import install_stop_signals\n"
        "install_stop_signals(RunControl(), hangup_deadline_s=1.0)\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, text=True,
                            preexec_fn=hup_default)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGHUP)
    started = time.monotonic()
    assert proc.wait(timeout=20) == 129
    assert time.monotonic() - started < 8


# ---------------------------------------------------------------------------- signals keep their promise
def _last_checkpoint_step(run_dir: Path) -> int:
    return ckpt.read_state(ckpt.complete_checkpoints(run_dir / "checkpoints")[-1])["step"]


def test_install_stop_signals_leaves_an_ignored_sighup_ignored() -> None:
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        handlers = install_stop_signals(RunControl())
        try:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN and signal.SIGHUP not in handlers.previous
            assert signal.getsignal(signal.SIGTERM) == handlers.handle
        finally:
            handlers.restore()
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_nohup_run_ignores_sighup_and_sigterm_still_stops_it_with_a_checkpoint(story_corpus: Path, tmp_path: Path) -> None:
    proc = _launch(tmp_path, story_corpus, "nohup", ignore_hup=True)
    first = _wait_for(proc, lambda e: e.get("event") == "step" and e["step"] >= 2)
    proc.send_signal(signal.SIGHUP)  # the terminal went away: nohup said to carry on
    later = _wait_for(proc, lambda e: e.get("event") == "step" and e["step"] >= first["step"] + 6)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    run_dir = tmp_path / "runs" / "nohup"
    status = _state(run_dir)
    assert status["status"] == "stopped" and _last_checkpoint_step(run_dir) == status["step"] >= later["step"]
    assert not [e for e in events(run_dir, "message") if "SIGHUP" in e["text"]]


def test_sigterm_saves_the_checkpoint_first_and_skips_the_slow_final_report(story_corpus: Path, tmp_path: Path) -> None:
    """The final report would take two minutes here: a stop writes its checkpoint before any
    eval, never starts the report, and says so in the summary."""
    proc = _launch(tmp_path, story_corpus, "report", config=NO_PERIODIC_SAVES, faults="slow-report")
    _wait_for(proc, lambda e: e.get("event") == "step" and e["step"] >= 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)  # the report alone would take 120 s
    assert proc.returncode == 143, err[-2000:]
    assert not (tmp_path / "report-started").exists()
    run_dir = tmp_path / "runs" / "report"
    lines = [e for e in RunDir(run_dir).events() if e.get("event") in ("message", "checkpoint", "eval", "finished")]
    stopping = next(i for i, e in enumerate(lines) if e["event"] == "message" and e["text"].startswith("Stopping at step"))
    after = [e["event"] for e in lines[stopping + 1:]]
    assert after[0] == "checkpoint" and after[-1] == "finished"  # the checkpoint first, then one eval of the subset
    assert lines[stopping + 1]["step"] == _state(run_dir)["step"] == _last_checkpoint_step(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "stopped" and summary["metrics"] == {}
    assert summary["report"].startswith("skipped: stopped (SIGTERM received)") and "resume" in summary["report"]
    assert (run_dir / "model" / "config.json").is_file()  # model/ is still written, after the checkpoint


def test_sighup_waits_for_a_checkpoint_slower_than_the_hangup_deadline(story_corpus: Path, tmp_path: Path) -> None:
    """Step + save take 12 s, more than the 10 s hang-up deadline: the checkpoint is still
    written, and the deadline only starts once it is."""
    proc = _launch(tmp_path, story_corpus, "slow-hup", config=NO_PERIODIC_SAVES, faults="slow-save")
    _wait_for(proc, lambda e: e.get("event") == "step" and e["step"] >= 2)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 129, err[-2000:]
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    run_dir = tmp_path / "runs" / "slow-hup"
    status = _state(run_dir)
    assert status["status"] == "stopped" and _last_checkpoint_step(run_dir) == status["step"] >= 2


def test_second_signal_during_the_stop_save_records_stopped_with_a_message(story_corpus: Path, tmp_path: Path) -> None:
    # The run signals itself in step 6 (after the periodic save at step 4) and slows every save
    # from then on: a signal sent from here could land at step 4, whose checkpoint is saved.
    proc = _launch(tmp_path, story_corpus, "second", faults="slow-save-on-flag,term-at-step-6")
    _wait_for_file(proc, tmp_path / "saving")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    run_dir = tmp_path / "runs" / "second"
    status = _state(run_dir)
    assert status["status"] == "stopped" and status["step"] == _last_checkpoint_step(run_dir) >= 4
    assert status["message"] == (f"stopped by a second SIGTERM before the final save; the last checkpoint "
                                 f"(step {status['step']}) is intact")


def test_hangup_deadline_starts_only_once_the_checkpoint_is_saved(tmp_path: Path) -> None:
    """Around a run the deadline waits for the checkpoint however long it takes, then bounds
    the rest, and the exit it forces records status.json."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from workbench.runs.control import RunControl
        from workbench.runs.events import CheckpointSaved, RunStarted
        from workbench.runs.rundir import RunDir
        from workbench.runs.signals import install_stop_signals

        signals = install_stop_signals(RunControl(), hangup_deadline_s=0.2, wait_for_checkpoint=True)
        signals(RunStarted(run_dir={str(run_dir)!r}, name="run", objective="clm", corpus="c", total_steps=9, parameters=1,
                           device="cpu", precision="fp32"))
        RunDir(Path({str(run_dir)!r})).write_status("running", step=0)
        print("ready", flush=True)
        while not signals.control.stop_requested:
            time.sleep(0.01)
        time.sleep(2.0)  # a slow step and save: ten times the deadline (stdout is /dev/null after SIGHUP)
        open({str(tmp_path / "saved")!r}, "w").close()
        signals(CheckpointSaved(step=7, path="p"))
        time.sleep(60)  # a final eval that hangs
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, text=True,
                            preexec_fn=hup_default)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 129
    assert (tmp_path / "saved").exists()  # not killed before the checkpoint
    status = _state(run_dir)
    assert status["status"] == "stopped" and status["step"] == 7
    assert "deadline" in status["message"] and "checkpoint at step 7 was saved" in status["message"]


def test_disk_full_run_records_failed_not_running(story_corpus: Path, tmp_path: Path) -> None:
    """The second checkpoint and every new file after it fail with ENOSPC (status.json's
    atomic write included): status.json still ends up `failed`, with the reason."""
    proc = _launch(tmp_path, story_corpus, "full", faults="disk-full")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 2 and "Traceback" not in err, err[-2000:]
    status = _state(tmp_path / "runs" / "full")
    assert status["status"] == "failed" and "could not write to disk" in status["message"]


def test_write_status_anyway_in_place_then_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunDir(tmp_path)
    run.write_status("running", step=3, note="a longer status than the failure's " * 3)

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(rundir, "atomic_write_text", full)
    assert run.write_status_anyway("failed", message="disk full", step=3) == "in place"
    assert run.status()["status"] == "failed" and run.status()["message"] == "disk full"
    monkeypatch.setattr(rundir, "_overwrite_in_place", full)
    assert run.write_status_anyway("failed", message="disk full", step=3) == "removed"
    assert run.status() == {"status": "unknown"}


def test_write_status_anyway_on_a_really_full_tmpfs(tmp_path: Path) -> None:
    """A real full disk: a 64 KiB tmpfs in a user and mount namespace (skipped where that is not allowed)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    mount = tmp_path / "small"
    mount.mkdir()
    script = textwrap.dedent("""
        import json, os, sys
        from pathlib import Path
        from workbench.runs.rundir import RunDir

        root = Path(sys.argv[1])
        run = RunDir(root / "run")
        run.path.mkdir()
        run.write_status("running", step=3)
        with open(root / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"x" * 512)
            except OSError:
                pass
        try:
            run.write_status("failed", message="x")
            atomic = "worked"
        except OSError as exc:
            atomic = os.strerror(exc.errno)
        how = run.write_status_anyway("failed", message="could not write to disk", step=3)
        print(json.dumps({"atomic": atomic, "how": how, "status": run.status()}))
    """)
    command = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$1" || exit 77; exec "$2" -c "$3" "$1"', "sh",
               str(mount), sys.executable, script]
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    if done.returncode == 77 or (done.returncode != 0 and not done.stdout):
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[-200:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["atomic"] == os.strerror(errno.ENOSPC)  # the disk is really full
    assert result["how"] == "in place" and result["status"]["status"] == "failed"
