"""Compare pane: runs or a sweep side by side, and the scaling plot with its power-law fit.

On the left, the sweeps and runs under the run root (Enter opens a sweep, or adds a run to
the compared runs, or takes it out again). On the right, the difference table (the fields
that differ, the losses, the metric, parameters, tokens, FLOPs, time; sorted by the metric),
and one plot: the compared runs' curves overlaid, one colour per run with its label below,
or (``g``) the final eval loss against parameters, FLOPs, tokens or a swept field (``a``),
log-log where every value is positive, with ``L = a * X^-b + c`` fitted once there are three
sizes and its exponent written under it.

Everything is read by ``workbench.experiments.compare`` in a thread worker and comes back as
one ``ComparePane.Loaded`` message. Every ``poll_seconds`` the worker compares cheap folder
signatures (a ``scandir`` and a few ``stat`` calls: ``runs.folder_signature``) with the last
ones and reads again only what changed, so a sweep running in another process (or started
here) fills the table and the plots as its trials log and finish.
"""

from __future__ import annotations

import math
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
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.config import RunSpec
from workbench.errors import WorkbenchError
from workbench.experiments.compare import collect, fit_line, is_sweep, list_targets, scaling_view, table_cells, value_header, x_choices
from workbench.experiments.launch import parse_grid
from workbench.experiments.launch import start_sweep as start_sweep_process
from workbench.experiments.transfer import TABLE_COLUMNS, detect, read_transfer_study
from workbench.experiments.transfer import table_cells as transfer_cells
from workbench.runs.logcache import EVENTS
from workbench.runs.rundir import RunDir
from workbench.tui.curves import Curves, CurveSnapshot, short_label
from workbench.tui.panes.runs import folder_signature
from workbench.tui.widgets.compare_charts import FIT_COLOR, FRONTIER_COLOR, MIN_CURVE_POINTS, CurvesChart, ScalingChart, rich_color
from workbench.tui.widgets.loss_chart import MAX_POINTS, thin
from workbench.tui.widgets.transfer_chart import TransferChart, legend_parts

CHOOSE = "Enter: open a sweep, or add a run; S: start a sweep."
LAUNCH_WATCH_SECONDS = 15.0
"""How long a sweep started here is watched for an early failure (a bad grid), said in a notification."""
TARGET_FILES = ("sweep.toml", "results.jsonl", "run.toml", "status.json", "metrics.jsonl")
LIST_WIDTH = 18
"""Characters of a name in the list of sweeps and runs (the list is 24 wide: a mark and a margin)."""
LABEL_WIDTH = 12
"""A run's label under the curves plot: short, and still told apart from the others."""


def target_signature(target: tuple[str, tuple[str, ...]]) -> tuple:
    """What changes when the compared sweep or runs change: the sweep folder's trial folders
    and its own files, or each run's files (modification times only)."""
    kind, paths = target
    stamps: list[Any] = []
    for path in paths:
        if kind == "sweep":
            stamps.append(folder_signature(Path(path)))
        for name in TARGET_FILES:
            try:
                stamps.append(os.stat(os.path.join(path, name)).st_mtime_ns)
            except OSError:
                stamps.append(None)
    return (kind, paths, tuple(stamps))


class SourcesList(OptionList):
    """The sweeps and runs to choose from; Enter is shown in the footer."""

    BINDINGS = [Binding("enter", "select", "Compare", tooltip="Open the highlighted sweep, or add (or remove) the highlighted run")]


class ComparePane(Horizontal):
    @dataclass
    class Loaded(Message):
        """What the worker read: the run root's targets (None: unchanged), and the comparison
        of ``target`` with its runs' curves (``comparison`` None: unchanged or nothing chosen)."""

        root_signature: tuple
        targets: list | None
        target: tuple
        target_signature: tuple
        comparison: Any
        curves: list
        waiting: bool = False
        """The target is a sweep started here whose folder is not written yet."""
        transfer: Any = None
        """A transfer study's view (``experiments/transfer.py``), when the sweep is one."""

    @dataclass
    class SweepRequested(Message):
        """Start a sweep over ``axes`` (field -> "v1,v2") of the Objective pane's spec: the app
        builds the spec and hands it back through ``start_sweep``."""

        axes: dict

    @dataclass
    class SweepLaunched(Message):
        sweep: Any

    BINDINGS = [
        Binding("g", "toggle_plot", "Curves/scaling", tooltip="Show the runs' curves, or the final eval loss against size with the power-law fit"),
        Binding("a", "next_axis", "Size axis", tooltip="Scaling plot against parameters, FLOPs, tokens or a swept field"),
        Binding("S", "ask_grid", "Sweep", tooltip="Start a sweep of the Objective pane's spec over a grid you type "
                "(e.g. lr=1e-3,3e-3 d_model=32,64): a `workbench sweep` process of its own, shown here as it runs"),
        Binding("c", "clear", "Clear", show=False, tooltip="Compare nothing: forget the chosen sweep or runs"),
        Binding("r", "refresh", "Refresh", show=False, tooltip="Read the sweeps and runs again now (they also update by themselves)"),
    ]
    HELP_BINDINGS = SourcesList.BINDINGS + BINDINGS
    """The keys the help screen lists for this pane (Enter is the list's)."""

    def __init__(self, run_root: Path, *, poll_seconds: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_root = run_root
        self.poll_seconds = poll_seconds
        self.targets: list[tuple[str, Path]] = []
        self.sweep: str | None = None
        self.runs: list[str] = []
        """The runs chosen for comparison, in the order chosen (when no sweep is open)."""
        self.comparison: Any = None
        self.transfer: Any = None
        """The open sweep's transfer view when it is a transfer study (then it is what the pane shows)."""
        self.curves: list[CurveSnapshot] = []
        self.plot = "curves"
        self.x: str | None = None
        self._root_signature: tuple = ()
        self._target_signature: tuple = ()

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-left"):
            yield Static("Sweeps and runs", id="compare-sources-title")
            yield SourcesList(id="compare-sources")
        with Vertical(id="compare-right"):
            yield Static(CHOOSE, id="compare-title")
            yield Input(placeholder="grid, e.g. lr=1e-3,3e-3 d_model=32,64", id="compare-grid",
                        select_on_focus=False)
            yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
            yield CurvesChart(id="compare-curves")
            yield ScalingChart(id="compare-scaling")
            yield TransferChart(id="compare-transfer")
            yield Static("", id="compare-legend")

    def on_mount(self) -> None:
        self.query_one("#compare-grid", Input).display = False
        self._show_plot()
        self.action_refresh()
        if self.poll_seconds:
            self.set_interval(self.poll_seconds, self._poll)

    def focus_first(self) -> None:
        self.query_one(SourcesList).focus()

    def focus_home(self) -> None:
        """Escape: leave (and hide) the grid field, back to the list."""
        self.query_one("#compare-grid", Input).display = False
        self.focus_first()

    # ------------------------------------------------------------------ reading (thread)
    def _target(self) -> tuple[str, tuple[str, ...]]:
        if self.sweep is not None:
            return ("sweep", (self.sweep,))
        return ("runs", tuple(self.runs))

    def action_refresh(self) -> None:
        self.load(self._target(), (), (), ())

    def _poll(self) -> None:
        if any(w.group == "compare" and not w.is_finished for w in self.app.workers if w.node is self):
            return
        self.load(self._target(), self._root_signature, self._target_signature, tuple(self.targets))

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare")
    def load(self, target: tuple[str, tuple[str, ...]], known_root: tuple, known_target: tuple, known_targets: tuple) -> None:
        """Read what changed since the signatures ``known_root`` and ``known_target`` (empty:
        everything). The list of sweeps and runs comes back only when it differs from
        ``known_targets``: a run writing its metrics changes the root's signature, not the list."""
        root_signature = folder_signature(self.run_root)
        targets = list_targets(self.run_root) if root_signature != known_root or not known_root else None
        if targets is not None and known_root and tuple(targets) == known_targets:
            targets = None
        signature = target_signature(target)
        if targets is None and signature == known_target:
            return
        comparison, curves, transfer = None, [], None
        waiting = target[0] == "sweep" and not is_sweep(Path(target[1][0]))  # started here, not written yet
        if target[1] and not waiting and (signature != known_target or not known_target):
            comparison = collect(list(target[1]), str(self.run_root))
            transfer = transfer_view(target)  # transfer: a study's own view
            shown = [row for row in comparison.rows if row.path is not None]
            for row in shown:
                snap = Curves.from_events(EVENTS.read_events(RunDir(Path(row.path))).records, name=row.name).snapshot()
                snap.name = row.name
                curves.append(thin_train_curve(snap, max(MIN_CURVE_POINTS, MAX_POINTS // max(1, len(shown)))))
        if not get_current_worker().is_cancelled:
            self.post_message(self.Loaded(root_signature, targets, target, signature, comparison, curves, waiting, transfer))

    # ------------------------------------------------------------------ showing (UI thread)
    def on_compare_pane_loaded(self, message: ComparePane.Loaded) -> None:
        message.stop()
        self._root_signature = message.root_signature
        if message.targets is not None:
            self._set_targets(message.targets)
        if message.target != self._target():
            return  # chosen something else meanwhile: its own load follows
        self._target_signature = message.target_signature
        if message.comparison is not None:
            self.comparison, self.curves, self.transfer = message.comparison, message.curves, message.transfer
            self._show()
        elif not message.target[1] or message.waiting:
            self.comparison, self.curves, self.transfer = None, [], None
            self._show()

    def _set_targets(self, targets: list[tuple[str, Path]]) -> None:
        self.targets = targets
        sources = self.query_one(SourcesList)
        highlighted = sources.highlighted
        sources.clear_options()
        sources.add_options([Option(self._prompt(kind, path), id=str(path)) for kind, path in targets])
        if targets:
            sources.highlighted = min(highlighted or 0, len(targets) - 1)

    def _prompt(self, kind: str, path: Path) -> Text:
        """One line per sweep (bold, "sweep" after it where it fits) or run; a long name ends in an ellipsis."""
        name = path.name if len(path.name) <= LIST_WIDTH else path.name[: LIST_WIDTH - 1] + "…"
        if kind == "sweep":
            mark = "▶ " if str(path) == self.sweep else "  "
            suffix = " sweep" if len(name) + 6 <= LIST_WIDTH else ""
            return Text.assemble(mark, (name, "bold"), (suffix, "dim"))
        return Text.assemble("✓ " if str(path) in self.runs else "  ", name)

    def _refresh_prompts(self) -> None:
        self._set_targets(self.targets)

    def _show(self) -> None:
        """Redraw everything from ``comparison``, ``curves`` and ``transfer``; a hidden plot
        only keeps its data, and draws when ``_show_plot`` shows it."""
        self._show_title()
        self._show_table()
        self.query_one(CurvesChart).show(self.curves)
        self._show_scaling()
        self.query_one(TransferChart).show(self.transfer)
        self._show_plot()

    def _show_title(self) -> None:
        title = self.query_one("#compare-title", Static)
        comparison = self.comparison
        if comparison is None:
            waiting = f"Waiting for the sweep {escape(Path(self.sweep).name)} to start…" if self.sweep else ""
            title.update(waiting or CHOOSE)
            return
        states: dict[str, int] = {}
        for row in comparison.rows:
            states[row.state] = states.get(row.state, 0) + 1
        counts = ", ".join(f"{count} {state}" for state, count in states.items())
        kind = "transfer study" if self.transfer is not None else "sweep"
        head = f"[b]{escape(comparison.title)}[/b] {kind}" if comparison.kind == "sweep" else f"{len(comparison.rows)} runs"
        groups = comparison.groups()
        within = f", within each of {len(groups)} objectives (never ranked across)" if len(groups) > 1 else ""
        order = f"by {escape(comparison.metric)}, completed first{within}"
        if self.transfer is not None:  # transfer: rows are bases, figures are means over seeds
            order = f"{escape(self.transfer.metric or 'eval loss')} by base, mean±std over finished seeds"
        title.update(f"{head}: {counts or 'no trials yet'}; {order}")

    def _show_table(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        if self.comparison is None:
            return
        if self.transfer is not None:  # transfer: one row per base
            show_transfer_table(table, self.transfer)
            return
        columns, cells = table_cells(self.comparison)
        for column in columns:
            table.add_column(value_header(self.comparison) if column == "value" else column, key=column)
        for row, cell in zip(self.comparison.rows, cells):
            style = "" if row.is_final else "dim"  # not completed: its value is not final
            table.add_row(*(Text(cell[column], style=style, justify="left" if column in ("name", "state", "objective") else "right")
                            for column in columns))

    def _show_scaling(self) -> None:
        chart = self.query_one(ScalingChart)
        if self.comparison is None:
            chart.show(None)
            return
        if self.x is not None and self.x not in x_choices(self.comparison):
            self.x = None
        chart.show(scaling_view(self.comparison, self.x))

    def _legend(self) -> Text:
        if self.comparison is None:
            return Text("")
        if self.transfer is not None:
            return Text.assemble(*legend_parts(self.transfer))
        if self.plot == "curves":
            names = [snap.name for snap in self.curves]
            parts: list[Any] = ["curves: line train, x eval   "]
            for index, name in enumerate(names):
                parts += [("━ " + short_label(name, names, LABEL_WIDTH), rich_color(index)), "  "]
            return Text.assemble(*parts)
        view = self.query_one(ScalingChart).view
        if view is None:
            return Text("")
        return Text.assemble(("• ", "grey62"), "trials ", ("▄ ", FRONTIER_COLOR), "best  ", ("━ ", FIT_COLOR),
                             fit_line(view))

    def _show_plot(self) -> None:
        transfer = self.transfer is not None
        shown = {CurvesChart: self.plot == "curves" and not transfer, ScalingChart: self.plot == "scaling" and not transfer,
                 TransferChart: transfer}
        for kind, visible in shown.items():
            chart = self.query_one(kind)
            chart.display = visible
            if visible:
                chart.draw_if_stale()
        self.query_one("#compare-legend", Static).update(self._legend())

    # ------------------------------------------------------------------ choosing
    @on(OptionList.OptionSelected, "#compare-sources")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        path = str(event.option.id)
        kind = next((kind for kind, target in self.targets if str(target) == path), "run")
        if kind == "sweep":
            self.sweep = None if self.sweep == path else path
            self.plot = "scaling" if self.sweep else self.plot
        else:
            self.sweep = None
            self.runs = [run for run in self.runs if run != path] if path in self.runs else [*self.runs, path]
            self.plot = "curves"
        self._refresh_prompts()
        self.action_refresh()

    def open_sweep(self, path: str | Path) -> None:
        """Compare this sweep (the app calls it after starting one)."""
        self.sweep, self.plot = str(Path(path).resolve()), "scaling"
        self.action_refresh()

    def action_toggle_plot(self) -> None:
        self.plot = "scaling" if self.plot == "curves" else "curves"
        self._show_plot()

    def action_next_axis(self) -> None:
        if self.comparison is None:
            return
        choices = x_choices(self.comparison)
        current = self.x or scaling_view(self.comparison).x
        self.x = choices[(choices.index(current) + 1) % len(choices)] if current in choices else choices[0]
        self.plot = "scaling"
        self._show_scaling()
        self._show_plot()

    def action_clear(self) -> None:
        self.sweep, self.runs, self.x = None, [], None
        self._refresh_prompts()
        self.action_refresh()

    # ------------------------------------------------------------------ starting a sweep
    def action_ask_grid(self) -> None:
        grid = self.query_one("#compare-grid", Input)
        grid.display = True
        grid.focus()

    @on(Input.Submitted, "#compare-grid")
    def _grid_submitted(self, event: Input.Submitted) -> None:
        try:
            axes = parse_grid(event.value)
        except WorkbenchError as error:
            self.notify(str(error), severity="error", timeout=6, markup=False)
            return
        self.focus_home()
        self.post_message(self.SweepRequested(axes))

    def start_sweep(self, spec: RunSpec, axes: dict[str, str]) -> None:
        """Start ``workbench sweep`` of ``spec`` over ``axes`` and show it here."""
        self.launch_sweep(spec.to_dict(), axes)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep")
    def launch_sweep(self, spec: dict[str, Any], axes: dict[str, str]) -> None:
        sweep = start_sweep_process(spec, axes, self.run_root)
        self.post_message(self.SweepLaunched(sweep))
        deadline = time.monotonic() + LAUNCH_WATCH_SECONDS  # a bad grid or spec fails within seconds: say why
        while time.monotonic() < deadline and not get_current_worker().is_cancelled:
            code = sweep.process.poll()
            if code is not None:
                if code != 0:
                    raise WorkbenchError(f"the sweep {sweep.name} stopped (exit {code}): {sweep.last_log_line()}")
                return
            time.sleep(0.2)

    def on_compare_pane_sweep_launched(self, message: ComparePane.SweepLaunched) -> None:
        sweep = message.sweep
        self.notify(f"Started sweep {sweep.name} (pid {sweep.process.pid}); log {sweep.log_path.name}", timeout=4, markup=False)
        self.open_sweep(sweep.folder)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "compare":
            self.query_one("#compare-title", Static).update(Text(f"Cannot compare: {event.worker.error}"))
        elif event.state == WorkerState.ERROR and event.worker.group == "sweep":
            self.notify(str(event.worker.error), severity="error", timeout=8, markup=False)


def thin_train_curve(snap: CurveSnapshot, limit: int) -> CurveSnapshot:
    """``snap`` with its finite train points thinned to ``limit`` (thread: a 10k-step run's
    curve would otherwise be filtered and thinned on the UI thread at every redraw)."""
    tokens = dict(zip(snap.train_steps, snap.train_tokens))
    train = thin([(x, y) for x, y in zip(snap.train_steps, snap.train_loss) if math.isfinite(y)], limit)
    snap.train_steps, snap.train_loss = [p[0] for p in train], [p[1] for p in train]
    snap.train_tokens = [tokens.get(step, 0) for step in snap.train_steps]
    return snap


def transfer_view(target: tuple[str, tuple[str, ...]]) -> Any:
    """The transfer view of a sweep target that is a transfer study, else None (thread)."""
    if target[0] != "sweep" or not detect(Path(target[1][0])):
        return None
    return read_transfer_study(Path(target[1][0]))


def show_transfer_table(table: DataTable, view: Any) -> None:
    """The transfer table (``commands/transfer.py``'s cells): base, step, tokens, FLOPs, metric, loss, forgetting, seeds."""
    for column in TABLE_COLUMNS:
        table.add_column(view.metric or "metric" if column == "metric" else column, key=column)
    for cells in transfer_cells(view):
        table.add_row(*(Text(cell, justify="left" if index == 0 else "right") for index, cell in enumerate(cells)))
