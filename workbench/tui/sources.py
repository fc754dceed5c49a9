"""The runs the Train pane can show, one object each: where its curves come from.

* ``LiveRun``: training here, in the app's thread worker (its ``RunControl`` stops or pauses it).
* ``FollowedRun``: a run another process writes, attached to (or started detached here).
* ``OpenedRun``: a run's ``metrics.jsonl`` read once.

The app holds one of each (a new one replaces the old when a run starts, is attached or
opened) and shows one of them (``WorkbenchApp.shown``). Messages from worker threads carry
the object they are about, so news from a follower that has been replaced is recognised by
identity (``eq=False``: compared and hashed as objects), not by a name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from textual.worker import Worker, WorkerState

from workbench.runs.control import RunControl
from workbench.runs.launch import DetachedRun
from workbench.tui.curves import Curves


@dataclass(eq=False)
class RunSource:
    curves: Curves = field(default_factory=Curves)
    run_dir: Path | None = None
    """The run's directory, once known (a run starting here or detached says so when it starts)."""
    note: str = ""
    """A warning shown under the run's name (what was skipped of a damaged run)."""
    worker: Worker | None = None
    """The thread worker that trains or follows it (none for an opened run)."""

    label: ClassVar[str] = ""
    """Where it comes from, as the Train pane says it after the run's name."""

    @property
    def is_active(self) -> bool:
        """Its worker is still training or following it."""
        return self.worker is not None and self.worker.state in (WorkerState.PENDING, WorkerState.RUNNING)


@dataclass(eq=False)
class LiveRun(RunSource):
    control: RunControl = field(default_factory=RunControl)
    label: ClassVar[str] = "training here"


@dataclass(eq=False)
class FollowedRun(RunSource):
    launched: DetachedRun | None = None
    """The ``workbench run`` process, when this app started it (detached)."""
    label: ClassVar[str] = "attached"


@dataclass(eq=False)
class OpenedRun(RunSource):
    label: ClassVar[str] = "opened"
