"""One first import of the heavy libraries, shared by the TUI's worker threads.

Several workers start together when the app mounts (the corpus's stats, the objective's
defaults) and each reaches torch, transformers and datasets for the first time. Those
imports are not safe to race: ``datasets`` looks up ``transformers.PreTrainedTokenizerBase``
as soon as ``transformers`` is in ``sys.modules``, which it is while another thread is still
importing it ("module 'transformers' has no attribute ..."). So every worker that may import
them calls ``import_heavy_libraries()`` first: the first one imports, the others wait.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_done = False


def import_heavy_libraries() -> None:
    """Import torch, transformers and datasets once (seconds, the first time; then free)."""
    global _done
    if _done:
        return
    with _LOCK:
        if _done:
            return
        import datasets  # noqa: F401
        import torch  # noqa: F401
        import transformers

        transformers.PreTrainedTokenizerBase  # noqa: B018 - finish transformers' lazy import here
        from workbench.quiet import quiet_libraries

        quiet_libraries()
        _done = True
