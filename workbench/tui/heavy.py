"""One first import of the heavy libraries, shared by the TUI's worker threads.

Several workers start together when the app mounts (the corpus's stats, the objective's
defaults) and each reaches torch, transformers and datasets for the first time. Those
imports are not safe to race: ``datasets`` looks up ``transformers.PreTrainedTokenizerBase``
as soon as ``transformers`` is in ``sys.modules``, which it is while another thread is still
importing it ("module 'transformers' has no attribute ..."). So every worker that may import
them calls ``import_heavy_libraries()`` first: the first call starts the import, and every
caller waits for it to finish.

The import itself runs in a daemon thread, not in the worker: quitting must not wait seconds
for torch to load. A caller in a thread worker stops waiting as soon as its worker is
cancelled (which ``App.exit`` does to every worker) and is told so by a ``False``: the worker
then returns at once, and the app's exit does not wait for the import.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable

from textual.worker import NoActiveWorker, get_current_worker

from workbench.quiet import quiet_libraries

_LOCK = threading.Lock()
_READY = threading.Event()
_thread: threading.Thread | None = None
_error: BaseException | None = None
POLL_SECONDS = 0.05
"""How often a waiting worker looks whether it was cancelled."""


def _import() -> None:
    global _error
    try:
        import datasets  # noqa: F401
        import torch  # noqa: F401
        import transformers  # transformers: loaded on first use

        transformers.PreTrainedTokenizerBase  # noqa: B018 - finish transformers' lazy import here

        quiet_libraries()
        freeze_long_lived()
    except BaseException as error:  # noqa: BLE001 - handed to every caller
        _error = error
    finally:
        sys.setswitchinterval(_switch_interval)
        _READY.set()


_modules_frozen = 0
"""``len(sys.modules)`` at the last ``freeze_long_lived`` that froze."""
NEW_MODULES = 50
"""Modules imported since the last freeze that make the next call freeze again."""


def freeze_long_lived() -> bool:
    """Move the objects alive now out of the garbage collector's reach (``gc.freeze``), if
    many modules were imported since the last time (``True`` when it froze).

    torch, transformers, datasets and what they import later (sympy, scipy, accelerate...)
    leave about 500,000 objects behind, and a full collection walks all of them: 250-550 ms
    with the GIL held, a frozen screen every few seconds while the UI allocates (measured in
    ``benchmarks/tui_latency.py``). Modules, classes and functions live until the process
    ends anyway, so nothing is lost by not scanning them. The young generations are
    collected first, so little garbage is frozen with them. Called after the heavy import,
    every few seconds by the app (a worker may have imported more: a look at
    ``len(sys.modules)`` when nothing was) and when a run starts training.

    Not while the heavy import runs, except by that import at its end: a collection halfway
    walks hundreds of thousands of objects with the GIL held (the UI frozen, a quit delayed)
    and the import brings more within the second."""
    global _modules_frozen
    if _thread is not None and not _READY.is_set() and threading.current_thread() is not _thread:
        return False
    modules = len(sys.modules)
    if modules - _modules_frozen < NEW_MODULES:
        return False
    _modules_frozen = modules
    gc.collect(1)
    gc.freeze()
    return True


YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation in the TUI's process
(CPython's default: 700)."""


def collect_young_less_often() -> tuple[int, int, int]:
    """Raise the garbage collector's first threshold to ``YOUNG_THRESHOLD`` (never lower it);
    the thresholds now in use.

    A pane switch allocates ~10,000 objects that live only until the next frame (widget
    styles, render strips): at CPython's 700 that was ~15 young collections per switch, which
    promoted objects still alive mid-switch to the older generations, so a middle collection
    came every switch and a full one every ~8 (up to 15-50 ms each, the GIL held). At 10,000
    most of them are gone before a collection looks: one young collection per switch or so,
    the same total work for it, and middle and full collections become rare (GC time per switch
    6.2 -> 3.3 ms, measured with ``gc.callbacks``)."""
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_threshold()


def leave_a_core_for_the_ui() -> int:
    """Torch's intra-op threads for a run in the TUI's process: one fewer than the cores,
    so the UI thread is not left waiting for a core while kernels run (torch's default is
    one thread per core). A smaller count set by the user (``OMP_NUM_THREADS``,
    ``torch.set_num_threads``) is kept. Returns the count in use."""
    import torch  # torch: loaded on first use

    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() >= cores:
        torch.set_num_threads(cores - 1)
    return torch.get_num_threads()


IMPORT_SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL while another waits for it, during the heavy import
(CPython's default: 0.005). The importing thread runs Python code for seconds without a
pause; each time the UI thread waits on I/O (every turn of the event loop) it then waits up
to a whole interval to get the GIL back, so at 5 ms a key took several times longer to
handle while the import ran."""
_switch_interval = sys.getswitchinterval()


def start_heavy_import() -> None:
    """Start importing torch, transformers and datasets in a daemon thread (once), with a
    shorter GIL switch interval until it is done (``IMPORT_SWITCH_INTERVAL``)."""
    global _thread, _switch_interval
    with _LOCK:
        if _thread is None:
            _switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_interval, IMPORT_SWITCH_INTERVAL))
            _thread = threading.Thread(target=_import, name="workbench-heavy-import", daemon=True)
            _thread.start()


def libraries_ready() -> bool:
    """Whether the heavy libraries are imported (so ``import_heavy_libraries`` is free)."""
    return _READY.is_set()


def _worker_cancelled() -> bool:
    try:
        return get_current_worker().is_cancelled
    except NoActiveWorker:
        return False


def import_heavy_libraries(should_stop: Callable[[], bool] | None = None) -> bool:
    """Wait until torch, transformers and datasets are imported (seconds, the first time; then
    free). ``False`` if the wait was given up: the calling worker was cancelled (or
    ``should_stop()`` said so) first. An error of the import is raised in every caller."""
    if not _READY.is_set():
        start_heavy_import()
        stop = should_stop or _worker_cancelled
        while not _READY.wait(POLL_SECONDS):
            if stop():
                return False
    if _error is not None:
        raise _error
    return True
