"""Caches heal: an entry that fails to load is discarded, rebuilt, and reported in one line.

Everything cached is rebuilt from the corpus: trained tokenizers (``tokenization.py``), the
``datasets`` Arrow files of a loaded corpus (its prepared copy, the blank-document filter,
the held-out split) and of its tokens (``tasks/packing.py``). ``datasets`` keeps all of a
file's derived data in one folder, so a failure there is healed folder-wide: every file in
it that does not load goes, whichever step met the first. A file left damaged by a full
disk, a kill mid-write or a hand edit would otherwise fail every later run on that corpus.

Notices go to the listener installed with ``notices_to`` (a run emits them as ``Message``
events); with none, to the ``workbench`` logger, which prints warnings on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_listener: ContextVar[Callable[[str], None] | None] = ContextVar("workbench_cache_listener", default=None)


@contextmanager
def notices_to(listener: Callable[[str], None]) -> Iterator[None]:
    """Send this thread's cache notices to ``listener`` for the length of the block."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def notice(text: str) -> None:
    listener = _listener.get()
    if listener is None:
        logging.getLogger("workbench").warning(text)
    else:
        listener(text)


def reason(exc: BaseException) -> str:
    """An exception as a short phrase for a one-line notice."""
    if isinstance(exc, KeyError):
        return f"no {exc} entry"
    return " ".join(str(exc).split())[:160] or type(exc).__name__


def discard(path: Path) -> None:
    """Remove a cache entry, renamed aside first so that no reader meets it half-deleted."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.discarded")
    try:
        os.replace(path, aside)
    except OSError:  # gone already (another process healed it), or not renamable: delete in place
        aside = path
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        try:
            aside.unlink(missing_ok=True)
        except OSError:
            pass


def file_problem(path: Path) -> str | None:
    """Why a cached Arrow or JSON file does not load, or None when it does.

    Arrow files are read the way ``datasets`` reads them (a memory-mapped IPC stream), so
    this costs a pass over their metadata, not a copy of the data.
    """
    try:
        if path.suffix == ".arrow":
            import pyarrow as pa  # pyarrow: loaded on first use

            with pa.memory_map(str(path)) as source:
                pa.ipc.open_stream(source).read_all()
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - any failure to load means the entry is bad
        return reason(exc)
    return None


def discard_unreadable(folders: Iterable[Path]) -> list[tuple[Path, str]]:
    """Discard every ``*.arrow``/``*.json`` file in ``folders`` that does not load."""
    bad = []
    for folder in sorted(set(folders)):
        for path in sorted(folder.glob("*.arrow")) + sorted(folder.glob("*.json")):
            problem = file_problem(path)
            if problem is not None:
                discard(path)
                bad.append((path, problem))
    return bad


def healed_text(bad: list[tuple[Path, str]]) -> str:
    """One line for the files ``discard_unreadable`` removed (they are rebuilt next)."""
    (path, problem), more = bad[0], len(bad) - 1
    files = f"{path.name} and {more} more" if more else path.name
    return f"Discarded unreadable cached corpus data in {path.parent} ({files}: {problem}); rebuilding it"


def cache_folders(ds: Any) -> list[Path]:
    """The folders holding a dataset's Arrow files, where ``datasets`` caches what is made from it."""
    return sorted({Path(entry["filename"]).parent for entry in getattr(ds, "cache_files", None) or []})


def healing(ds: Any, action: Callable[[], T]) -> T:
    """``action()`` (a ``map``, ``filter`` or split of ``ds``); if it fails and a cache file
    beside ``ds``'s Arrow files turns out unreadable, that file is discarded, the user told,
    and ``action`` run once more, which rebuilds it. Any other failure is re-raised as is."""
    try:
        return action()
    except Exception:
        bad = discard_unreadable(cache_folders(ds))
        if not bad:
            raise
    notice(healed_text(bad))
    return action()
