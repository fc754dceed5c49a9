"""The transfer view's plot: the downstream metric against the pre-training tokens of each base.

One curve per pre-training run (its kept steps), the mean over seeds at each; the
no-pre-training baseline (``RUN@initial``) and each extra base are horizontal reference
lines, as their pre-training is none or unknown. Tokens are on a log axis (written as
numbers, not exponents). The pane writes the legend, in the same colours.
"""

from __future__ import annotations

import math
from typing import Any

from workbench.experiments.compare import fmt_number
from workbench.tui.widgets.compare_charts import PALETTE, ShownChart

REFERENCE_COLORS = ("gray", "red", "yellow", "blue")
"""Reference lines: the baselines (@initial) and extra bases, in row order."""


def figure(row: Any, metric: str) -> float | None:
    """The row's y: the task metric's mean, or the eval loss's when the study has no task metric."""
    return row.metric.mean if metric else row.eval_loss.mean


class TransferChart(ShownChart):
    DEFAULT_CSS = """
    TransferChart {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.view: Any = None

    def show(self, view: Any) -> None:
        self.view = view
        self.mark_stale()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        view = self.view
        if view is None:
            self.refresh()
            return
        plt.xlabel("pre-training tokens (log)")
        xs: list[float] = []
        for index, rows in enumerate(view.curves().values()):
            points = [(math.log10(r.tokens), figure(r, view.metric)) for r in rows if r.tokens and figure(r, view.metric) is not None]
            if points:
                color = PALETTE[index % len(PALETTE)]
                plt.plot([p[0] for p in points], [p[1] for p in points], color=color, marker="braille")
                plt.scatter([p[0] for p in points], [p[1] for p in points], color=color, marker="o")
                xs += [p[0] for p in points]
        for index, row in enumerate(r for r in view.rows if r.reference):
            value = figure(row, view.metric)
            if value is not None:
                plt.hline(value, REFERENCE_COLORS[index % len(REFERENCE_COLORS)])
        if xs:
            low, high = min(xs), max(xs)
            ticks = sorted({round(low, 2), round(high, 2)} | {float(t) for t in range(math.ceil(low), math.floor(high) + 1)})
            plt.xticks(ticks, [fmt_number(10**t) for t in ticks])
        else:
            plt.title("no finished fine-tune from a kept checkpoint yet")
        self.refresh()


def legend_parts(view: Any) -> list[Any]:
    """(text, colour) pieces for the legend under the plot: curves, then reference lines."""
    parts: list[Any] = [f"{view.metric or 'eval loss'} (mean over seeds) by base   "]
    for index, name in enumerate(view.curves()):
        parts += [("━ " + name, PALETTE[index % len(PALETTE)]), "  "]
    for index, row in enumerate(r for r in view.rows if r.reference):
        label = f"{row.source}@initial" if row.kind == "initial" else row.source
        color = REFERENCE_COLORS[index % len(REFERENCE_COLORS)]
        parts += [("┄ " + label, "grey62" if color == "gray" else color), "  "]
    return parts
