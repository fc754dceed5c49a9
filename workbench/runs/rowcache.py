"""What listing read from each run's files, kept so that a listing re-reads a run only when one
of its files changed.

An entry is keyed by the run folder's absolute path and holds the *stamp* of its files (for
each of ``STAMPED_FILES``: device, inode, size, modification and change times in ns, or None
while it is absent) with the facts read from them (``listing.run_facts``). A copied or moved
run is a new path or new inodes, so an entry is never trusted across a copy; an append changes
the size, an atomic rewrite the inode. What must stay live (is the pid of a "running" run
still alive, do the kept checkpoints exist) is never cached.

``MEMORY`` serves a long-lived process (the TUI); the CLI keeps one small JSON file per run
root under the user's cache folder (``$WORKBENCH_CACHE``, else ``~/.cache/lm-workbench``, in
``runs/``), never inside the run folders, written atomically, and ignored (then rebuilt) when
it cannot be read or trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from workbench.runs.rundir import atomic_write_text, parse_json_line, read_small_file

STAMPED_FILES = ("run.toml", "status.json", "metrics.jsonl", "probes.jsonl")
"""The files a row is read from."""

RACY_SECONDS = 1.0
"""A file modified this recently is not cached: a rewrite of the same size within the same
clock tick of the file system would leave its stamp unchanged (git's "racily clean" case)."""

VERSION = 1
"""The disk format; a file of another version is ignored."""

FACT_TYPES: dict[str, tuple[type, ...]] = {
    "objective": (str,), "corpus": (str,), "base": (str,), "method": (str,), "created": (float, int),
    "toml_problems": (list,), "status": (str,), "pid": (int, type(None)), "status_problem": (str, type(None)),
    "steps": (int,), "total_steps": (int,), "best": (float, type(None)), "log_problems": (list,), "kept": (list,),
}
"""The facts of one run and their types (an entry read from disk with anything else is dropped)."""


def run_stamp(folder: Path, now: float | None = None) -> list | None:
    """The stamp of a run folder's files, or None when it cannot be trusted: a file that
    could not be looked at, or one modified less than ``RACY_SECONDS`` ago."""
    now = time.time() if now is None else now
    stamp: list[Any] = []
    base = os.fspath(folder)  # plain strings: a listing stamps 4,000 files, and pathlib's joins cost more than the stats
    for name in STAMPED_FILES:
        try:
            st = os.stat(os.path.join(base, name))
        except FileNotFoundError:
            stamp.append(None)
            continue
        except OSError:
            return None
        if now - st.st_mtime < RACY_SECONDS:
            return None
        stamp.append([st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    return stamp


def facts_ok(facts: Any) -> bool:
    """Whether ``facts`` has every field of ``FACT_TYPES`` with its type (bool is no int)."""
    return isinstance(facts, dict) and all(
        name in facts and isinstance(facts[name], kinds) and not isinstance(facts[name], bool)
        for name, kinds in FACT_TYPES.items()) and all(
        isinstance(item, str) for name in ("toml_problems", "log_problems") for item in facts[name])


class RowCache:
    """Facts by run folder, each with the stamp it was read at."""

    def __init__(self, entries: dict[str, list] | None = None) -> None:
        self.entries: dict[str, list] = entries or {}
        self.used: set[str] = set()
        self.changed = False

    def get(self, path: str, stamp: list) -> dict | None:
        """The facts read at ``stamp``, or None when the files changed since (or never read)."""
        self.used.add(path)
        entry = self.entries.get(path)
        return entry[1] if entry is not None and entry[0] == stamp else None

    def put(self, path: str, stamp: list, facts: dict) -> None:
        self.used.add(path)
        self.entries[path] = [stamp, facts]
        self.changed = True


MEMORY = RowCache()
"""This process's cache (the TUI lists the same root every few seconds)."""


def cache_file(root: str | Path) -> Path:
    """The disk cache of one run root: named by a hash of its absolute path."""
    base = Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "lm-workbench")
    key = hashlib.sha256(os.path.abspath(root).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return base / "runs" / f"{key}.json"


def load(root: str | Path) -> RowCache:
    """The disk cache of ``root``; an empty one when there is none or it cannot be trusted
    (unreadable, not this version, made for another root): it is rebuilt by the listing."""
    try:
        data = parse_json_line(read_small_file(cache_file(root), limit=64 << 20))
    except (OSError, ValueError):
        return RowCache()
    if not isinstance(data, dict) or data.get("version") != VERSION or data.get("root") != os.path.abspath(root):
        return RowCache()
    entries = data.get("runs")
    if not isinstance(entries, dict):
        return RowCache()
    return RowCache({path: entry for path, entry in entries.items()
                     if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list) and facts_ok(entry[1])})


def save(cache: RowCache, root: str | Path) -> None:
    """Write the entries this listing used (a run gone is dropped), if anything changed; a
    cache that cannot be written is no error (the next listing reads the files again)."""
    kept = {path: entry for path, entry in cache.entries.items() if path in cache.used}
    if not cache.changed and len(kept) == len(cache.entries):
        return
    doc = {"version": VERSION, "root": os.path.abspath(root), "runs": kept}
    try:
        atomic_write_text(cache_file(root), json.dumps(doc, separators=(",", ":")))
    except (OSError, ValueError):
        pass
