"""The Compare pane's two plots: several runs' curves overlaid, and the scaling plot.

Both are textual-plotext plots like the Train pane's ``LossChart`` and, like it, hold copies
handed down to them (``CurveSnapshot``s, a ``ScalingView``) and draw no plotext legend (it
would cover the plot): the pane writes the legend beside them, in the same colours
(``PALETTE`` and ``rich_color``).
"""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from workbench.experiments.compare import ScalingView, fmt_number
from workbench.tui.curves import CurveSnapshot
from workbench.tui.widgets.loss_chart import MAX_POINTS, axis_ticks, thin

PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "red", "orange", "white")
"""One colour per run, in row order; plotext's names."""
RICH_NAMES = {"orange": "orange1"}
FIT_COLOR, POINT_COLOR, FRONTIER_COLOR = "magenta", "gray", "cyan"
MIN_CURVE_POINTS = 20
"""Train points drawn per run however many runs share the plot."""


def rich_color(index: int) -> str:
    """The Rich name of run ``index``'s plot colour (for the legend)."""
    name = PALETTE[index % len(PALETTE)]
    return RICH_NAMES.get(name, name)


class ShownChart(PlotextPlot):
    """A plot that draws only while it is shown: ``show`` keeps what it is handed, and the
    pane calls ``draw_if_stale`` when it shows the plot (plotext's redraw costs milliseconds
    of the UI thread, wasted on a hidden plot at every poll)."""

    stale = True

    def mark_stale(self) -> None:
        self.stale = True
        if self.display:
            self.draw_if_stale()

    def draw_if_stale(self) -> None:
        if self.stale:
            self.stale = False
            self.replot()

    def replot(self) -> None:
        raise NotImplementedError


def log_ticks(low: float, high: float, count: int) -> list[float]:
    """About ``count`` ticks from ``low`` to ``high`` spaced evenly on a log scale."""
    if low <= 0 or high <= low:
        return [low] if low > 0 else []
    ratio = (high / low) ** (1 / max(1, count - 1))
    return [low * ratio**i for i in range(count)]


class CurvesChart(ShownChart):
    """Train loss (line) and eval loss (x) of each run, one colour per run."""

    DEFAULT_CSS = """
    CurvesChart {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.curves: list[CurveSnapshot] = []

    def show(self, curves: list[CurveSnapshot]) -> None:
        self.curves = curves
        self.mark_stale()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("step")
        steps: list[float] = []
        limit = min(MAX_POINTS, max(60, 2 * self.size.width)) // max(1, len(self.curves))
        for index, snap in enumerate(self.curves):
            color = PALETTE[index % len(PALETTE)]
            train = thin([(x, y) for x, y in zip(snap.train_steps, snap.train_loss) if math.isfinite(y)], max(MIN_CURVE_POINTS, limit))
            if train:
                plt.plot([p[0] for p in train], [p[1] for p in train], color=color, marker="braille")
            if snap.eval_steps:
                plt.scatter(snap.eval_steps, snap.eval_loss, color=color, marker="x")
            steps += [p[0] for p in train] + list(snap.eval_steps)
        if steps:
            plt.xticks(*axis_ticks(min(steps), max(steps), max(2, self.size.width // 12)))
        else:
            plt.title("no curves: choose runs or a sweep")
        self.refresh()


class ScalingChart(ShownChart):
    """Final eval loss against a size: every trial (grey), the best at each size (cyan) and
    the fitted power law (magenta), on log-log axes when every value is positive."""

    DEFAULT_CSS = """
    ScalingChart {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.view: ScalingView | None = None

    def show(self, view: ScalingView | None) -> None:
        self.view = view
        self.mark_stale()

    def on_resize(self) -> None:
        self.mark_stale()  # the ticks depend on the width

    def replot(self) -> None:
        """Redraw. A log axis is drawn by plotting log10 of the values on a linear axis with
        the ticks labelled in the values themselves: plotext's own log scale transforms its
        data in place when drawing, so a second draw (a resize, a pane shown again) breaks."""
        plt, view = self.plt, self.view
        plt.clear_data()
        plt.clear_figure()
        if view is None or not view.points:
            plt.title("no finished trials with an eval loss yet")
            self.refresh()
            return
        fx = math.log10 if view.log_x else float
        fy = math.log10 if view.log_y else float
        plt.xlabel(f"{view.x}{' (log)' if view.log_x else ''}")
        fit = view.outcome.fit
        xs = [p[0] for p in view.points]
        ys = [p[1] for p in view.points]
        low, high = min(xs), max(xs)
        if fit is not None and high > low:
            grid = log_ticks(low, high, 40) if view.log_x else [low + (high - low) * i / 39 for i in range(40)]
            plt.plot([fx(x) for x in grid], [fy(fit.predict(x)) for x in grid], color=FIT_COLOR, marker="braille")
        plt.scatter([fx(x) for x in xs], [fy(y) for y in ys], color=POINT_COLOR, marker="dot")
        plt.scatter([fx(p[0]) for p in view.frontier], [fy(p[1]) for p in view.frontier], color=FRONTIER_COLOR, marker="hd")
        sizes = sorted({p[0] for p in view.frontier})
        count = max(2, min(len(sizes), self.size.width // 10))
        ticks = sizes if len(sizes) <= count else log_ticks(low, high, count) if view.log_x else axis_ticks(low, high, count)[0]
        plt.xticks([fx(t) for t in ticks], [fmt_number(t) for t in ticks])
        if view.log_y:
            rows = max(2, min(5, self.size.height // 3))
            yticks = log_ticks(min(ys), max(ys), rows) if max(ys) > min(ys) else [min(ys)]
            plt.yticks([fy(t) for t in yticks], [f"{t:.3g}" for t in yticks])
        self.refresh()
