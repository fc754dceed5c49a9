"""Tail a run's ``metrics.jsonl`` while another process writes it (``workbench run``).

UI-free so it is testable without Textual: ``workbench.engine.launch`` builds on it to
follow detached and attached runs, and the TUI runs those from a thread worker and posts
each event as a message. Hand-written (not ``tail -f``) because the workbench needs three
things a generic tail does not give: a torn last line (the writer is mid-``write``) is held
back until its newline arrives, a file that was replaced or truncated is re-read from the
start, and following ends by itself once the run has finished, failed, or its process is
gone.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from workbench.engine.events import Event, event_from_json
from workbench.engine.rundir import RunDir

ENDING_EVENTS = ("finished", "failed")
"""Event kinds after which a run writes nothing more."""


class MetricsTail:
    """New complete JSON-object lines of one file (``metrics.jsonl``, or the log of a
    ``workbench run --json`` process) since the previous ``read()``, from byte ``start`` on."""

    def __init__(self, path: str | Path, *, start: int = 0):
        self.path = Path(path)
        self.offset = start
        self._partial = b""
        self._inode: int | None = None

    def read(self) -> list[dict[str, Any]]:
        """Parsed new lines (complete lines that are not a JSON object are skipped, a torn tail waits)."""
        try:
            stat = self.path.stat()
        except OSError:
            return []
        if self._inode is not None and (stat.st_ino != self._inode or stat.st_size < self.offset):
            self.offset, self._partial = 0, b""  # replaced or truncated: start over
        self._inode = stat.st_ino
        if stat.st_size == self.offset:
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended in a newline
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append(data)
        return out

    def events(self) -> list[Event]:
        return [e for e in (event_from_json(d) for d in self.read()) if e is not None]


def run_is_live(run_dir: str | Path) -> bool:
    """True while ``status.json`` says running and the process it names is alive.

    Reads only ``status.json`` (``follow`` asks at every quiet poll, and a long run's
    ``metrics.jsonl`` is large); ``run_row`` reports the same state as "interrupted".
    """
    status = RunDir(Path(run_dir)).status()
    if status.get("status") != "running":
        return False
    try:
        pid = int(status.get("pid") or 0)
    except (TypeError, ValueError):
        return False
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: alive, but another user's
        return True
    return True


def follow(
    run_dir: str | Path,
    *,
    interval: float = 0.25,
    should_stop: Callable[[], bool] | None = None,
    stop: threading.Event | None = None,
    idle_timeout: float | None = None,
) -> Iterator[Event]:
    """Yield every event of a run: what is already written, then new ones as they land.

    Ends after a ``finished``/``failed`` event, when ``should_stop()`` or ``stop`` says so,
    when the writer is no longer live (checked only once nothing new arrives), or after
    ``idle_timeout`` seconds without a new line.
    """
    tail = MetricsTail(Path(run_dir) / "metrics.jsonl")
    last_new = time.monotonic()

    def stopping() -> bool:
        return bool((should_stop and should_stop()) or (stop and stop.is_set()))

    while not stopping():
        events = tail.events()
        for event in events:
            yield event
            if event.kind in ENDING_EVENTS:
                return
        now = time.monotonic()
        if events:
            last_new = now
            continue
        if idle_timeout is not None and now - last_new > idle_timeout:
            return
        if (Path(run_dir) / "status.json").exists() and not run_is_live(run_dir):
            for event in tail.events():  # lines written between the read and the check
                yield event
            return
        if stop is not None:
            stop.wait(interval)
        else:
            time.sleep(interval)
