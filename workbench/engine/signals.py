"""Map SIGINT, SIGTERM and SIGHUP onto a cooperative stop of a run.

First signal: ``RunControl.request_stop`` (the loop finishes its step, checkpoints and
returns), and the front end exits with ``128 + signum`` (130, 143, 129). Second signal: exit
at once; the checkpoints on disk stay intact because every save is an atomic rename.
``hangup_deadline_s`` (10 s by default) and ``deadline_s`` bound the graceful path: when the
process is still alive that long after the first SIGHUP (or other signal), it exits anyway,
so an SSH drop never leaves an orphan holding the GPU. On SIGHUP stdout/stderr are pointed
at /dev/null first: the terminal is gone and a print must not kill the graceful stop.

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
from typing import Any, Callable

from workbench.engine.control import RunControl

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
    calls ``app.exit(return_code=...)``).
    """

    control: RunControl
    signum: int | None = None
    previous: dict[int, Any] = field(default_factory=dict)
    on_signal: Callable[[int], None] | None = None
    deadline_s: float | None = None
    hangup_deadline_s: float | None = None
    _timer: threading.Timer | None = None

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else exit_code_for(self.signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def handle(self, signum: int, frame: Any = None) -> None:
        if self.signum is not None:  # second signal: leave now, the last checkpoint is intact
            os._exit(exit_code_for(self.signum))
        self.signum = signum
        if signum == getattr(signal, "SIGHUP", None):
            _detach_output()
        self.control.request_stop(f"{signal.Signals(signum).name} received")
        deadline = self.hangup_deadline_s if signum == getattr(signal, "SIGHUP", None) else self.deadline_s
        if deadline is not None:
            self._timer = threading.Timer(deadline, os._exit, args=(exit_code_for(signum),))
            self._timer.daemon = True
            self._timer.start()
        if self.on_signal is not None:
            self.on_signal(signum)

    def cancel_deadline(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def ignore_further(self) -> None:
        """The run has saved and returned: ignore more stop signals while the interpreter
        shuts down. Python puts its own handlers back to the default at shutdown, so a
        second signal there would kill the process (-15) instead of exiting with the code."""
        self.cancel_deadline()
        for signum in self.previous:
            try:
                signal.signal(signum, signal.SIG_IGN)
            except (ValueError, OSError):
                pass

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
) -> StopSignals:
    """Install the handlers (main thread only) and return their ``StopSignals``.

    ``on_signal(signum)`` is called from the handler after the stop is requested (the TUI
    uses it to post a message; keep it short and thread-safe). ``deadline_s``: exit with the
    signal's code that many seconds after the first signal even if the run has not returned;
    ``hangup_deadline_s`` is the same for SIGHUP (an SSH drop: nobody is left to wait for).
    """
    state = StopSignals(control=control, on_signal=on_signal, deadline_s=deadline_s, hangup_deadline_s=hangup_deadline_s)
    for signum in signals if signals is not None else tuple(EXIT_CODES):
        state.previous[signum] = signal.signal(signum, state.handle)
    return state
