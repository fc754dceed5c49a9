"""Runs pane: the run history of the run root, and the doors into a run.

Listing reads every run's ``metrics.jsonl``, so it runs in a thread worker and comes back
as a message. Runs started elsewhere (``workbench run``, detached runs, another machine's
process writing to a shared folder) appear on their own: every ``poll_seconds`` a worker
takes the run root's cheap ``folder_signature`` (one ``scandir`` and two ``stat`` calls per
run) and lists the runs again only when it changed, or, while a run is running, every
``RUNNING_EVERY`` seconds (its steps move on without its status file changing). A new
list is posted up as ``RunsPane.Changed`` (the Inspector pane's run choices follow it).

A sweep's trials are listed under one row for the sweep (its trial count, their states and
best eval loss), folded at first: Enter (or ``z``) on that row unfolds it, and again folds it.
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
from workbench.runs.listing import list_runs, refresh_running

COLUMNS = ("name", "status", "steps", "best eval", "objective", "method", "corpus", "date")
"""Most telling first, so an 80-column terminal shows name, status, steps and loss."""
NAME_WIDTH = 28


SIGNATURE_FILES = ("run.toml", "status.json", "metrics.jsonl", "results.jsonl")
"""A run appears with the first of these, and changes status with ``status.json``; a sweep
records a trial's end in ``results.jsonl``."""

SWEEP_KEY = "sweep:"
"""The row key of a sweep's own row (a run's is its path)."""


def folder_signature(root: Path) -> tuple:
    """What changes when a run folder appears, changes status or disappears: each folder's
    name, its own modification time (a sweep's changes when a trial folder appears) and those
    of its ``SIGNATURE_FILES`` (``None`` where absent). Cheap: no file is read (the metrics of
    a running run change its row, not this)."""
    try:
        with os.scandir(root) as found:
            folders = sorted((entry.name, entry.path, entry.stat().st_mtime_ns) for entry in found if entry.is_dir())
    except OSError:
        return ()
    signature = []
    for name, path, mtime in folders:
        stamps: list[int | None] = [mtime]
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


def sweep_cells(sweep: str, trials: list, folded: bool) -> tuple[str, ...]:
    """A sweep's own row: its name with a fold mark, the count of its trials by state, and the best eval loss among them."""
    states: dict[str, int] = {}
    for row in trials:
        states[row.state] = states.get(row.state, 0) + 1
    losses = [row.best_eval_loss for row in trials if row.best_eval_loss is not None]
    label = ("▸ " if folded else "▾ ") + sweep
    name = label if len(label) <= NAME_WIDTH else label[: NAME_WIDTH - 1] + "…"
    status = ", ".join(f"{count} {state}" for state, count in states.items())
    date = dt.datetime.fromtimestamp(max(row.created for row in trials)).strftime("%m-%d %H:%M")
    objectives = ",".join(dict.fromkeys(row.objective for row in trials))
    return (f"[b]{escape(name)}[/b]", escape(status), f"{len(trials)} trials", fmt_loss(min(losses) if losses else None),
            escape(objectives), "", "", date)


def trial_cells(row: Any) -> tuple[str, ...]:
    """A trial's row under its sweep: its own folder's name, indented."""
    cells = row_cells(row)
    short = "  " + row.name.split("/", 1)[-1]
    return (escape(short if len(short) <= NAME_WIDTH else short[: NAME_WIDTH - 1] + "…"), *cells[1:])


def runs_hint(rows: list) -> str:
    """``3 run(s)``, with how many are damaged (their status says why; every other run is listed)."""
    if not rows:
        return "No runs yet: start one with s (or `workbench run`)."
    damaged = sum(1 for row in rows if row.problems)
    sweeps = len({row.sweep for row in rows if getattr(row, "sweep", None)})
    folding = f" ({sum(1 for row in rows if getattr(row, 'sweep', None))} in {sweeps} sweep(s): Enter or z folds one)" if sweeps else ""
    return f"{len(rows)} run(s){folding}" + (f", {damaged} damaged: what could not be read is skipped" if damaged else "")


def table_entries(rows: list, unfolded: frozenset) -> list[tuple[str, tuple[str, ...]]]:
    """The table's rows as (key, cells): each sweep one row, its trials under it when unfolded.
    Pure, so the listing thread builds them."""
    entries: list[tuple[str, tuple[str, ...]]] = []
    trials_of: dict[str, list] = {}
    for row in rows:
        sweep = getattr(row, "sweep", None)
        if sweep is not None:
            trials_of.setdefault(sweep, []).append(row)
    for row in rows:
        sweep = getattr(row, "sweep", None)
        if sweep is None:
            entries.append((row.path, row_cells(row)))
            continue
        if trials_of[sweep][0] is row:
            entries.append((SWEEP_KEY + sweep, sweep_cells(sweep, trials_of[sweep], sweep not in unfolded)))
        if sweep in unfolded:
            entries.append((row.path, trial_cells(row)))
    return entries


class RunsTable(DataTable):
    """The runs table; Enter (open) is shown in the footer, unlike DataTable's own."""

    BINDINGS = [Binding("enter", "select_cursor", "Open", tooltip="Show the run's curves in the Train pane")]


class RunsPane(Vertical):
    @dataclass
    class Listed(Message):
        rows: list
        signature: tuple
        entries: list
        """The table's (key, cells), built in the listing thread for ``unfolded``."""
        unfolded: frozenset

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
        Binding("z", "fold", "Fold", show=False, tooltip="Fold or unfold the sweep under the cursor (its trials)"),
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
        self.unfolded: set[str] = set()
        """Sweeps whose trials are shown (every other sweep is one folded row)."""
        self._signature: tuple | None = None
        self._listed_at = 0.0
        self._shown_keys: list[str] = []
        self._shown_cells: dict[str, tuple[str, ...]] = {}
        """What the table shows now, by row key (``_fill`` updates only what changed)."""

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
        self.list_runs(self._signature, self.rows if stale else None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs")
    def list_runs(self, known: tuple | None = None, running: list | None = None) -> None:
        """List the runs (in a thread): always, or with ``known`` only if the run root's
        signature is no longer that; if it still is, ``running`` (the rows shown) has its
        running runs read again (their steps and losses move on), and only those."""
        signature = folder_signature(self.run_root)  # before listing: a change while listing shows next time
        if known is not None and signature == known:
            if running is None:
                return
            rows = refresh_running(running)
        else:
            rows = list_runs(str(self.run_root))
        unfolded = frozenset(self.unfolded)
        entries = table_entries(rows, unfolded)  # here, not on the UI thread: 1000 rows of cells
        if not get_current_worker().is_cancelled:
            self.post_message(self.Listed(rows, signature, entries, unfolded))

    def on_runs_pane_listed(self, message: RunsPane.Listed) -> None:
        message.stop()
        self._signature, self._listed_at = message.signature, time.monotonic()
        self.rows = message.rows
        self._fill(message.entries if message.unfolded == self.unfolded else None)  # a fold meanwhile: build again
        self.query_one("#runs-hint", Static).update(runs_hint(self.rows))
        self.post_message(self.Changed([r.path for r in self.rows]))

    def _fill(self, entries: list[tuple[str, tuple[str, ...]]] | None = None) -> None:
        """The table from ``entries`` (else built from ``self.rows``); the cursor stays on its
        row. When the same rows are shown (a poll found steps moved on), only the cells that
        changed are updated: refilling
        a table of a thousand rows every second would hold up the keys pressed meanwhile."""
        table = self.query_one(DataTable)
        entries = table_entries(self.rows, frozenset(self.unfolded)) if entries is None else entries
        keys = [key for key, _ in entries]
        if keys == self._shown_keys and table.row_count == len(keys):
            for key, cells in entries:
                before = self._shown_cells.get(key, ())
                for column, cell, old in zip(COLUMNS, cells, before):
                    if cell != old:
                        table.update_cell(key, column, cell)
            self._shown_cells = dict(entries)
            return
        selected = self._cursor_key()
        table.clear()
        for key, cells in entries:
            table.add_row(*cells, key=key)
        self._shown_keys, self._shown_cells = keys, dict(entries)
        if selected in keys:
            table.move_cursor(row=keys.index(selected), animate=False)

    def _cursor_key(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0 or table.cursor_row is None or not (0 <= table.cursor_row < table.row_count):
            return None
        return str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)

    def action_fold(self) -> None:
        """Fold the sweep under the cursor (or the one of the trial under it), or unfold it."""
        key = self._cursor_key()
        row = next((r for r in self.rows if r.path == key), None)
        sweep = key[len(SWEEP_KEY):] if key and key.startswith(SWEEP_KEY) else getattr(row, "sweep", None)
        if sweep is None:
            return
        self.unfolded ^= {sweep}
        self._fill()
        table = self.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(SWEEP_KEY + sweep), animate=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "runs":
            self.query_one("#runs-hint", Static).update(Text(f"Cannot list runs: {event.worker.error}"))

    def selected_path(self) -> str | None:
        """The run under the cursor; None on a sweep's own row or in an empty table."""
        key = self._cursor_key()
        return None if key is None or key.startswith(SWEEP_KEY) else key

    def _choose(self, action: str) -> None:
        path = self.selected_path()
        if path is None:
            key = self._cursor_key()
            self.notify("A sweep: unfold it (Enter) and choose one of its trials" if key else "No run selected", severity="warning")
            return
        self.post_message(self.Chosen(path, action))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        key = self._cursor_key()
        if key is not None and key.startswith(SWEEP_KEY):
            self.action_fold()
            return
        self._choose("open")

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None:  # the table was refilled (a poll's listing) after the cursor moved: gone
            return
        if event.row_key.value is not None and not str(event.row_key.value).startswith(SWEEP_KEY):
            self.post_message(self.Highlighted(str(event.row_key.value)))
            row = next((r for r in self.rows if r.path == event.row_key.value), None)  # transfer: a kept-steps line
            kept = getattr(row, "kept_steps", None)
            line = f"  kept checkpoints (bases {row.name}@STEP): {', '.join(map(str, kept))}" if row and kept else ""
            self.query_one("#runs-hint", Static).update(runs_hint(self.rows) + line)

    def action_attach(self) -> None:
        self._choose("attach")

    def action_finetune(self) -> None:
        self._choose("finetune")

    def action_overlay(self) -> None:
        self._choose("overlay")
