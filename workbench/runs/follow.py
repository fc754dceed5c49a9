"""Tail a run's ``metrics.jsonl`` while another process writes it (``workbench run``).

UI-free so it is testable without Textual: ``workbench.runs.launch`` builds on it to
follow detached and attached runs, and the TUI runs those from a thread worker and posts
each event as a message. Hand-written (not ``tail -f``) because the workbench needs three
things a generic tail does not give: a torn last line (the writer is mid-``write``) is held
back until its newline arrives, a file that was replaced or truncated is re-read from the
start, and following ends by itself once the run has finished, failed, or its process is
gone. Lines that are not usable events (``event_problem``) are skipped, and ``follow`` says
how many in a ``message`` event, so a damaged line neither stops nor misleads the follower.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from workbench.runs.events import Event, Message, event_from_json, event_problem
from workbench.runs.processes import pid_alive
from workbench.runs.rundir import RunDir, open_regular, parse_json_line, resolved_self_paths, skipped_note

ENDING_EVENTS = ("finished", "failed")
"""Event kinds after which a run writes nothing more."""


class MetricsTail:
    """New complete JSON-object lines of one file (``metrics.jsonl``, or the log of a
    ``workbench run --json`` process) since the previous ``read()``, from byte ``start`` on.
    ``skipped`` counts the complete lines it could not use."""

    def __init__(self, path: str | Path, *, start: int = 0):
        self.path = Path(path)
        self.offset = start
        self.skipped = 0
        self._partial = b""
        self._inode: int | None = None

    def read(self) -> list[dict[str, Any]]:
        """Parsed new lines (complete lines that are not a JSON object are skipped and
        counted, a torn tail waits)."""
        try:
            with open_regular(self.path) as handle:
                stat = os.fstat(handle.fileno())
                if self._inode is not None and (stat.st_ino != self._inode or stat.st_size < self.offset):
                    self.offset, self._partial = 0, b""  # replaced or truncated: start over
                self._inode = stat.st_ino
                if stat.st_size == self.offset:
                    return []
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:
            return []
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended in a newline
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                data = parse_json_line(line)
            except ValueError:
                data = None
            if isinstance(data, dict):
                out.append(data)
            else:
                self.skipped += 1
        return out

    def events(self) -> list[Event]:
        """New events; lines that fail ``event_problem`` are skipped and counted too."""
        out = []
        for data in self.read():
            if event_problem(data):
                self.skipped += 1
                continue
            event = event_from_json(resolved_self_paths(data, self.path.parent))
            if event is not None:
                out.append(event)
        return out


def run_is_live(run_dir: str | Path) -> bool:
    """True while ``status.json`` says running and the process it names is alive.

    Reads only ``status.json`` (``follow`` asks at every quiet poll, and a long run's
    ``metrics.jsonl`` is large); ``run_row`` reports the same state as "interrupted". A
    damaged ``status.json`` is not a live run.
    """
    status = RunDir(Path(run_dir)).status()
    if status.get("status") != "running":
        return False
    pid = status.get("pid") or 0
    return not pid or pid_alive(pid)


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
    reported = 0

    def stopping() -> bool:
        return bool((should_stop and should_stop()) or (stop and stop.is_set()))

    def read() -> list[Event]:
        """New events, after a note when more lines were skipped since the last one."""
        nonlocal reported
        events = tail.events()
        if tail.skipped > reported:
            reported = tail.skipped
            events.insert(0, Message(text=skipped_note(tail.path.name, tail.skipped)))
        return events

    while not stopping():
        events = read()
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
            yield from read()  # lines written between the read and the check
            return
        if stop is not None:
            stop.wait(interval)
        else:
            time.sleep(interval)
