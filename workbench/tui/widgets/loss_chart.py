"""The live loss chart: train and eval loss against step or tokens, on one plot.

Plotted with textual-plotext (plotext drawn into a Textual widget): it draws line plots
with axes, ticks, legends and a log y-axis in plain terminal cells using named colours, so
it reads at 80x24 and in a 256-colour terminal over SSH, and it redraws a few hundred
points in a few milliseconds, well inside the UI's latency budget. Textual's own
``Sparkline`` has no axes, two series or log scale, which a loss chart needs.

The widget holds copies (``CurveSnapshot``), never the lists the training thread appends to.
"""

from __future__ import annotations

import math

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from workbench.tui.curves import CurveSnapshot, smooth

LEGEND = {"train": ("cyan", "braille"), "eval": ("magenta", "hd")}
"""Colour and plotext marker of the shown run's splits; an overlay is ``OVERLAY`` (dot, x)."""
OVERLAY = {"train": ("gray", "dot"), "eval": ("gray", "x")}
MAX_POINTS = 400
"""Plotext's cost grows with the points drawn; a braille line is two dots per cell, so a
few hundred points is all an 80-200 column chart can show anyway."""


def thin(pairs: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most ``limit`` points: bucket means, keeping the first and last point exactly."""
    if len(pairs) <= limit:
        return pairs
    size = len(pairs) / (limit - 2)
    out = [pairs[0]]
    for i in range(limit - 2):
        bucket = pairs[int(i * size) + 1 : max(int((i + 1) * size) + 1, int(i * size) + 2)]
        if bucket:
            out.append((bucket[-1][0], sum(p[1] for p in bucket) / len(bucket)))
    out.append(pairs[-1])
    return out


def fmt_count(value: float) -> str:
    """A count in human units: 15, 1.5k, 256k, 2.5M, 1.2G."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def axis_ticks(low: float, high: float, count: int = 5) -> tuple[list[float], list[str]]:
    """Round tick positions from ``low`` to ``high`` (about ``count`` of them, a 1-2-5 step),
    whole numbers for steps and tokens alike, and their labels in human units (``fmt_count``)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        return [], []
    if high == low:
        return [low], [fmt_count(low)]
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, round(step))
    ticks = []
    tick = math.ceil(low / step) * step
    while tick <= high:
        ticks.append(tick)
        tick += step
    return ticks, [fmt_count(t) for t in ticks]


def log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Ticks for a log axis drawn as log10 values on a linear one: 1-2-5 values between
    ``low`` and ``high`` (positive losses), at their log10 positions, labelled as losses."""
    if not (0 < low <= high) or not math.isfinite(high):
        return [], []
    values = [m * 10.0 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1) for m in (1, 2, 5)]
    inside = [v for v in values if low <= v <= high]
    if len(inside) < 2:  # a narrow range: its ends
        inside = sorted({low, high})
    return [math.log10(v) for v in inside], [f"{v:.3g}" for v in inside]


class LossChart(PlotextPlot):
    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 8;
    }
    """

    smoothing: reactive[bool] = reactive(False)
    log_scale: reactive[bool] = reactive(False)
    x_axis: reactive[str] = reactive("step")  # "step" or "tokens"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.data = CurveSnapshot()
        self.overlay: CurveSnapshot | None = None

    # attributes down: the pane hands in copies and the widget redraws
    def show(self, data: CurveSnapshot, overlay: CurveSnapshot | None = None) -> None:
        self.data = data
        self.overlay = overlay
        self.replot()

    def set_overlay(self, overlay: CurveSnapshot | None) -> None:
        self.overlay = overlay
        self.replot()

    def watch_smoothing(self) -> None:
        self.replot()

    def watch_log_scale(self) -> None:
        self.replot()

    def watch_x_axis(self) -> None:
        self.replot()

    def _xy(self, snap: CurveSnapshot, split: str) -> tuple[list[float], list[float]]:
        if split == "train":
            xs = snap.train_tokens if self.x_axis == "tokens" else snap.train_steps
            ys = smooth(snap.train_loss) if self.smoothing else snap.train_loss
        else:
            xs = snap.eval_tokens if self.x_axis == "tokens" else snap.eval_steps
            ys = snap.eval_loss
        pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y) and (y > 0 or not self.log_scale)]
        pairs = thin(pairs, min(MAX_POINTS, max(60, 2 * self.size.width)))
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def replot(self) -> None:
        """Redraw. No plotext legend: it is drawn over the plot (a row per series, over the
        step-0 eval point); the pane's readouts say which colour is which (``LEGEND``)."""
        series = []
        for snap, styles in ((self.overlay, OVERLAY), (self.data, LEGEND)):
            if snap is not None:
                for split, (color, marker) in styles.items():
                    xs, ys = self._xy(snap, split)
                    series.append((xs, ys, color, marker))
        series = [s for s in series if s[0]]
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("tokens" if self.x_axis == "tokens" else "step")
        # A log scale is drawn as log10 values on a linear axis: plotext's own log scale rewrites
        # the data in place when it draws, so a second draw (a resize) came out empty.
        for xs, ys, color, marker in series:
            plt.plot(xs, [math.log10(y) for y in ys] if self.log_scale else ys, color=color, marker=marker)
        if series and self.log_scale:
            plt.yticks(*log_ticks(min(y for s in series for y in s[1]), max(y for s in series for y in s[1])))
        if series:
            xs = [x for s in series for x in s[0]]
            low, high = min(xs), max(xs)
            if 0 < low <= high / 4:  # curves count from step (or token) 0: the axis starts there, with its tick
                low = 0
                plt.xlim(low, high)
            plt.xticks(*axis_ticks(low, high, max(2, self.size.width // 12)))
        else:
            plt.title("no points yet")
        self.refresh()
