"""Start a training run as a process of its own, and follow or stop a run another process writes.

UI-free, so the TUI and the tests call the same functions (the TUI from thread workers), and
free of the engine and the tasks (the run layer imports neither):

* ``spawn_detached(command, log_path)`` is the one way a workbench process is started
  detached: a session of its own, so it outlives its caller and an SSH hang-up, its output
  appended to a log. ``write_spec_file`` writes the spec it reads to a hidden temp file.
  Detached runs (below) and the Compare pane's sweeps (``workbench.experiments.launch``) use both.
* ``start_detached(spec, gpus=N)`` starts ``python -m workbench run --config SPEC --json``
  (``--gpus N`` makes that a torchrun launch) for a spec whose name is already resolved
  (``workbench.experiments.launch.prepare_detached``); its output (JSON events, and any error
  line) goes to ``<out>/<name>.log``.
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
    """The resolved run name; the folder gets a ``-2`` suffix if the name is taken."""
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
        return last_log_line(self.log_path, self.log_offset)


def detached_command(spec_path: str | Path, gpus: int = 1) -> list[str]:
    """The command line of a detached run: ``workbench run`` on a spec file, events as JSON."""
    command = [sys.executable, "-m", "workbench", "run", "--config", str(spec_path), "--json"]
    return command + (["--gpus", str(gpus)] if gpus > 1 else [])


def write_spec_file(text: str, folder: Path, stem: str, suffix: str = ".spec.toml") -> Path:
    """``text`` (a spec as TOML) in a new hidden file ``.<stem>.<random><suffix>`` of ``folder``,
    never one another launch is using; the launched process reads it."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=suffix)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(name)


def spawn_detached(command: list[str], log_path: Path, cwd: str | Path | None = None) -> tuple[subprocess.Popen, int]:
    """Start ``command`` in a session of its own, so it outlives its caller and an SSH hang-up
    (and a Ctrl-C in the caller's terminal does not reach it), with no input and its output
    (stdout and stderr) appended to ``log_path``; returns at once. Returns the process and
    where its output starts in the log (a log of the same name is appended to)."""
    with log_path.open("ab") as log:
        offset = log_path.stat().st_size
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=str(cwd) if cwd is not None else os.getcwd())
    return process, offset


def last_log_line(log_path: Path, offset: int = 0) -> str:
    """The last non-empty line written to ``log_path`` after ``offset`` ("" if none, or unreadable):
    a detached process's one-line error, if it failed."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def start_detached(spec: RunSpec, *, gpus: int = 1, cwd: str | Path | None = None) -> DetachedRun:
    """Start ``spec`` as a ``workbench run`` process (through torchrun for ``gpus`` > 1) in a
    session of its own, writing under ``spec.out``; returns at once.

    ``spec.name`` must be the resolved run name (the log is named after it, and a follower
    finds the run by it), and ``gpus`` already checked against the visible GPUs: resolving
    imports the objective's task module, which this run layer never does. A UI calls
    ``workbench.experiments.launch.prepare_detached`` first, in a worker thread.
    """
    if not spec.name:
        raise ValueError("start_detached needs the resolved run name (workbench.experiments.launch.prepare_detached)")
    root = Path(spec.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    spec = spec.replace(out=str(root))
    spec_path = write_spec_file(spec.to_toml(), root, spec.name)
    log_path = root / f"{spec.name}.log"
    process, offset = spawn_detached(detached_command(spec_path, gpus), log_path, cwd)
    return DetachedRun(process, spec.name, spec_path, log_path, offset)


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
