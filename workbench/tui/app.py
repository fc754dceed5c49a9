"""The workbench App: panes in tabs, training in a thread worker, engine news as messages.

``create_app(run_root, engine_factory=None)`` is the factory both ``run_app()`` (the CLI)
and the tests use; tests inject a fake engine through ``engine_factory``. The app holds the
run state and routes messages: it builds its tabs and pane keys from ``PANES``
(``workbench/tui/panes/__init__.py``); the help screen and the command palette list its and
the panes' ``BINDINGS`` (``workbench/tui/keys.py``); it hands each pane what it needs through its
constructor and methods, and reacts to the messages panes post ("attributes down, messages
up"). Starting, following and stopping runs in other processes is ``workbench.runs.launch``,
called from thread workers.

Run state: one object per place a run's curves come from (``workbench.tui.sources``): the
run training here (``live``), the one followed in another process (``followed``), the one
opened from its files (``opened``); ``shown`` is the one the Train pane shows.

Textual messages are declared one way throughout the TUI: as dataclasses nested in the class
that posts them (``RunsPane.Chosen``, handled by ``on_runs_pane_chosen``); the app's own
worker threads post ``WorkbenchApp.CurvesChanged``, ``RunEvent`` and ``RunLaunched``. The
run's own ``message`` event (``workbench.runs.events.Message``) is imported as ``RunNote``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Header, Input, Select, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.config import RunSpec
from workbench.errors import WorkbenchError
from workbench.experiments.launch import prepare_detached
from workbench.quiet import quiet_libraries
from workbench.runs.control import RunControl
from workbench.runs.events import EvalDone, Event, Listener, Preparing, RunFailed, RunFinished, RunStarted, StepLogged
from workbench.runs.events import Message as RunNote  # the run's "message" event, not a Textual message
from workbench.runs.launch import DetachedRun, follow_detached, follow_run, start_detached, stop_run
from workbench.runs.rundir import RunDir
from workbench.runs.signals import install_stop_signals
from workbench.tui.commands import WorkbenchCommands
from workbench.tui.curves import SAVING, Curves, short_label
from workbench.tui.heavy import (
    collect_young_less_often,
    freeze_long_lived,
    import_heavy_libraries,
    leave_a_core_for_the_ui,
    libraries_ready,
)
from workbench.tui.keys import ANYWHERE, HELP_ONLY, KeyEntry, key_entries, pane_keys
from workbench.tui.panes import PANES, PaneContext, pane_css_paths
from workbench.tui.panes.compare import ComparePane
from workbench.tui.panes.corpus import CorpusPane, corpus_names
from workbench.tui.panes.inspector import InspectorPane
from workbench.tui.panes.objective import ObjectivePane
from workbench.tui.panes.runs import RunsPane
from workbench.tui.panes.train import TrainPane
from workbench.tui.screens.error import ErrorScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.pick_run import PickRunScreen
from workbench.tui.sources import FollowedRun, LiveRun, OpenedRun, RunSource
from workbench.tui.widgets.footer import WorkbenchFooter

EngineFactory = Callable[[RunSpec, list[Listener], RunControl], Any]
"""(spec, listeners, control) -> an object whose blocking ``run()`` trains and emits events."""


def default_engine(spec: RunSpec, listeners: list[Listener], control: RunControl) -> Any:
    from workbench.engine.runner import TrainingRun  # loads torch: only when used

    return TrainingRun(spec, listeners=listeners, control=control)


FREEZE_CHECK_SECONDS = 2.0
"""How often the app looks whether libraries were imported since it last froze the objects
they left behind (``heavy.freeze_long_lived``: keeps the garbage collector's pauses short)."""

PANE_KEYS = [
    Binding(str(number), f"show_tab('{entry.id}')", entry.title, show=False, tooltip=f"Go to {entry.name}: {entry.about}")
    for number, entry in enumerate(PANES, 1)
]
"""``1``..``N``: show a pane (generated from ``PANES``)."""


class WorkbenchApp(App[None]):
    """Worker threads only ever ``post_message`` the messages below (thread-safe, and harmless
    while the app shuts down); their handlers, in the UI thread, update the widgets."""

    @dataclass
    class CurvesChanged(Message):
        """New points for ``source``'s curves, already in its ``Curves``. Replaceable, as
        toolong's progress messages are: a burst of metric points collapses into the latest
        one, because the points themselves live in the ``Curves`` object and the message only
        says "redraw from it"."""

        source: RunSource

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, type(self)) and message.source is self.source

    @dataclass
    class RunEvent(Message):
        """Any other event of ``source``'s run (started, checkpoint, finished, failed, a note)."""

        source: RunSource
        event: Event

    @dataclass
    class RunLaunched(Message):
        """A detached run's process has started (posted by the worker that follows it)."""

        source: FollowedRun
        run: DetachedRun

    CSS_PATH = ["app.tcss", *pane_css_paths()]
    TITLE = "lm-workbench"
    COMMANDS = App.COMMANDS | {WorkbenchCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", tooltip="List every key"),
        Binding("s", "start", "Start", tooltip="Train the Objective pane's spec here (thread worker)"),
        Binding("D", "detach", "Detach", tooltip="Start the spec as a separate `workbench run` process and attach"),
        Binding("x", "stop", "Stop", tooltip="Stop training after this step, saving a checkpoint"),
        Binding("p", "pause", "Pause", tooltip="Pause or resume training"),
        Binding("q", "quit", "Quit", tooltip="Quit (a training run is stopped with a checkpoint first)"),
        Binding("escape", "leave_input", "Done", tooltip="Leave the text field or menu you are in (then the pane's keys work)"),
        *PANE_KEYS,
    ]
    """The keys of the whole app; with the panes' ``BINDINGS`` they are the one key table
    (``workbench.tui.keys``) that the footer, the help screen and the command palette show."""

    def __init__(self, run_root: str | Path = "checkpoints", engine_factory: EngineFactory | None = None,
                 *, corpora: list[str] | None = None, runs_poll_seconds: float = 1.0,
                 quit_ends_process: bool = False) -> None:
        super().__init__()
        self.quit_ends_process = quit_ends_process
        """The CLI's app: a quit with nothing to save ends the process at once (``end_process``)."""
        self.run_root = Path(run_root)
        self.engine_factory = engine_factory or default_engine
        self.corpora = corpora if corpora is not None else corpus_names(self.run_root)
        self.runs_poll_seconds = runs_poll_seconds
        self.live = LiveRun()
        """The run training here (or that last did)."""
        self.followed = FollowedRun()
        """The run attached to (or started detached here), or that last was."""
        self.opened = OpenedRun()
        """The run last opened from the Runs pane."""
        self.shown: RunSource = self.live
        """The one of them the Train pane shows."""
        self.detached: list[DetachedRun] = []
        """Every run this app started detached."""
        self._signals: Any = None
        self._curves_pending: set[RunSource] = set()
        self.quitting = False
        self._last_redraw = 0.0
        self._redraw_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        context = PaneContext(self.run_root, self.corpora, self.runs_poll_seconds)
        with TabbedContent(initial=PANES[0].id, id="tabs"):
            for number, entry in enumerate(PANES, 1):
                with TabPane(f"{number} {entry.title}", id=entry.id):
                    yield entry.factory(context, entry.pane_id)
        yield WorkbenchFooter(compact=True)

    def on_mount(self) -> None:
        self._focus_pane(PANES[0].id)
        collect_young_less_often()  # short-lived objects of each frame die before a collection looks
        # workers import libraries as they need them: freeze what they leave (cheap when nothing new)
        self.set_interval(FREEZE_CHECK_SECONDS, freeze_long_lived)

    # ------------------------------------------------------------------ state
    @property
    def is_training(self) -> bool:
        return self.live.is_active

    @property
    def is_following(self) -> bool:
        return any(w.group == "follow" and w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in self.workers)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.is_training or (self.shown is self.followed and self.is_following)
        if action == "pause":
            return self.is_training
        if action in ("start", "detach"):
            return not self.is_training
        if action == "leave_input":
            return isinstance(self.focused, (Input, Select))  # hidden (and inert) anywhere else
        return True

    @property
    def train_pane(self) -> TrainPane:
        return self.query_one(TrainPane)

    @property
    def objective_pane(self) -> ObjectivePane:
        return self.query_one(ObjectivePane)

    @property
    def runs_pane(self) -> RunsPane:
        return self.query_one(RunsPane)

    # ------------------------------------------------------------------ navigation
    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_pane(tab)

    def _focus_pane(self, tab: str) -> None:
        """The pane's ``focus_first()`` if it has one, else its first focusable widget (or itself)."""
        pane = self.query_one(f"#{tab}-pane")
        focus_first = getattr(pane, "focus_first", None)
        if focus_first is not None:
            focus_first()
            return
        focusable = [w for w in pane.query("*") if w.focusable]
        self.set_focus(focusable[0] if focusable else pane if pane.focusable else None)

    def action_leave_input(self) -> None:
        """Escape in a text field or a menu: the focus goes to the pane's ``focus_home()`` (its
        list, results or the pane itself), so the pane's keys and 1-5 work again."""
        pane = self.query_one(f"#{self.query_one(TabbedContent).active}-pane")
        focus_home = getattr(pane, "focus_home", None)
        if focus_home is not None:
            focus_home()
        else:
            self.set_focus(None)

    def key_table(self) -> list[KeyEntry]:
        """Every key, once: the app's, Textual's own, then each pane's (``workbench.tui.keys``)."""
        sections: list[tuple[str, Any, list]] = [(ANYWHERE, self, [*self.BINDINGS, *HELP_ONLY])]
        for entry in PANES:
            pane = self.query_one(f"#{entry.pane_id}")
            sections.append((entry.id, pane, pane_keys(pane)))
        return key_entries(sections)

    def action_help(self) -> None:
        headings = {ANYWHERE: "Anywhere"} | {entry.id: f"{number} {entry.tooltip}" for number, entry in enumerate(PANES, 1)}
        self.push_screen(HelpScreen(self.key_table(), headings, key_display=self.get_key_display))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's palette entries, less those the key table has already (quit, the keys)."""
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit", "Keys"):
                yield command

    # ------------------------------------------------------------------ corpus & runs
    def on_corpus_pane_chosen(self, message: CorpusPane.Chosen) -> None:
        self.objective_pane.set_corpus(message.name)
        self.notify(f"Corpus for the next run: {message.name}", timeout=2)
        self.action_show_tab("objective")

    def on_runs_pane_changed(self, message: RunsPane.Changed) -> None:
        for pane in self.query(InspectorPane):  # none while the app closes (a run just ended)
            pane.set_runs(message.paths)

    def on_runs_pane_highlighted(self, message: RunsPane.Highlighted) -> None:
        for pane in self.query(InspectorPane):
            pane.suggested_run = message.path

    def on_runs_pane_chosen(self, message: RunsPane.Chosen) -> None:
        if message.action == "finetune":
            self.objective_pane.set_base(message.path, finetune=True)  # it chooses the objective and says so
            self.action_show_tab("objective")
        elif message.action == "attach":
            self.attach(message.path)
        elif message.action == "overlay":
            self.set_overlay(message.path)
        elif message.action == "open":
            self.open_run(message.path)

    def open_run(self, path: str) -> None:
        """Show a run's curves in the Train pane (overlaid, while a run trains here)."""
        if self.is_training:
            self.set_overlay(path)
            self.notify("Training is running here: the run is overlaid on the live chart", timeout=3)
            return
        self.workers.cancel_group(self, "follow")
        curves, skipped = self._read_curves(path)
        self.opened = self.shown = OpenedRun(curves, Path(path), note=skipped)
        self._redraw()
        self.action_show_tab("train")

    def set_overlay(self, path: str) -> None:
        curves, _ = self._read_curves(path)
        overlay = curves.snapshot()
        overlay.name = short_label(overlay.name, [row.name for row in self.runs_pane.rows])
        self.train_pane.set_overlay(overlay)

    def _read_curves(self, path: str) -> tuple[Curves, str]:
        """A run's curves from the events of its ``metrics.jsonl`` that can be used, and what
        was skipped ("" if nothing), which is also said in a notification: a damaged run
        opens with what is left rather than not at all."""
        log = RunDir(Path(path)).read_events()
        skipped = "; ".join(log.problems())
        if skipped:
            self.notify(f"{Path(path).name}: {skipped}", severity="warning", timeout=6, markup=False)
        return Curves.from_events(log.records, name=Path(path).name), skipped

    def on_train_pane_overlay_requested(self, message: TrainPane.OverlayRequested) -> None:
        self.action_pick_overlay()

    def on_compare_pane_sweep_requested(self, message: ComparePane.SweepRequested) -> None:
        """A sweep of the Objective pane's spec over the grid typed in the Compare pane, which starts and shows it."""
        spec = self._spec_or_error()
        if spec is not None:
            self.query_one(ComparePane).start_sweep(spec, message.axes)

    def shown_run(self) -> Path | None:
        """The directory of the run the Train pane shows (``None``: none, or not known yet)."""
        return self.shown.run_dir.resolve() if self.shown.run_dir is not None else None

    def action_pick_overlay(self) -> None:
        """Choose a run to overlay: the other runs (not the one on show)."""
        shown = self.shown_run()
        runs = [(row.path, escape(f"{row.name}  {row.objective}  {row.status}")) for row in self.runs_pane.rows
                if Path(row.path).resolve() != shown]

        def chosen(path: str | None) -> None:
            if path:
                self.set_overlay(path)

        self.push_screen(PickRunScreen("Overlay which run?", runs), chosen)

    # ------------------------------------------------------------------ training here
    def _spec_or_error(self) -> RunSpec | None:
        try:
            return self.objective_pane.build_spec()
        except WorkbenchError as error:
            self.push_screen(ErrorScreen("Cannot start", str(error)))
            return None

    def action_start(self) -> None:
        if self.is_training:
            self.notify("A run is already training here", severity="warning")
            return
        spec = self._spec_or_error()
        if spec is None:
            return
        gpus = self._gpus_or_error(spec)
        if gpus == 0:
            return
        if gpus > 1:
            self.notify("Several GPUs: starting it detached, through torchrun", timeout=3)
            self._start_detached(spec, gpus)
            return
        live = self.live = self.shown = LiveRun(Curves(spec.name or ""))
        live.curves.set_status("starting")
        self.train_pane.set_paused(False)
        self._redraw()
        self._install_signals(live.control)
        live.worker = self.train(spec, live)
        self.refresh_bindings()
        self.action_show_tab("train")

    def _install_signals(self, control: RunControl) -> None:
        """SIGTERM/SIGHUP (an SSH drop) while training: stop with a checkpoint, then exit with
        the signal's code, as `workbench run` does. Handlers live only while a run trains; a
        SIGHUP ignored at start (``nohup``) stays ignored, and the hang-up deadline starts only
        once the stop's checkpoint is saved (the handlers listen to the run: see ``train``)."""
        def on_signal(signum: int) -> None:
            self.quitting = True

        try:
            self._signals = install_stop_signals(control, on_signal=on_signal, wait_for_checkpoint=True)
        except ValueError:  # not the main thread (an embedding host): keys still stop the run
            self._signals = None

    def _restore_signals(self) -> int | None:
        signals, self._signals = self._signals, None
        if signals is None:
            return None
        signals.restore()
        return signals.exit_code

    @work(thread=True, exclusive=True, exit_on_error=False, group="train")
    def train(self, spec: RunSpec, live: LiveRun) -> Any:
        control = live.control
        if not libraries_ready():  # the status line says what the first seconds are spent on
            live.curves.add(RunNote(text="loading torch, transformers and datasets"))
            self.post_message(self.CurvesChanged(live))
        if not import_heavy_libraries(lambda: get_current_worker().is_cancelled or control.stop_requested):
            live.curves.set_status("stopped")  # stopped (or quit) before the run began: nothing to save
            return None
        leave_a_core_for_the_ui()
        signals = [self._signals] if self._signals is not None else []  # they learn of the run's checkpoints
        return self.engine_factory(spec, [self._listener(live), *signals], control).run()

    def _listener(self, source: RunSource) -> Listener:
        """Runs in a worker thread: record the point, then only post a message."""

        def listener(event: Event) -> None:
            source.curves.add(event)
            if isinstance(event, (StepLogged, EvalDone, Preparing)):
                # one notice in flight at a time: the points are in ``curves`` already, so a
                # burst wakes the UI once (and CurvesChanged.can_replace collapses the rest)
                if source not in self._curves_pending:
                    self._curves_pending.add(source)
                    self.post_message(self.CurvesChanged(source))
            else:
                self.post_message(self.RunEvent(source, event))

        return listener

    def _relay(self, events: Iterable[Event], source: RunSource) -> None:
        """Runs in a worker thread: hand each event to the listener, then post the final state."""
        listener = self._listener(source)
        for event in events:
            listener(event)
        self._curves_pending.discard(source)
        self.post_message(self.CurvesChanged(source))  # the final state, whatever was throttled

    def action_stop(self) -> None:
        if self.is_training:
            self.live.control.request_stop("stopped from the workbench")
            self._show_stopping()
            self.notify("Stopping after this step; saving a checkpoint…", timeout=3)
        elif self.shown is self.followed and self.is_following:
            self.stop_attached()

    def _show_stopping(self) -> None:
        """The status line says the run is saving its checkpoint (``Curves.mark_stopping``)."""
        self.live.curves.mark_stopping()
        self.train_pane.set_paused(False)
        if self.shown is self.live:
            self._redraw()

    def stop_attached(self) -> None:
        """Ask the process writing the followed run to stop; it finishes the step and saves a checkpoint."""
        try:
            pid = stop_run(self.followed.run_dir, self.followed.launched)
        except WorkbenchError as error:
            self.notify(f"Cannot stop the attached run: {error}", severity="warning")
            return
        self.notify(f"Asked process {pid} to stop; it saves a checkpoint first", timeout=3)

    def action_pause(self) -> None:
        if not self.is_training:
            return
        if self.live.control.paused:
            self.live.control.resume()
            self.train_pane.set_paused(False)
            self.notify("Resumed", timeout=2)
        else:
            self.live.control.pause()
            self.train_pane.set_paused(True)
            self.notify("Paused (p resumes)", timeout=2)

    # ------------------------------------------------------------------ detached
    def _gpus_or_error(self, spec: RunSpec) -> int:
        """The GPUs field (checked against the visible GPUs by the launching worker); 0 when it cannot be read."""
        try:
            return self.objective_pane.gpus()
        except WorkbenchError as error:
            self.push_screen(ErrorScreen("Cannot start", str(error)))
            return 0

    def action_detach(self) -> None:
        spec = self._spec_or_error()
        if spec is None:
            return
        gpus = self._gpus_or_error(spec)
        if gpus:
            self._start_detached(spec, gpus)

    def _start_detached(self, spec: RunSpec, gpus: int) -> None:
        """`workbench run` (through torchrun for several GPUs) in its own session, followed here."""
        followed = self._show_follow(spec.name or "detached run", "starting")
        followed.worker = self.launch_and_follow(spec, gpus, followed)
        self.refresh_bindings()

    @work(thread=True, exclusive=True, exit_on_error=False, group="follow")
    def launch_and_follow(self, spec: RunSpec, gpus: int, followed: FollowedRun) -> None:
        worker = get_current_worker()
        if not import_heavy_libraries():
            return
        run = start_detached(prepare_detached(spec, gpus), gpus=gpus)  # a bad spec or GPU count fails here
        self.post_message(self.RunLaunched(followed, run))
        self._relay(follow_detached(run, should_stop=lambda: worker.is_cancelled), followed)

    def on_workbench_app_run_launched(self, message: WorkbenchApp.RunLaunched) -> None:
        self.detached.append(message.run)
        message.source.launched = message.run  # stop_attached signals it (or what it passes the signal to)
        self.notify(f"Started detached run {message.run.name} (pid {message.run.pid}); log {message.run.log_path.name}",
                    timeout=4)

    # ------------------------------------------------------------------ attach (follow)
    def attach(self, path: str) -> None:
        """Follow a run directory that another process writes."""
        if self.is_training:
            self.notify("Training is running here; attach after it ends, or overlay the run (v)", severity="warning")
            return
        followed = self._show_follow(Path(path).name, "waiting", Path(path))
        followed.worker = self.follow_attached(path, followed)
        self.refresh_bindings()

    @work(thread=True, exclusive=True, exit_on_error=False, group="follow")
    def follow_attached(self, path: str, followed: FollowedRun) -> None:
        worker = get_current_worker()
        self._relay(follow_run(path, should_stop=lambda: worker.is_cancelled), followed)

    def _show_follow(self, name: str, status: str, run_dir: Path | None = None) -> FollowedRun:
        """A new followed run (its directory, if known yet), on show in the Train pane."""
        followed = self.followed = self.shown = FollowedRun(Curves(name), run_dir)
        followed.curves.set_status(status)
        self._redraw()
        self.action_show_tab("train")
        return followed

    # ------------------------------------------------------------------ engine news
    def _redraw(self) -> None:
        if self._redraw_timer is not None:
            self._redraw_timer.stop()
            self._redraw_timer = None
        self._last_redraw = time.monotonic()
        panes = self.query(TrainPane)
        if panes:  # a follower's last event can arrive while the app is closing
            panes.first().show(self.shown.curves.snapshot(), self.shown.label, self.shown.note)

    REDRAW_INTERVAL = 0.5
    """Seconds between chart redraws while points stream in: the chart is the costliest
    widget to render, and keys must get the event loop in between (p95 <= 50 ms)."""

    def on_workbench_app_curves_changed(self, message: WorkbenchApp.CurvesChanged) -> None:
        self._curves_pending.discard(message.source)
        if message.source is not self.shown:
            return
        wait = self._last_redraw + self.REDRAW_INTERVAL - time.monotonic()
        if wait <= 0:
            self._redraw()
        elif self._redraw_timer is None:
            self._redraw_timer = self.set_timer(wait, self._redraw)

    def on_workbench_app_run_event(self, message: WorkbenchApp.RunEvent) -> None:
        event, source = message.event, message.source
        if source is self.shown:
            self._redraw()
        if isinstance(event, RunStarted):
            source.run_dir = Path(event.run_dir)  # where it writes (for a detached run: known only now)
            freeze_long_lived()  # the set-up imported more (accelerate, the model's modules)
            self.runs_pane.action_refresh()
            # The tokenizers library draws its own progress bar straight onto the terminal
            # while a tokenizer trains (before RunStarted); repaint every cell over it.
            self.screen.refresh(repaint=True, layout=True)
        elif isinstance(event, RunFinished):
            self.runs_pane.action_refresh()
            self.notify(f"Run {event.status} at step {event.step}: {Path(event.run_dir).name}", timeout=4)
        elif isinstance(event, RunFailed) and isinstance(source, FollowedRun):
            self.push_screen(ErrorScreen("The attached run failed", event.message))
        elif isinstance(event, RunNote):
            self.notify(event.text, timeout=3)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker, state = event.worker, event.state
        if state == WorkerState.ERROR:
            error = worker.error
            text = str(error) if isinstance(error, WorkbenchError) else f"{type(error).__name__}: {error}"
            if worker.group == "train":
                self.live.curves.set_status("failed")
                self.push_screen(ErrorScreen("Training stopped with an error", text))
            elif worker.group == "follow":
                launching = worker.name == "launch_and_follow"
                if launching and worker is self.followed.worker:  # not one an attach has replaced
                    self.followed.curves.set_status("failed")
                    self._redraw()
                self.push_screen(ErrorScreen("Cannot start the detached run" if launching else "Cannot attach", text))
            else:
                self.notify(text, severity="error", timeout=6)
        if worker.group == "follow":
            self.refresh_bindings()
        if worker.group == "train" and state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            exit_code = self._restore_signals()
            self.refresh_bindings()
            self.runs_pane.action_refresh()
            if self.shown is self.live:
                self._redraw()
            if self.quitting:
                self.exit(return_code=exit_code or 0)

    # ------------------------------------------------------------------ quitting
    async def action_quit(self) -> None:
        """Quit; a run training here is stopped first and its checkpoint saved."""
        self.workers.cancel_group(self, "follow")
        if self.is_training:
            if not self.quitting:
                self.quitting = True
                self.live.control.request_stop("quit")
                self.sub_title = f"quitting: {SAVING}"  # the header, on every pane
                self._show_stopping()
                self.notify("Saving a checkpoint before quitting…", timeout=30)
            return
        if self.quit_ends_process:
            self.end_process()
        self.exit()

    def end_process(self) -> None:
        """Leave application mode (the terminal as it was found) and end the process now,
        with exit code 0; returns only where the app cannot leave so (a headless test).

        For a quit with nothing to save: Textual's orderly exit removes every widget of six
        panes and then waits for each thread worker to return (a corpus loading, a model
        built to count its parameters, torch still importing), 1-4 s on a busy machine, most
        of it fighting the importing thread for the GIL. None of that work is ours to finish:
        the workers only read, and detached runs and sweeps are processes of their own.
        ``App.suspend`` is Textual's public way to hand the terminal back."""
        try:
            with self.suspend():
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
        except SuspendNotSupported:
            return


def create_app(run_root: str | Path = "checkpoints", engine_factory: EngineFactory | None = None, **kwargs: Any) -> WorkbenchApp:
    """The app factory shared by the CLI and the tests."""
    return WorkbenchApp(run_root, engine_factory, **kwargs)


def run_app(run_root: str | Path = "checkpoints") -> None:
    quiet_libraries()  # datasets/transformers progress bars would corrupt the screen
    app = create_app(run_root, quit_ends_process=True)
    app.run()
    if app.return_code:  # Textual sets 1 after an unhandled error (and prints it); say so to the shell
        raise SystemExit(app.return_code)
