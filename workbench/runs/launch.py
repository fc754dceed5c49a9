"""Start a training run as a process of its own, and follow or stop a run another process writes.

UI-free, so the TUI and the tests call the same functions (the TUI from thread workers):

* ``start_detached(spec, gpus=N)`` starts ``python -m workbench run --config SPEC --json``
  (``--gpus N`` makes that a torchrun launch) in a session of its own, so the run outlives
  its caller and an SSH hang-up. The run's name is the one ``resolve_spec`` gives; its
  output (JSON events, and any error line) goes to ``<out>/<name>.log``.
* ``follow_detached(run)`` yields the events of such a run: the messages it prints while it
  loads its corpus and tokenizer (from the log), then, once it has said where its run
  directory is, everything ``follow`` reads from that directory's ``metrics.jsonl``.
* ``follow_run(run_dir)`` follows a run directory that some other process writes.
* ``stop_run(run_dir, launched)`` asks the writing process to stop with a checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from workbench.config import RunSpec
from workbench.errors import WorkbenchError
from workbench.runs.events import Event, RunFailed, RunStarted
from workbench.runs.follow import MetricsTail, follow
from workbench.runs.rundir import RunDir


@dataclass
class DetachedRun:
    """A ``workbench run`` process that ``start_detached`` started."""

    process: subprocess.Popen
    name: str
    """The run name ``resolve_spec`` chose; the folder gets a ``-2`` suffix if the name is taken."""
    spec_path: Path
    log_path: Path
    log_offset: int
    """Where this process's output starts in the log (a log of the same name is appended to)."""
    run_dir: Path | None = None
    """The run directory, known once the process has announced it (its ``started`` event)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def last_log_line(self) -> str:
        """The last non-empty line this process wrote to its log (its one-line error, if it failed)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self.log_offset)
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def detached_command(spec_path: str | Path, gpus: int = 1) -> list[str]:
    """The command line of a detached run: ``workbench run`` on a spec file, events as JSON."""
    command = [sys.executable, "-m", "workbench", "run", "--config", str(spec_path), "--json"]
    return command + (["--gpus", str(gpus)] if gpus > 1 else [])


def write_spec_file(spec: RunSpec, folder: Path) -> Path:
    """The spec as TOML in a new hidden file of ``folder`` (never one another launch is using)."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{spec.name or 'run'}.", suffix=".spec.toml")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(spec.to_toml())
    return Path(name)


def start_detached(spec: RunSpec, *, gpus: int = 1, cwd: str | Path | None = None) -> DetachedRun:
    """Start ``spec`` as a ``workbench run`` process (through torchrun for ``gpus`` > 1) in a
    session of its own, writing under ``spec.out``; returns at once.

    The spec is resolved (and ``gpus`` checked against the visible GPUs) here first, so a bad
    setting fails before any process starts and the run's name is known. Resolving imports the objective's task module
    (seconds, the first time): call this from a worker thread in a UI.
    """
    from workbench.engine.spec_resolution import resolve_spec

    resolved, _task = resolve_spec(spec)
    if gpus > 1:
        from workbench.engine.distributed import check_gpus

        check_gpus(gpus, spec.device)
    root = Path(spec.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    spec = spec.replace(name=resolved.name, out=str(root))
    spec_path = write_spec_file(spec, root)
    log_path = root / f"{spec.name}.log"
    with log_path.open("ab") as log:
        offset = log_path.stat().st_size
        process = subprocess.Popen(
            detached_command(spec_path, gpus), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=str(cwd) if cwd is not None else os.getcwd(),
        )
    return DetachedRun(process, spec.name or "", spec_path, log_path, offset)


def _until_started(run: DetachedRun, stopping: Callable[[], bool], interval: float) -> Iterator[Event]:
    """The events a detached run prints before its ``started`` (messages, or its failure);
    sets ``run.run_dir`` from ``started``. Raises if the process ends without either."""
    log = MetricsTail(run.log_path, start=run.log_offset)
    while not stopping():
        exited = not run.is_running()  # checked before reading, so the read sees its last lines
        for event in log.events():
            if isinstance(event, RunStarted):
                run.run_dir = Path(event.run_dir)
                return
            yield event
            if isinstance(event, RunFailed):
                return
        if exited:
            raise WorkbenchError(
                run.last_log_line().removeprefix("error: ") or f"the process ended with code {run.process.returncode}",
                where=run.name, fix=f"see its log, {run.log_path}",
            )
        time.sleep(interval)


def follow_detached(run: DetachedRun, *, should_stop: Callable[[], bool] | None = None,
                    interval: float = 0.25) -> Iterator[Event]:
    """Every event of a run ``start_detached`` started, until it ends or ``should_stop()``.

    A run creates its directory only after loading its corpus; until then its messages come
    from its log. A process that ends without starting raises a ``WorkbenchError`` carrying
    its last log line (its one-line error).
    """
    stopping = should_stop or (lambda: False)
    yield from _until_started(run, stopping, interval)
    if run.run_dir is None:
        return
    run.spec_path.unlink(missing_ok=True)  # the run wrote its spec to run.toml
    yield from follow(run.run_dir, interval=interval, should_stop=should_stop)


def follow_run(run_dir: str | Path, *, should_stop: Callable[[], bool] | None = None,
               interval: float = 0.25) -> Iterator[Event]:
    """Every event of a run directory (written, or being written, by any process)."""
    path = Path(run_dir)
    if not (path / "metrics.jsonl").exists():
        raise WorkbenchError("the run wrote no metrics.jsonl", where=path.name,
                             fix="attach to a run that has started (see its log in the run root)")
    yield from follow(path, interval=interval, should_stop=should_stop)


def stop_run(run_dir: str | Path | None, launched: DetachedRun | None = None) -> int:
    """Ask the process writing a run to stop: SIGINT, which ``workbench run`` answers by
    finishing the step and saving a checkpoint. Returns the pid signalled.

    A run this process launched is stopped through its launcher (which passes the signal on
    to torchrun's ranks); any other run through the pid its ``status.json`` names.
    """
    if launched is not None and launched.is_running():
        pid = launched.pid
    else:
        status = RunDir(Path(run_dir)).status() if run_dir is not None else {}
        pid = int(status.get("pid") or 0)
        if status.get("status") != "running" or not pid or pid == os.getpid():
            raise WorkbenchError("the run is not running in another process")
    try:
        os.kill(pid, signal.SIGINT)
    except OSError as error:
        raise WorkbenchError(f"cannot signal process {pid} ({error.strerror})") from None
    return pid
