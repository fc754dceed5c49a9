"""Map SIGINT, SIGTERM and SIGHUP onto a cooperative stop of a run.

First signal: ``RunControl.request_stop``. The loop finishes its step and the run saves its
checkpoint before anything else (then one eval of the fixed subset, ``model/`` and the
summary; the whole-split final report waits for a resume), and the front end exits with
``128 + signum`` (130, 143, 129). A SIGHUP that was already ignored when the handlers are
installed (``nohup``) stays ignored: the user asked for the run to outlive the terminal.

Second signal: exit at once. ``status.json`` is first set to ``stopped`` with what is on disk
(when the run directory is known); the checkpoints stay intact because every save is an
atomic rename.

``hangup_deadline_s`` (10 s by default) and ``deadline_s`` bound the graceful path, so an SSH
drop never leaves an orphan holding the GPU, but no timer cuts a checkpoint short: around a
run (``wait_for_checkpoint``) the timer starts only once the first checkpoint after the signal
is saved (a ``StopSignals`` is also a listener: it sees ``CheckpointSaved``) or the run has
returned, and it records ``status.json`` before it exits. With no run to wait for, it starts
at the signal. On SIGHUP stdout/stderr are pointed at /dev/null first: the terminal is gone
and a print must not kill the graceful stop.

Signal handlers can only be installed from the main thread. ``workbench run`` calls
``install_stop_signals`` before ``TrainingRun.run()``. The TUI (Textual runs in the main
thread; Ctrl-C is a key there, not SIGINT) installs them while a run trains in its own
process, with an ``on_signal`` that marks the app as quitting; when the training worker has
finished (the run checkpoints and returns) it exits with ``exit_code`` and ``restore()``s
the previous handlers.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.runs.control import RunControl
from workbench.runs.events import CheckpointSaved, Event, RunFailed, RunFinished, RunStarted
from workbench.runs.rundir import RunDir

EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
if hasattr(signal, "SIGHUP"):
    EXIT_CODES[signal.SIGHUP] = 129


def exit_code_for(signum: int) -> int:
    return EXIT_CODES.get(signum, 128 + int(signum))


@dataclass
class StopSignals:
    """What ``install_stop_signals`` set up; ``restore()`` puts the old handlers back.

    ``exit_code`` is ``None`` until a signal arrives, then 130/143/129: the front end exits
    with it once the run has returned (``workbench run`` does ``raise SystemExit``; the TUI
    calls ``app.exit(return_code=...)``). Pass it to the run as a listener so that it learns
    the run directory and when the checkpoint after a signal is complete.
    """

    control: RunControl
    signum: int | None = None
    previous: dict[int, Any] = field(default_factory=dict)
    on_signal: Callable[[int], None] | None = None
    deadline_s: float | None = None
    hangup_deadline_s: float | None = None
    wait_for_checkpoint: bool = False
    run_dir: Path | None = None
    """From the run's ``RunStarted``: where a forced exit records ``status.json``."""
    checkpoint_step: int | None = None
    """The newest complete checkpoint this run is known to have (saved, or resumed from)."""
    settled: bool = False
    """The run has written its own last status (finished, stopped, failed): a forced exit keeps it."""
    saved_since_signal: bool = False
    _timer: threading.Timer | None = None

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else exit_code_for(self.signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def handle(self, signum: int, frame: Any = None) -> None:
        if self.signum is not None:  # second signal: leave now, the last checkpoint is intact
            self._exit_now(f"stopped by a second {signal.Signals(signum).name}")
        self.signum = signum
        if signum == getattr(signal, "SIGHUP", None):
            _detach_output()
        self.control.request_stop(f"{signal.Signals(signum).name} received")
        if not self.wait_for_checkpoint:
            self._arm_deadline()
        if self.on_signal is not None:
            self.on_signal(signum)

    def __call__(self, event: Event) -> None:
        """Listener: learn the run directory and checkpoints; the checkpoint saved after a
        signal starts the deadline (the rest of the stop is eval, ``model/``, summary)."""
        if isinstance(event, RunStarted):
            self.run_dir = Path(event.run_dir)
            if event.resumed_from_step:
                self.checkpoint_step = int(event.resumed_from_step)
        elif isinstance(event, CheckpointSaved):
            self.checkpoint_step = int(event.step)
            if self.signum is not None:
                self.saved_since_signal = True
                self._arm_deadline()
        elif isinstance(event, (RunFinished, RunFailed)):
            self.settled = True

    def _arm_deadline(self) -> None:
        deadline = self.hangup_deadline_s if self.signum == getattr(signal, "SIGHUP", None) else self.deadline_s
        if deadline is None or self.signum is None or self._timer is not None:
            return
        name = self.name
        self._timer = threading.Timer(deadline, self._exit_now, args=(f"stopped by {name}, then by the {deadline:g} s deadline",))
        self._timer.daemon = True
        self._timer.start()

    def _exit_now(self, cause: str) -> None:
        """Record the stop in ``status.json`` (unless the run has recorded its end), then exit
        with the first signal's code. Runs in the handler or the deadline's thread."""
        if not self.settled and self.run_dir is not None:
            try:
                step = {} if self.checkpoint_step is None else {"step": self.checkpoint_step}
                RunDir(self.run_dir).write_status_anyway("stopped", message=self._exit_message(cause), **step)
            except Exception:  # noqa: BLE001 - nothing may keep this exit from happening
                pass
        os._exit(exit_code_for(self.signum if self.signum is not None else signal.SIGTERM))

    def _exit_message(self, cause: str) -> str:
        step = self.checkpoint_step
        if step is None:
            return f"{cause} before any checkpoint was saved"
        if self.saved_since_signal:
            return f"{cause}, after the checkpoint at step {step} was saved; the final eval, model/ or summary may be missing"
        return f"{cause} before the final save; the last checkpoint (step {step}) is intact"

    def cancel_deadline(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def ignore_further(self) -> None:
        """The run has saved and returned: ignore more stop signals while the interpreter
        shuts down (Python puts its own handlers back to the default at shutdown, so a
        second signal there would kill the process (-15) instead of exiting with the code),
        and let the deadline, if there is one, bound that shutdown."""
        self.settled = True
        for signum in self.previous:
            try:
                signal.signal(signum, signal.SIG_IGN)
            except (ValueError, OSError):
                pass
        self._arm_deadline()

    def restore(self) -> None:
        self.cancel_deadline()
        for signum, handler in self.previous.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError):  # not the main thread any more, or an odd platform
                pass


def _detach_output() -> None:
    """After a hang-up the terminal is gone and writing to it fails (EIO): point stdout and
    stderr at /dev/null so the graceful stop is not killed by a print."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in (1, 2):
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)


def install_stop_signals(
    control: RunControl,
    *,
    signals: tuple[int, ...] | None = None,
    on_signal: Callable[[int], None] | None = None,
    deadline_s: float | None = None,
    hangup_deadline_s: float | None = 10.0,
    wait_for_checkpoint: bool = False,
) -> StopSignals:
    """Install the handlers (main thread only) and return their ``StopSignals``.

    ``on_signal(signum)`` is called from the handler after the stop is requested (the TUI
    uses it to post a message; keep it short and thread-safe). ``deadline_s``: exit with the
    signal's code that many seconds after the first signal even if the run has not returned;
    ``hangup_deadline_s`` is the same for SIGHUP (an SSH drop: nobody is left to wait for).
    ``wait_for_checkpoint``: start those timers only once the checkpoint after the signal is
    saved (the ``StopSignals`` must then be one of the run's listeners) or the run returned.
    A SIGHUP that is ignored now (``nohup``) is left ignored.
    """
    state = StopSignals(control=control, on_signal=on_signal, deadline_s=deadline_s, hangup_deadline_s=hangup_deadline_s,
                        wait_for_checkpoint=wait_for_checkpoint)
    for signum in signals if signals is not None else tuple(EXIT_CODES):
        if signum == getattr(signal, "SIGHUP", None) and signal.getsignal(signum) == signal.SIG_IGN:
            continue
        state.previous[signum] = signal.signal(signum, state.handle)
    return state
