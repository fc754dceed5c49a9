"""How far a long preparation step is (tokenizing, building pairs), for whoever listens.

Plain Python, no UI: a run installs a listener for its thread with ``reported_to`` (the
engine turns each report into a ``Preparing`` event); the step wraps itself in ``stage(name,
total)`` and calls ``advance(n)`` as units (rows) are done. A stage reports 0 when it
starts, 1 when it ends, and in between at most once per ``INTERVAL`` seconds, so a listener
that redraws a screen is never flooded. With no listener every call is a cheap no-op, as it
is in ``datasets.map`` worker processes (``num_proc`` > 1), which do not see the listener.

``advance`` is called from inside functions given to ``datasets.map``: import it by name
(``from workbench.corpora.progress import advance``). ``datasets`` hashes the mapped function
for its cache fingerprint, and pickles a function it refers to by reference, but this
module by value, which fails on its ``ContextVar``s and makes every map a cache miss.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

Reporter = Callable[[str, "float | None"], None]
"""(stage, fraction 0..1 or None) -> None."""

INTERVAL = 0.25
"""Seconds between two reports of one stage (the first and the last are always sent)."""

_listener: ContextVar[Reporter | None] = ContextVar("workbench_progress_listener", default=None)
_current: ContextVar[_Stage | None] = ContextVar("workbench_progress_stage", default=None)


@dataclass
class _Stage:
    name: str
    total: int
    listener: Reporter
    done: int = 0
    reported_at: float = 0.0


@contextmanager
def reported_to(listener: Reporter) -> Iterator[None]:
    """Send this thread's progress reports to ``listener`` for the length of the block."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


@contextmanager
def stage(name: str, total: int | None = None) -> Iterator[None]:
    """A step of ``total`` units (``advance`` counts them; None: it cannot say how far it is)."""
    listener = _listener.get()
    if listener is None:
        yield
        return
    current = _Stage(name, max(0, total or 0), listener, reported_at=time.monotonic())
    token = _current.set(current if total else None)
    listener(name, 0.0 if total else None)
    try:
        yield
    finally:
        _current.reset(token)
    if total:
        listener(name, 1.0)


def advance(units: int) -> None:
    """``units`` more of the current stage are done (reported if ``INTERVAL`` has passed)."""
    current = _current.get()
    if current is None:
        return
    current.done += units
    now = time.monotonic()
    if now - current.reported_at >= INTERVAL and current.done < current.total:
        current.reported_at = now
        current.listener(current.name, current.done / current.total)
