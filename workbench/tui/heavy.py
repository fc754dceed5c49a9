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

import threading
from collections.abc import Callable

from textual.worker import NoActiveWorker, get_current_worker

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
        import transformers

        transformers.PreTrainedTokenizerBase  # noqa: B018 - finish transformers' lazy import here
        from workbench.quiet import quiet_libraries

        quiet_libraries()
    except BaseException as error:  # noqa: BLE001 - handed to every caller
        _error = error
    finally:
        _READY.set()


def start_heavy_import() -> None:
    """Start importing torch, transformers and datasets in a daemon thread (once)."""
    global _thread
    with _LOCK:
        if _thread is None:
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
