"""The workbench App: panes in tabs, training in a thread worker, engine news as messages.

``create_app(run_root, engine_factory=None)`` is the factory both ``run_app()`` (the CLI)
and the tests use; tests inject a fake engine through ``engine_factory``. The app only
holds state and routes messages; each pane owns its widgets ("attributes down, messages
up").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, OptionList, TabbedContent, TabPane
from textual.timer import Timer
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.config import RunSpec, tomllib
from workbench.engine.control import RunControl
from workbench.engine.events import EvalDone, Event, Listener, Message, RunFailed, RunFinished, RunStarted, StepLogged
from workbench.errors import WorkbenchError
from workbench.tui.commands import WorkbenchCommands
from workbench.tui.curves import Curves
from workbench.tui.messages import CorpusChosen, CurvesChanged, EngineEvent, RunChosen
from workbench.tui.panes.corpus import CorpusPane
from workbench.tui.panes.inspector import InspectorPane
from workbench.tui.panes.objective import ObjectivePane
from workbench.tui.panes.runs import RunsPane, RunsTable
from workbench.tui.panes.train import TrainPane
from workbench.tui.screens.error import ErrorScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.pick_run import PickRunScreen

EngineFactory = Callable[[RunSpec, list[Listener], RunControl], Any]
"""(spec, listeners, control) -> an object whose blocking ``run()`` trains and emits events."""

TABS = ("corpus", "objective", "train", "runs", "inspector")


def default_engine(spec: RunSpec, listeners: list[Listener], control: RunControl) -> Any:
    from workbench.engine.runner import TrainingRun

    return TrainingRun(spec, listeners=listeners, control=control)


def recent_hub_corpora(run_root: Path) -> list[str]:
    """Hub corpora named in the run root's ``run.toml`` files, newest first (cheap: no metrics)."""
    found: list[tuple[float, str]] = []
    if run_root.is_dir():
        for run_toml in run_root.glob("*/run.toml"):
            try:
                data = tomllib.loads(run_toml.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            corpus = data.get("spec", {}).get("corpus", "")
            if corpus.startswith("hf:"):
                found.append((float(data.get("meta", {}).get("created", 0)), corpus))
    seen: list[str] = []
    for _, corpus in sorted(found, reverse=True):
        if corpus not in seen:
            seen.append(corpus)
    return seen


def corpus_names(run_root: Path) -> list[str]:
    from workbench.corpora.sources import list_names

    return list_names() + [c for c in recent_hub_corpora(run_root) if c not in list_names()]


class WorkbenchApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "lm-workbench"
    COMMANDS = App.COMMANDS | {WorkbenchCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", tooltip="List every key"),
        Binding("s", "start", "Start", tooltip="Train the Objective pane's spec here (thread worker)"),
        Binding("D", "detach", "Detach", tooltip="Start the spec as a separate `workbench run` process and attach"),
        Binding("x", "stop", "Stop", tooltip="Stop training after this step, saving a checkpoint"),
        Binding("p", "pause", "Pause", tooltip="Pause or resume training"),
        Binding("q", "quit", "Quit", tooltip="Quit (a training run is stopped with a checkpoint first)"),
        Binding("1", "show_tab('corpus')", "Corpus", show=False, tooltip="Corpus pane"),
        Binding("2", "show_tab('objective')", "Objective", show=False, tooltip="Objective & model pane"),
        Binding("3", "show_tab('train')", "Train", show=False, tooltip="Train pane (live curves)"),
        Binding("4", "show_tab('runs')", "Runs", show=False, tooltip="Runs pane (history)"),
        Binding("5", "show_tab('inspector')", "Inspector", show=False, tooltip="Inspector pane"),
    ]

    def __init__(self, run_root: str | Path = "checkpoints", engine_factory: EngineFactory | None = None,
                 *, corpora: list[str] | None = None, runs_poll_seconds: float = 3.0) -> None:
        super().__init__()
        self.run_root = Path(run_root)
        self.engine_factory = engine_factory or default_engine
        self.corpora = corpora if corpora is not None else corpus_names(self.run_root)
        self.runs_poll_seconds = runs_poll_seconds
        self.control: RunControl | None = None
        self.train_worker: Worker | None = None
        self.curves: dict[str, Curves] = {"live": Curves(), "follow": Curves(), "opened": Curves()}
        self.view_source = "live"
        self.follow_path: Path | None = None
        self._signals: Any = None
        self._curves_pending: set[str] = set()
        self.quitting = False
        self.detached: list[subprocess.Popen] = []
        self._last_redraw = 0.0
        self._redraw_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        with TabbedContent(initial="corpus", id="tabs"):
            with TabPane("1 Corpus", id="corpus"):
                yield CorpusPane(self.corpora, id="corpus-pane")
            with TabPane("2 Objective", id="objective"):
                yield ObjectivePane(self.run_root, id="objective-pane")
            with TabPane("3 Train", id="train"):
                yield TrainPane(id="train-pane")
            with TabPane("4 Runs", id="runs"):
                yield RunsPane(self.run_root, poll_seconds=self.runs_poll_seconds, id="runs-pane")
            with TabPane("5 Inspector", id="inspector"):
                yield InspectorPane(id="inspector-pane")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#corpus-list", OptionList).focus()

    # ------------------------------------------------------------------ state
    @property
    def is_training(self) -> bool:
        return self.train_worker is not None and self.train_worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    @property
    def is_following(self) -> bool:
        return any(w.group == "follow" and w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in self.workers)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.is_training or (self.view_source == "follow" and self.is_following)
        if action == "pause":
            return self.is_training
        if action in ("start", "detach"):
            return not self.is_training
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
        targets = {
            "corpus": "#corpus-list", "objective": "#f-objective", "train": "#train-pane",
            "runs": "#runs-table", "inspector": None,
        }
        target = targets.get(tab)
        if target:
            self.query_one(target).focus()
            return
        focusable = [w for w in self.query_one(f"#{tab}-pane").query("*") if w.focusable]
        self.set_focus(focusable[0] if focusable else None)

    def action_help(self) -> None:
        sections = [
            ("anywhere", self.BINDINGS + [Binding("ctrl+p", "command_palette", "Palette", tooltip="Command palette"),
                                          Binding("tab", "focus_next", "Next", tooltip="Move focus to the next widget")]),
            ("corpus", CorpusPane.BINDINGS + [Binding("enter", "use", "Use", tooltip="Use the highlighted corpus")]),
            ("objective", ObjectivePane.BINDINGS),
            ("train", TrainPane.BINDINGS),
            ("runs", RunsTable.BINDINGS + RunsPane.BINDINGS),
            ("inspector", list(getattr(InspectorPane, "BINDINGS", []))),
        ]
        self.push_screen(HelpScreen(sections))

    def action_toggle_chart(self, which: str) -> None:
        pane = self.train_pane
        {"smoothing": pane.action_toggle_smoothing, "log": pane.action_toggle_log, "x": pane.action_toggle_x}[which]()

    def action_refresh_runs(self) -> None:
        self.runs_pane.action_refresh()

    # ------------------------------------------------------------------ corpus & runs
    def on_corpus_chosen(self, message: CorpusChosen) -> None:
        self.objective_pane.set_corpus(message.name)
        self.notify(f"Corpus for the next run: {message.name}", timeout=2)
        self.action_show_tab("objective")

    def on_run_chosen(self, message: RunChosen) -> None:
        from workbench.engine.rundir import RunDir

        if message.action == "finetune":
            self.objective_pane.set_base(message.path)
            self.action_show_tab("objective")
            self.notify(f"Base set to {Path(message.path).name}: pick a fine-tuning objective and press s", timeout=4)
        elif message.action == "attach":
            self.attach(message.path)
        elif message.action == "overlay":
            self.set_overlay(message.path)
        elif message.action == "open":
            if self.is_training:
                self.set_overlay(message.path)
                self.notify("Training is running here: the run is overlaid on the live chart", timeout=3)
                return
            self.workers.cancel_group(self, "follow")
            events = RunDir(Path(message.path)).events()
            self.curves["opened"] = Curves.from_events(events, name=Path(message.path).name)
            self.view_source = "opened"
            self._redraw()
            self.action_show_tab("train")

    def set_overlay(self, path: str) -> None:
        from workbench.engine.rundir import RunDir

        overlay = Curves.from_events(RunDir(Path(path)).events(), name=Path(path).name).snapshot()
        self.train_pane.set_overlay(overlay)

    def action_pick_overlay(self) -> None:
        runs = [(row.path, f"{row.name}  {row.objective}  {row.status}") for row in self.runs_pane.rows]

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
        self.control = RunControl()
        self.curves["live"] = Curves(spec.name or "")
        self.curves["live"].set_status("starting")
        self.view_source = "live"
        self.train_pane.set_paused(False)
        self.train_pane.show(self.curves["live"].snapshot(), "live")
        self._install_signals(self.control)
        self.train_worker = self.train(spec, self.control, self.curves["live"])
        self.refresh_bindings()
        self.action_show_tab("train")

    def _install_signals(self, control: RunControl) -> None:
        """SIGTERM/SIGHUP (an SSH drop) while training: stop with a checkpoint, then exit with
        the signal's code, as `workbench run` does. Handlers live only while a run trains."""
        try:
            from workbench.engine.signals import install_stop_signals
        except ImportError:  # pragma: no cover - the signals module is optional
            return

        def on_signal(signum: int) -> None:
            self.quitting = True

        try:
            self._signals = install_stop_signals(control, on_signal=on_signal)
        except ValueError:  # not the main thread (an embedding host): keys still stop the run
            self._signals = None

    def _restore_signals(self) -> int | None:
        signals, self._signals = self._signals, None
        if signals is None:
            return None
        signals.restore()
        return signals.exit_code

    @work(thread=True, exclusive=True, exit_on_error=False, group="train")
    def train(self, spec: RunSpec, control: RunControl, curves: Curves) -> Any:
        from workbench.quiet import quiet_libraries

        quiet_libraries()
        listener = self._listener("live", curves)
        return self.engine_factory(spec, [listener], control).run()

    def _listener(self, source: str, curves: Curves) -> Listener:
        """Runs in the worker thread: record the point, then only post a message."""

        def listener(event: Event) -> None:
            curves.add(event)
            if isinstance(event, (StepLogged, EvalDone)):
                # one notice in flight at a time: the points are in ``curves`` already, so a
                # burst wakes the UI once (and CurvesChanged.can_replace collapses the rest)
                if source not in self._curves_pending:
                    self._curves_pending.add(source)
                    self.post_message(CurvesChanged(source))
            else:
                self.post_message(EngineEvent(source, event))

        return listener

    def action_stop(self) -> None:
        if self.control is not None and self.is_training:
            self.control.request_stop("stopped from the workbench")
            self.train_pane.set_paused(False)
            self.notify("Stopping after this step; saving a checkpoint…", timeout=3)
        elif self.view_source == "follow" and self.is_following and self.follow_path is not None:
            self.stop_attached()

    def stop_attached(self) -> None:
        """Ask the `workbench run` process writing the attached run to stop: SIGINT, which it
        answers by finishing the step and saving a checkpoint (its status.json names the pid)."""
        import signal

        from workbench.engine.rundir import RunDir

        run = RunDir(self.follow_path)
        status = run.status()
        pid = status.get("pid")
        if status.get("status") != "running" or not pid or pid == os.getpid():
            self.notify("The attached run is not running in another process", severity="warning")
            return
        try:
            os.kill(int(pid), signal.SIGINT)
        except OSError as error:
            self.notify(f"Cannot signal process {pid}: {error}", severity="error")
            return
        self.notify(f"Asked process {pid} to stop; it saves a checkpoint first", timeout=3)

    def action_pause(self) -> None:
        if self.control is None or not self.is_training:
            return
        if self.control.paused:
            self.control.resume()
            self.train_pane.set_paused(False)
            self.notify("Resumed", timeout=2)
        else:
            self.control.pause()
            self.train_pane.set_paused(True)
            self.notify("Paused (p resumes)", timeout=2)

    # ------------------------------------------------------------------ detached
    def _gpus_or_error(self, spec: RunSpec) -> int:
        """The GPUs field, checked against the visible GPUs; 0 when it cannot be used."""
        from workbench.engine.distributed import check_gpus

        try:
            gpus = self.objective_pane.gpus()
            if gpus > 1:
                check_gpus(gpus, spec.device)
            return gpus
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
        """`workbench run` (through torchrun for several GPUs) in its own session, then attach."""
        from workbench.engine.spec_resolution import corpus_label

        root = self.run_root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        name = spec.name or f"{spec.objective}-{corpus_label(spec.corpus)}-{time.strftime('%Y%m%d-%H%M%S')}"
        candidate, counter = name, 2
        while (root / candidate).exists():
            candidate, counter = f"{name}-{counter}", counter + 1
        spec = spec.replace(name=candidate, out=str(root))
        spec_path = root / f".{candidate}.spec.toml"
        spec_path.write_text(spec.to_toml(), encoding="utf-8")
        log_path = root / f"{candidate}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "workbench", "run", "--config", str(spec_path), "--json",
                 *(["--gpus", str(gpus)] if gpus > 1 else [])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=os.getcwd(),
            )
        self.detached.append(process)
        self.notify(f"Started detached run {candidate} (pid {process.pid}); log {log_path.name}", timeout=4)
        self.attach(str(root / candidate), process=process, log_path=log_path)

    # ------------------------------------------------------------------ attach (follow)
    def attach(self, path: str, *, process: subprocess.Popen | None = None, log_path: Path | None = None) -> None:
        if self.is_training:
            self.notify("Training is running here; attach after it ends, or overlay the run (v)", severity="warning")
            return
        self.follow_path = Path(path)
        self.curves["follow"] = Curves(Path(path).name)
        self.curves["follow"].set_status("waiting")
        self.view_source = "follow"
        self.train_pane.show(self.curves["follow"].snapshot(), "follow")
        self.follow_run(path, self.curves["follow"], process, log_path)
        self.refresh_bindings()
        self.action_show_tab("train")

    @work(thread=True, exclusive=True, exit_on_error=False, group="follow")
    def follow_run(self, path: str, curves: Curves, process: subprocess.Popen | None, log_path: Path | None) -> None:
        from workbench.engine.follow import follow

        worker = get_current_worker()
        metrics = Path(path) / "metrics.jsonl"
        while not metrics.exists():  # a detached run creates its folder after loading the corpus
            if worker.is_cancelled:
                return
            if process is None or process.poll() is not None:
                last = ""
                if log_path is not None and log_path.is_file():
                    lines = [l for l in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
                    last = lines[-1] if lines else ""
                raise WorkbenchError(last.removeprefix("error: ") or "the run wrote no metrics.jsonl",
                                     where=Path(path).name, fix="see the run's log in the run root")
            time.sleep(0.2)
        listener = self._listener("follow", curves)
        for event in follow(path, should_stop=lambda: worker.is_cancelled):
            listener(event)
        self._curves_pending.discard("follow")
        self.post_message(CurvesChanged("follow"))  # the final state, whatever was throttled

    # ------------------------------------------------------------------ engine news
    def _redraw(self) -> None:
        if self._redraw_timer is not None:
            self._redraw_timer.stop()
            self._redraw_timer = None
        self._last_redraw = time.monotonic()
        panes = self.query(TrainPane)
        if panes:  # a follower's last event can arrive while the app is closing
            panes.first().show(self.curves[self.view_source].snapshot(), self.view_source)

    REDRAW_INTERVAL = 0.5
    """Seconds between chart redraws while points stream in: the chart is the costliest
    widget to render, and keys must get the event loop in between (p95 <= 50 ms)."""

    def on_curves_changed(self, message: CurvesChanged) -> None:
        self._curves_pending.discard(message.source)
        if message.source != self.view_source:
            return
        wait = self._last_redraw + self.REDRAW_INTERVAL - time.monotonic()
        if wait <= 0:
            self._redraw()
        elif self._redraw_timer is None:
            self._redraw_timer = self.set_timer(wait, self._redraw)

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if message.source == self.view_source:
            self._redraw()
        if isinstance(event, RunStarted):
            self.runs_pane.action_refresh()
            # The tokenizers library draws its own progress bar straight onto the terminal
            # while a tokenizer trains (before RunStarted); repaint every cell over it.
            self.screen.refresh(repaint=True, layout=True)
        elif isinstance(event, RunFinished):
            self.runs_pane.action_refresh()
            self.notify(f"Run {event.status} at step {event.step}: {Path(event.run_dir).name}", timeout=4)
        elif isinstance(event, RunFailed) and message.source == "follow":
            self.push_screen(ErrorScreen("The attached run failed", event.message))
        elif isinstance(event, Message):
            self.notify(event.text, timeout=3)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker, state = event.worker, event.state
        if state == WorkerState.ERROR:
            error = worker.error
            text = str(error) if isinstance(error, WorkbenchError) else f"{type(error).__name__}: {error}"
            if worker.group == "train":
                self.curves["live"].set_status("failed")
                self.push_screen(ErrorScreen("Training stopped with an error", text))
            elif worker.group == "follow":
                self.push_screen(ErrorScreen("Cannot attach", text))
            else:
                self.notify(text, severity="error", timeout=6)
        if worker.group == "follow":
            self.refresh_bindings()
        if worker.group == "train" and state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            exit_code = self._restore_signals()
            self.refresh_bindings()
            self.runs_pane.action_refresh()
            if self.view_source == "live":
                self._redraw()
            if self.quitting:
                self.exit(return_code=exit_code or 0)

    # ------------------------------------------------------------------ quitting
    async def action_quit(self) -> None:
        """Quit; a run training here is stopped first and its checkpoint saved."""
        self.workers.cancel_group(self, "follow")
        if self.is_training and self.control is not None:
            if not self.quitting:
                self.quitting = True
                self.control.request_stop("quit")
                self.notify("Saving a checkpoint before quitting…", timeout=30)
            return
        self.exit()


def create_app(run_root: str | Path = "checkpoints", engine_factory: EngineFactory | None = None, **kwargs: Any) -> WorkbenchApp:
    """The app factory shared by the CLI and the tests."""
    return WorkbenchApp(run_root, engine_factory, **kwargs)


def run_app(run_root: str | Path = "checkpoints") -> None:
    from workbench.quiet import quiet_libraries

    quiet_libraries()  # datasets/transformers progress bars would corrupt the screen
    create_app(run_root).run()
