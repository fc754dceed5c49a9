"""Shared pieces of the fault-injection tests: tiny specs, per-step losses, injected forwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from conftest import tiny_overrides

from workbench.config import RunSpec

REPO = Path(__file__).resolve().parents[1]


def fault_spec(corpus: Path, out: Path, name: str, **extra: Any) -> RunSpec:
    """A tiny clm run logging every step (per-step losses in metrics.jsonl)."""
    values = tiny_overrides(log_interval=1, eval_interval=10, save_interval=5, max_steps=20, seed=7)
    values.update(extra)
    return RunSpec(corpus=str(corpus), objective="clm", out=str(out), name=name, **values)


def step_losses(run_dir: Path) -> dict[int, float]:
    """Step -> loss from ``metrics.jsonl``; a resumed run repeats steps, the last one wins."""
    losses: dict[int, float] = {}
    for line in (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "step":
            losses[int(event["step"])] = float(event["loss"])
    return losses


def events(run_dir: Path, kind: str) -> list[dict]:
    out = []
    for line in (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == kind:
            out.append(event)
    return out


class TrainingForwardPatch:
    """Wrap a model class's ``forward``; ``hook(call_index, kwargs, output)`` may change the output.

    Only training-mode calls are counted (evaluation runs in eval mode), so call ``k`` is
    micro-batch ``k`` of the training loop.
    """

    def __init__(self, cls: type, hook: Any):
        self.cls, self.hook, self.calls = cls, hook, 0
        self.original = cls.forward

    def __enter__(self) -> TrainingForwardPatch:
        patch = self

        def forward(model: Any, *args: Any, **kwargs: Any) -> Any:
            if not model.training:
                return patch.original(model, *args, **kwargs)
            index = patch.calls
            patch.calls += 1
            return patch.hook(index, kwargs, lambda: patch.original(model, *args, **kwargs))

        self.cls.forward = forward
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cls.forward = self.original


def workbench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench", *args]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def hup_default() -> None:
    """``preexec_fn`` of a child that must act on SIGHUP: its default disposition, even when
    the suite itself runs under ``nohup`` (an ignored SIGHUP is inherited, and kept)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def start_run(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(workbench_cmd(*args), cwd=cwd, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=hup_default)


def nan_like(output: Any) -> Any:
    output.loss = output.loss * torch.tensor(float("nan"))
    return output


# ---------------------------------------------------------------------------- kill and resume
def endless_clm_config(save_interval: int, seed: int, keep_checkpoints: int | None = None) -> str:
    """A tiny clm spec that trains until killed or stopped, logging every step."""
    keep = f"keep_checkpoints = {keep_checkpoints}\n" if keep_checkpoints is not None else ""
    return (
        'objective = "clm"\nmax_steps = 100000\nbatch_size = 8\nseq_len = 32\nvocab_size = 300\n'
        f"eval_batches = 1\neval_interval = 100000\nsave_interval = {save_interval}\n{keep}"
        f"log_interval = 1\nseed = {seed}\n"
    )


@dataclass
class KillReport:
    kills: int = 0
    resumes_ok: int = 0
    resumes: int = 0
    killed_in_startup: int = 0
    mid_save_kills: int = 0
    max_steps_lost: int = 0
    final_step: int = 0
    never_without_checkpoint: bool = True
    max_loss_diff: float | None = None
    """Largest per-step loss difference from an uninterrupted run (``compare=True``)."""
    problems: list[str] = field(default_factory=list)


class _Reader(threading.Thread):
    """Collect a subprocess's JSON events without blocking the killer."""

    def __init__(self, proc: subprocess.Popen):
        super().__init__(daemon=True)
        self.proc, self.events, self.started = proc, [], threading.Event()

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events.append(event)
            if event.get("event") == "started":
                self.started.set()


class _Watcher(threading.Thread):
    """Poll the checkpoint folder: once one checkpoint is complete, one must always be."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.stop, self.armed, self.gaps = folder, threading.Event(), False, 0

    def run(self) -> None:
        from workbench.runs import checkpoint as ckpt

        while not self.stop.wait(0.02):
            complete = bool(ckpt.complete_checkpoints(self.folder))
            if complete:
                self.armed = True
            elif self.armed and not ckpt.complete_checkpoints(self.folder):  # look twice: iterdir races
                self.gaps += 1


def kill_and_resume(workdir: Path, corpus: Path, kills: int, seed: int, save_interval: int = 3,
                    log: Any = None, compare: bool = False) -> KillReport:
    """Start a long tiny run, then SIGKILL it ``kills`` times at seeded random moments
    (during start-up, while training, and as soon as a checkpoint's temp folder appears, i.e.
    mid-save), resuming after each; finally let a resume train on and stop it with SIGINT."""
    import random

    from workbench.runs import checkpoint as ckpt

    rng = random.Random(seed)
    report = KillReport()
    config = workdir / "kill.toml"
    config.write_text(endless_clm_config(save_interval, seed=11, keep_checkpoints=1), encoding="utf-8")
    out = workdir / "runs"
    run_dir = out / "killed"
    folder = run_dir / "checkpoints"
    watcher = _Watcher(folder)
    watcher.start()
    first = ["run", "--config", str(config), "--corpus", str(corpus), "--out", str(out), "--name", "killed", "--json"]
    resume = ["run", "--resume", str(run_dir), "--out", str(out), "--json"]

    def progress() -> int:
        return max(step_losses(run_dir), default=0) if (run_dir / "metrics.jsonl").is_file() else 0

    try:
        # The first start runs until its first checkpoint: before it there is nothing to keep.
        proc = start_run(first, workdir)
        reader = _Reader(proc)
        reader.start()
        deadline = time.monotonic() + 300
        while not ckpt.complete_checkpoints(folder) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        for round_ in range(kills + 1):
            if round_ > 0:
                before = ckpt.complete_checkpoints(folder)
                expect = int(before[-1].name.split("-")[1]) if before else 0
                lost_before = progress()
                proc = start_run(resume, workdir)
                reader = _Reader(proc)
                reader.start()
                report.resumes += 1
                if round_ == kills:  # the last resume trains on and stops cleanly
                    reader.started.wait(300)
                    target = progress() + 2 * save_interval
                    while progress() < target and proc.poll() is None:
                        time.sleep(0.05)
                    proc.send_signal(signal.SIGINT)
                    proc.wait(120)
                    reader.join(5)
                    if proc.returncode != 130:
                        report.problems.append(f"final resume exited {proc.returncode}: {proc.stderr.read()[-500:]}")
                    else:
                        report.resumes_ok += 1
                    break
                mode = rng.choice(["startup", "training", "training", "mid-save"])
                if mode == "startup":
                    time.sleep(rng.uniform(0.0, 3.0))
                else:
                    reader.started.wait(300)
                    if mode == "training":
                        time.sleep(rng.uniform(0.0, 1.5))
                    else:
                        limit = time.monotonic() + 30
                        while not list(folder.glob(".tmp-step-*")) and proc.poll() is None and time.monotonic() < limit:
                            time.sleep(0.001)
                if proc.poll() is not None:
                    report.problems.append(f"resume {round_} exited {proc.returncode} before the kill: {proc.stderr.read()[-500:]}")
                    continue
            else:
                time.sleep(rng.uniform(0.0, 1.0))
            in_save = bool(list(folder.glob(".tmp-step-*")))
            proc.kill()
            proc.wait(60)
            reader.join(5)
            report.kills += 1
            report.mid_save_kills += in_save and bool(list(folder.glob(".tmp-step-*")))
            if not ckpt.complete_checkpoints(folder):
                report.never_without_checkpoint = False
                report.problems.append(f"kill {report.kills}: no complete checkpoint on disk")
            if round_ > 0:
                started = [e for e in reader.events if e.get("event") == "started"]
                if started:
                    resumed_from = int(started[0]["resumed_from_step"])
                    if resumed_from != expect:
                        report.problems.append(f"resume {round_} started at {resumed_from}, the latest checkpoint was {expect}")
                    report.max_steps_lost = max(report.max_steps_lost, lost_before - resumed_from)
                    report.resumes_ok += 1
                elif mode != "startup":
                    report.problems.append(f"resume {round_} never started")
                else:
                    report.killed_in_startup += 1  # killed before it could report; the next resume covers it
            if log:
                log(f"kill {report.kills}: mode {'first' if round_ == 0 else mode}, step {progress()}, mid-save {in_save}")
        report.final_step = progress()
    finally:
        watcher.stop.set()
        watcher.join(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)
    if watcher.gaps:
        report.never_without_checkpoint = False
        report.problems.append(f"{watcher.gaps} moments with no complete checkpoint on disk")
    if compare and report.final_step:
        report.max_loss_diff = _compare_uninterrupted(workdir, config, corpus, out, run_dir, report.final_step)
    return report


def _compare_uninterrupted(workdir: Path, config: Path, corpus: Path, out: Path, run_dir: Path, steps: int) -> float:
    """Train the same spec straight through to ``steps`` (then SIGINT) and compare losses."""
    proc = start_run(["run", "--config", str(config), "--corpus", str(corpus), "--out", str(out), "--name", "straight", "--json"], workdir)
    reader = _Reader(proc)
    reader.start()
    reference_dir = out / "straight"
    while proc.poll() is None:
        if (reference_dir / "metrics.jsonl").is_file() and max(step_losses(reference_dir), default=0) >= steps:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(120)
    reader.join(5)
    reference, killed = step_losses(reference_dir), step_losses(run_dir)
    return max(abs(reference[s] - killed[s]) for s in range(1, steps + 1))
