"""Train pane: the live (or opened, or attached) run's loss curves and readouts.

The pane never reads engine objects: the app hands it ``CurveSnapshot`` copies (``show``),
and asks for an overlay with a message (``TrainPane.OverlayRequested``).
"""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message

from workbench.console import fmt_loss, fmt_rate
from workbench.tui.curves import CurveSnapshot, fmt_duration
from workbench.tui.widgets.loss_chart import LossChart
from workbench.tui.widgets.readout import Readout


def legend(overlay: str | None) -> str:
    """The chart's legend, drawn outside the plot: the line styles, and the overlay's label."""
    text = "[cyan]⠤ train[/] [magenta]▄ eval[/]"
    if overlay is not None:
        text += f" [grey62]• x {escape(overlay)}[/]"
    return text


class TrainPane(Vertical, can_focus=True):
    class OverlayRequested(Message):
        """The user asked to overlay a previous run's curves on the chart (the app knows the
        runs and shows the picker)."""

    BINDINGS = [
        Binding("m", "toggle_smoothing", "Smooth", tooltip="Smooth the train loss (exponential moving average)"),
        Binding("l", "toggle_log", "Log", tooltip="Logarithmic loss axis"),
        Binding("t", "toggle_x", "X axis", tooltip="Plot against steps or tokens seen"),
        Binding("o", "pick_overlay", "Overlay", tooltip="Overlay a previous run's curves"),
        Binding("O", "clear_overlay", "No overlay", show=False, tooltip="Remove the overlaid run"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snapshot = CurveSnapshot()
        self.label = ""
        """Where the run on show comes from ("training here", "attached", "opened")."""
        self.note = ""
        """A warning shown under the run's name (lines of a damaged run skipped)."""
        self.paused = False

    def compose(self) -> ComposeResult:
        yield Readout("No run yet: choose a corpus (1) and an objective (2), then press s.", id="train-status")
        yield Readout("", id="readouts")
        yield LossChart(id="loss-chart")

    @property
    def chart(self) -> LossChart:
        return self.query_one(LossChart)

    # attributes down
    def show(self, snapshot: CurveSnapshot, label: str, note: str = "") -> None:
        """Show a run's curves; ``label`` says where it comes from, ``note`` warns under its name."""
        self.snapshot, self.label, self.note = snapshot, label, note
        self.chart.show(snapshot, self.chart.overlay)
        self.update_readouts()

    def set_overlay(self, overlay: CurveSnapshot | None) -> None:
        self.chart.set_overlay(overlay)
        self.update_readouts()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.update_readouts()

    def _progress_line(self, s: CurveSnapshot) -> str:
        """The run's name, where it comes from, and its status and progress (while it
        prepares: the engine's latest message, e.g. the tokenizer being trained)."""
        # names and messages come from run files: escaped, so [brackets] in them are text
        head = f"[b]{escape(s.name or 'new run')}[/b] [dim]{escape(self.label)}[/dim]  "
        if s.status in ("starting", "waiting") and s.stage:
            return head + f"preparing: {escape(s.stage)}"
        status = "paused" if self.paused and s.status == "running" else s.status
        total = s.total_steps or 0
        width = 20
        if s.budget_s:  # a time budget ends the run: the bar is the budget spent, the steps an estimate
            estimate = f" (~{total} est.)" if total else ""
            done = f"{s.step}{estimate}, {fmt_duration(max(0.0, s.budget_s - s.elapsed_s))} of {fmt_duration(s.budget_s)} left"
            filled = min(width, int(width * s.elapsed_s / s.budget_s))
        else:
            done = f"{s.step}/{total}" if total else str(s.step)
            filled = min(width, int(width * s.step / total)) if total else 0
        bar = "█" * filled + "░" * (width - filled)
        return head + f"{escape(status)}  step {done} {bar}"

    def update_readouts(self) -> None:
        s = self.snapshot
        if s.name or s.status != "idle":
            line = self._progress_line(s)
            below = [f"[red]{escape(s.message)}[/red]"] if s.message else []
            if self.note:
                below.append(f"[yellow]{escape(self.note)}[/yellow]")
            if below:
                line += "\n" + "  ".join(below)
            self.query_one("#train-status", Readout).update(line)
        chart = self.chart
        last = s.train_loss[-1] if s.train_loss else None
        last_eval = s.eval_loss[-1] if s.eval_loss else None
        lr = f"{s.lr:.2e}" if s.lr is not None else "-"
        rate = fmt_rate(s.tokens_per_s) if s.tokens_per_s is not None else "-"
        flags = (
            f"{legend(chart.overlay.name if chart.overlay is not None else None)}[dim] · smooth "
            f"{'on' if chart.smoothing else 'off'} · log {'on' if chart.log_scale else 'off'} · x {chart.x_axis}"
        )
        self.query_one("#readouts", Readout).update(
            f"loss [cyan]{fmt_loss(last)}[/]  eval [magenta]{fmt_loss(last_eval)}[/]  lr {lr}  "
            f"tok/s {rate}  ETA {fmt_duration(s.eta_s)}\n{flags}[/dim]"
        )

    # ------------------------------------------------------------------ chart keys
    def action_toggle_smoothing(self) -> None:
        self.chart.smoothing = not self.chart.smoothing
        self.update_readouts()

    def action_toggle_log(self) -> None:
        self.chart.log_scale = not self.chart.log_scale
        self.update_readouts()

    def action_toggle_x(self) -> None:
        self.chart.x_axis = "tokens" if self.chart.x_axis == "step" else "step"
        self.update_readouts()

    def action_clear_overlay(self) -> None:
        self.set_overlay(None)

    def action_pick_overlay(self) -> None:
        self.post_message(self.OverlayRequested())  # the app knows the runs and shows the picker
