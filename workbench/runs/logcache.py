"""A run's events, read again only from where the last read ended: for the readers that poll.

The Runs and Compare panes read a running run's ``metrics.jsonl`` every few seconds; a
10,000-step run is 10,000 lines to parse each time, in a thread that holds the GIL while the
keys wait. ``read_events`` gives what ``RunDir.read_events`` gives (the same records, the
same skipped-line counts, a torn last line left out or taken as it is there), but keeps what
it parsed of each file and parses only the lines appended since. A file replaced (another
inode), shortened, or changed before the point already read (its last read line no longer
ends there: the last ``CHECK_BYTES`` are compared) is read again from the start. The writers
only append (``MetricsWriter``, a resume too), so an in-place rewrite further back, which
this would not see, does not happen to these files.

The records handed out are shared with the cache: read them, do not change them.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.runs import rundir
from workbench.runs.events import event_problem
from workbench.runs.rundir import JsonLines, RunDir, resolved_self_paths

FILES = 512
"""Files kept, least recently read dropped first: a compared sweep's trials and the running runs."""
RECORDS = 300_000
"""Records kept in all (a step line parsed is about half a KiB of Python objects)."""
CHECK_BYTES = 64
"""Bytes before the point already read that must still be there for an append to be trusted."""


@dataclass
class _Read:
    """What has been parsed of one file: up to ``offset``, the end of its last complete line."""

    device: int
    inode: int
    offset: int = 0
    lines: int = 0
    check: bytes = b""
    found: JsonLines = field(default_factory=lambda: JsonLines("metrics.jsonl"))


class LogCache:
    def __init__(self, files: int = FILES, records: int = RECORDS) -> None:
        self.files, self.records = files, records
        self._reads: OrderedDict[str, _Read] = OrderedDict()
        self._lock = threading.Lock()

    def read_events(self, run: RunDir) -> JsonLines:
        """``run.read_events()``, parsing only what was appended since the last call."""
        path = run.metrics
        with self._lock:
            try:
                with rundir.open_regular(path) as handle:  # through the module: one opener for every reader
                    info = os.fstat(handle.fileno())
                    read = self._reads.get(str(path))
                    if read is None or not self._still_there(read, handle, info):
                        read = _Read(info.st_dev, info.st_ino, found=JsonLines(path.name))
                    handle.seek(read.offset)
                    chunk = handle.read()
            except FileNotFoundError:
                self._reads.pop(str(path), None)
                return JsonLines(path.name)
            except OSError:
                self._reads.pop(str(path), None)
                return run.read_events()  # says why it is unreadable
            torn = _consume(read, chunk, run.path)
            self._reads[str(path)] = read
            self._reads.move_to_end(str(path))
            kept = sum(len(r.found.records) for r in self._reads.values())
            while len(self._reads) > 1 and (len(self._reads) > self.files or kept > self.records):
                kept -= len(self._reads.popitem(last=False)[1].found.records)
            return _with_torn(read, torn, run.path)

    @staticmethod
    def _still_there(read: _Read, handle: Any, info: os.stat_result) -> bool:
        """Whether the file is the one read before, grown or as it was, up to ``offset``."""
        if (info.st_dev, info.st_ino) != (read.device, read.inode) or info.st_size < read.offset:
            return False
        if read.check:
            handle.seek(read.offset - len(read.check))
            return handle.read(len(read.check)) == read.check
        return True


def _consume(read: _Read, chunk: bytes, folder: Path) -> bytes:
    """Parse the complete lines of ``chunk`` into ``read`` (as ``read_jsonl`` does); returns the
    torn last line, if any, which stays unread."""
    end = chunk.rfind(b"\n") + 1
    complete, torn = chunk[:end], chunk[end:]
    found = read.found
    for raw in complete.split(b"\n")[:-1]:  # as iterating the file does: only "\n" ends a line
        read.lines += 1
        data = found.take(read.lines, raw + b"\n", event_problem)
        if data is not None:
            found.records.append(resolved_self_paths(data, folder))
    if complete:
        read.offset += len(complete)
        read.check = (read.check + complete)[-CHECK_BYTES:]
    return torn


def _with_torn(read: _Read, torn: bytes, folder: Path) -> JsonLines:
    """A copy of what was read, with the torn last line as ``read_jsonl`` would take it: a
    record when it already parses (and passes), skipped when it parses and fails, else left out."""
    found = read.found
    out = JsonLines(found.name, list(found.records), found.skipped, found.first_skipped, found.unreadable)
    data = out.take(read.lines + 1, torn, event_problem)
    if data is not None:
        out.records.append(resolved_self_paths(data, folder))
    return out


EVENTS = LogCache()
"""This process's cache (the TUI's panes share it)."""
