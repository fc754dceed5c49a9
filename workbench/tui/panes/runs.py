"""Runs pane: the run history of the run root, and the doors into a run.

Listing reads every run's ``metrics.jsonl``, so it runs in a thread worker and comes back
as a message. Runs started elsewhere (``workbench run``, detached runs, another machine's
process writing to a shared folder) appear on their own: every ``poll_seconds`` a worker
takes the run root's cheap ``folder_signature`` (one ``scandir`` and two ``stat`` calls per
run) and lists the runs again only when it changed, or, while a run is running, every
``RUNNING_EVERY`` seconds (its steps move on without its status file changing). A new
list is posted up as ``RunsPane.Changed`` (the Inspector pane's run choices follow it).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.console import fmt_loss

COLUMNS = ("name", "status", "steps", "best eval", "objective", "method", "corpus", "date")
"""Most telling first, so an 80-column terminal shows name, status, steps and loss."""
NAME_WIDTH = 28


SIGNATURE_FILES = ("run.toml", "status.json", "metrics.jsonl")
"""A run appears with the first of these, and changes status with ``status.json``."""


def folder_signature(root: Path) -> tuple:
    """What changes when a run folder appears, changes status or disappears: each folder's
    name and the modification times of its ``SIGNATURE_FILES`` (``None`` where absent).
    Cheap: no file is read (the metrics of a running run change its row, not this)."""
    try:
        with os.scandir(root) as found:
            folders = sorted((entry.name, entry.path) for entry in found if entry.is_dir())
    except OSError:
        return ()
    signature = []
    for name, path in folders:
        stamps: list[int | None] = []
        for file in SIGNATURE_FILES:
            try:
                stamps.append(os.stat(os.path.join(path, file)).st_mtime_ns)
            except OSError:
                stamps.append(None)
        signature.append((name, *stamps))
    return tuple(signature)


def corpus_short(corpus: str) -> str:
    return corpus if corpus.startswith("hf:") else (Path(corpus).name or corpus)


def row_cells(row: Any) -> tuple[str, ...]:
    """One run's cells. DataTable reads a string cell as markup, so every text from the run
    is escaped: a name or corpus with [brackets] in it must not break the table."""
    steps = f"{row.steps}/{row.total_steps}" if row.total_steps else str(row.steps)
    name = row.name if len(row.name) <= NAME_WIDTH else row.name[: NAME_WIDTH - 1] + "…"
    status = f"[red]{escape(row.status)}[/red]" if row.problems else escape(row.status)
    date = dt.datetime.fromtimestamp(row.created).strftime("%m-%d %H:%M")
    return (escape(name), status, steps, fmt_loss(row.best_eval_loss), escape(row.objective),
            escape(getattr(row, "method", "full")), escape(corpus_short(row.corpus)), date)


def runs_hint(rows: list) -> str:
    """``3 run(s)``, with how many are damaged (their status says why; every other run is listed)."""
    if not rows:
        return "No runs yet: start one with s (or `workbench run`)."
    damaged = sum(1 for row in rows if row.problems)
    return f"{len(rows)} run(s)" + (f", {damaged} damaged: what could not be read is skipped" if damaged else "")


class RunsTable(DataTable):
    """The runs table; Enter (open) is shown in the footer, unlike DataTable's own."""

    BINDINGS = [Binding("enter", "select_cursor", "Open", tooltip="Show the run's curves in the Train pane")]


class RunsPane(Vertical):
    @dataclass
    class Listed(Message):
        rows: list
        signature: tuple

    @dataclass
    class Changed(Message):
        """The runs under the run root changed (one appeared, changed status or went): their
        paths, newest first. The app hands them to the Inspector pane."""

        paths: list[str]

    @dataclass
    class Highlighted(Message):
        """The cursor is on this run (the Inspector pane preselects it)."""

        path: str

    @dataclass
    class Chosen(Message):
        """The user asked for something on a run."""

        path: str
        action: str  # "open", "attach", "finetune", "overlay"

    BINDINGS = [
        Binding("a", "attach", "Attach", tooltip="Follow a run that another process is writing"),
        Binding("f", "finetune", "Fine-tune", tooltip="Start a fine-tune with this run as its base"),
        Binding("v", "overlay", "Overlay", tooltip="Overlay this run's curves on the chart"),
        Binding("r", "refresh", "Refresh", show=False, tooltip="Re-read the run root now (new and changed runs also show up by themselves)"),
    ]
    HELP_BINDINGS = RunsTable.BINDINGS + BINDINGS
    """The keys the help screen lists for this pane (Enter is the table's)."""

    RUNNING_EVERY = 3.0
    """Seconds between two listings while a run is running (its steps and loss move on)."""

    def __init__(self, run_root: Path, *, poll_seconds: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run_root = run_root
        self.poll_seconds = poll_seconds
        """Seconds between two looks at the run root (0: only on demand, as tests do)."""
        self.rows: list = []
        self._signature: tuple | None = None
        self._listed_at = 0.0

    def compose(self) -> ComposeResult:
        table = RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="runs-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column, width=NAME_WIDTH if column == "name" else None)
        self.action_refresh()
        if self.poll_seconds:
            self.set_interval(self.poll_seconds, self._poll)

    def action_refresh(self) -> None:
        self.list_runs()

    def _poll(self) -> None:
        """Look at the run root again, unless a look is still under way."""
        if any(w.group == "runs" and not w.is_finished for w in self.app.workers if w.node is self):
            return
        running = any(row.state == "running" for row in self.rows)
        stale = running and time.monotonic() - self._listed_at >= self.RUNNING_EVERY
        self.list_runs(None if stale else self._signature)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs")
    def list_runs(self, known: tuple | None = None) -> None:
        """List the runs (in a thread): always, or with ``known`` only if the run root's
        signature is no longer that."""
        from workbench.runs.rundir import list_runs

        signature = folder_signature(self.run_root)  # before listing: a change while listing shows next time
        if known is not None and signature == known:
            return
        rows = list_runs(str(self.run_root))
        if not get_current_worker().is_cancelled:
            self.post_message(self.Listed(rows, signature))

    def on_runs_pane_listed(self, message: RunsPane.Listed) -> None:
        message.stop()
        self._signature, self._listed_at = message.signature, time.monotonic()
        table = self.query_one(DataTable)
        selected = self.selected_path()
        self.rows = message.rows
        table.clear()
        for row in self.rows:
            table.add_row(*row_cells(row), key=row.path)
        if selected is not None:
            paths = [r.path for r in self.rows]
            if selected in paths:
                table.move_cursor(row=paths.index(selected), animate=False)
        self.query_one("#runs-hint", Static).update(runs_hint(self.rows))
        self.post_message(self.Changed([r.path for r in self.rows]))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "runs":
            self.query_one("#runs-hint", Static).update(Text(f"Cannot list runs: {event.worker.error}"))

    def selected_path(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or not (0 <= table.cursor_row < len(self.rows)):
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key
        return str(key.value)

    def _choose(self, action: str) -> None:
        path = self.selected_path()
        if path is None:
            self.notify("No run selected", severity="warning")
            return
        self.post_message(self.Chosen(path, action))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self._choose("open")

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.post_message(self.Highlighted(str(event.row_key.value)))

    def action_attach(self) -> None:
        self._choose("attach")

    def action_finetune(self) -> None:
        self._choose("finetune")

    def action_overlay(self) -> None:
        self._choose("overlay")
