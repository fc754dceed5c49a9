"""Messages that carry engine news from worker threads to the UI ("messages up").

Workers only ever ``post_message`` these (thread-safe, and harmless while the app shuts
down); handlers in the UI thread update widgets. ``CurvesChanged`` is replaceable, as
toolong's progress messages are: a burst of metric points collapses into the latest one,
because the points themselves live in a ``Curves`` object and the message only says
"redraw from it".
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.worker import Worker

from workbench.runs.events import Event
from workbench.runs.launch import DetachedRun


@dataclass
class CurvesChanged(Message):
    """New points for the curves of ``source`` ("live" or "follow"), already in its ``Curves``."""

    source: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CurvesChanged) and message.source == self.source


@dataclass
class EngineEvent(Message):
    """Any non-metric event (started, checkpoint, finished, failed, message)."""

    source: str
    event: Event


@dataclass
class CorpusLoaded(Message):
    """Stats and preview of the highlighted corpus, computed in a thread worker."""

    name: str
    stats: object
    preview: list[str]


@dataclass
class CorpusChosen(Message):
    """The user picked a corpus for the next run."""

    name: str


@dataclass
class RunChosen(Message):
    """The user asked for something on a run in the Runs pane."""

    path: str
    action: str  # "open", "attach", "finetune", "overlay"


@dataclass
class RunsChanged(Message):
    """The runs under the run root changed (one appeared, changed status or went): their paths,
    newest first. The Runs pane posts it; the app hands the paths to the Inspector pane."""

    paths: list[str]


@dataclass
class RunHighlighted(Message):
    """The Runs pane's cursor is on this run (the Inspector pane preselects it)."""

    path: str


@dataclass
class OverlayRequested(Message):
    """The user asked to overlay a previous run's curves on the chart (the app picks one)."""


@dataclass
class RunLaunched(Message):
    """A detached run's process has started (posted by the worker that follows it)."""

    run: DetachedRun
    worker: Worker
