"""A new run whose start fails leaves no empty run directory behind.

A new run's folder is made early (every rank must agree on it, and the lock is taken before
anything is written), and only then is the tokenizer trained, the corpus tokenized and the
model built. When one of those fails (fewer tokens than one sequence, a base that does not
load, out of memory placing the model), the folder holds nothing anyone could want back:
only what the start itself wrote (the lock, ``status.json``, ``run.toml``, the tokenizer,
an empty ``metrics.jsonl``). It is removed, and the one-line error says what went wrong;
otherwise ``workbench runs`` fills with runs that never ran.

Anything else in the folder (a checkpoint, a metrics line, a model, a file someone put
there, a symbolic link) keeps it, and the caller marks it ``failed`` with the reason. A
resumed run is never removed, nor a folder another process holds the lock of.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.runs.lock import RunLock, claim

START_FILES = (".lock", "status.json", "run.toml")
"""Plain files a start writes (``tokenizer/`` and an empty ``metrics.jsonl`` are checked apart)."""
ATOMIC_TEMP_PREFIXES = (".status.json.", ".run.toml.")
"""Temp files of an atomic write of those files that a failure cut short."""


def _plain_file(entry: os.DirEntry) -> bool:
    return entry.is_file(follow_symlinks=False)


def _tokenizer_folder(entry: os.DirEntry) -> bool:
    """A real folder of plain files (what ``save_pretrained`` writes), nothing nested."""
    if not entry.is_dir(follow_symlinks=False):
        return False
    with os.scandir(entry.path) as inner:
        return all(_plain_file(item) for item in inner)


def only_start_files(path: Path) -> bool:
    """True when ``path`` holds nothing but what starting a run writes; anything in doubt is False."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                if name == "tokenizer":
                    ok = _tokenizer_folder(entry)
                elif name == "metrics.jsonl":
                    ok = _plain_file(entry) and entry.stat(follow_symlinks=False).st_size == 0
                else:
                    temp = name.startswith(ATOMIC_TEMP_PREFIXES) and name.endswith(".tmp")
                    ok = (name in START_FILES or temp) and _plain_file(entry)
                if not ok:
                    return False
    except OSError:
        return False
    return True


def discard_failed_start(path: Path, held: RunLock | None = None) -> bool:
    """Remove the folder of a new run whose start failed, if it holds only start files.

    Under the run's lock (``held``, or taken here), so no other process is using it; renamed
    aside before deletion, so no reader meets a half-deleted run. Returns whether it is gone.
    """
    try:
        lock = held or claim(path)
    except (WorkbenchError, OSError):  # another process holds it, or a planted link: keep it
        return False
    aside = path.with_name(f".{path.name}.failed-start-{os.getpid()}")
    try:
        if not only_start_files(path):
            return False
        os.rename(path, aside)
    except OSError:
        return False
    finally:
        if held is None:
            lock.release()
    shutil.rmtree(aside, ignore_errors=True)
    return True
