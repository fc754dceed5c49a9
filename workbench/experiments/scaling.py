"""Fit a saturating power law ``L = a * X^-b + c`` to (size, loss) points.

``X`` is a size (parameters, FLOPs, tokens or a swept field such as ``d_model``) and ``L`` a
loss. ``c`` is the loss the law tends to (the irreducible part), ``b`` the exponent. For a
fixed ``c``, ``log(L - c) = log a - b log X`` is a straight line, so the fit searches ``c``
on a grid in ``[0, min L)`` (then more finely around the best), solves each line by least
squares in log space, and keeps the ``c`` whose curve is closest to the points in loss
space. No optimiser to start or diverge, and no numpy: a handful of points.

A fit needs at least ``MIN_SIZES`` distinct sizes; with exactly three the law has as many
parameters as points and passes through them (residual about 0), which is said, not hidden.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

MIN_SIZES = 3
"""Distinct sizes needed to fit three parameters."""


@dataclass(frozen=True)
class PowerLawFit:
    """``L = a * X^-b + c`` fitted to ``points`` points at ``sizes`` distinct sizes."""

    a: float
    b: float
    c: float
    rms: float
    """Root mean square of the fit's residuals, in loss units."""
    points: int
    sizes: int

    def predict(self, x: float) -> float:
        return self.a * x ** -self.b + self.c

    def formula(self, name: str = "X") -> str:
        """``L = 12.3 * N^-0.310 + 1.05``."""
        return f"L = {self.a:.4g} * {name}^-{self.b:.3f} + {self.c:.3g}"

    @property
    def exact(self) -> bool:
        """As many points as parameters: the curve passes through them, whatever the law."""
        return self.sizes <= MIN_SIZES


@dataclass(frozen=True)
class FitOutcome:
    """A fit, or why there is none (``fit`` is then None and ``reason`` says why)."""

    fit: PowerLawFit | None
    reason: str = ""


def _line(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """Least-squares ``y = k + m x``: (k, m); None when every x is the same."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx <= 0:
        return None
    m = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    return mean_y - m * mean_x, m


def _fit_for_c(points: list[tuple[float, float]], c: float) -> tuple[float, float, float] | None:
    """(a, b, squared error in loss space) of the best law with this ``c``."""
    logs_x = [math.log(x) for x, _ in points]
    logs_y = [math.log(y - c) for _, y in points]
    line = _line(logs_x, logs_y)
    if line is None:
        return None
    log_a, slope = line
    a, b = math.exp(log_a), -slope
    error = sum((a * x ** -b + c - y) ** 2 for x, y in points)
    return a, b, error


def _search(points: list[tuple[float, float]], lows: Iterable[float]) -> tuple[float, float, float, float] | None:
    """The best (error, a, b, c) over the candidate values of ``c``."""
    best = None
    for c in lows:
        found = _fit_for_c(points, c)
        if found is not None and math.isfinite(found[2]) and (best is None or found[2] < best[0]):
            best = (found[2], found[0], found[1], c)
    return best


def fit_power_law(xs: Iterable[float], ys: Iterable[float], grid: int = 200) -> FitOutcome:
    """Fit ``L = a * X^-b + c`` (``a > 0``, ``0 <= c < min L``) to the points with a positive,
    finite size and a positive, finite loss."""
    points = [(float(x), float(y)) for x, y in zip(xs, ys)
              if x is not None and y is not None and math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0]
    sizes = len({x for x, _ in points})
    if sizes < MIN_SIZES:
        return FitOutcome(None, f"needs at least {MIN_SIZES} distinct sizes with a loss, has {sizes}")
    floor = min(y for _, y in points)
    step = floor / grid
    best = _search(points, (k * step for k in range(grid)))
    if best is None:
        return FitOutcome(None, "the points do not fit a power law")
    centre = best[3]  # refine c between the coarse neighbours of the best
    fine = (centre + step * (k / grid - 1) for k in range(2 * grid + 1))
    best = min(best, _search(points, (c for c in fine if 0 <= c < floor)) or best)
    error, a, b, c = best
    if b <= 0:
        return FitOutcome(None, f"the loss does not fall as the size grows (fitted exponent {b:.3f})")
    return FitOutcome(PowerLawFit(a=a, b=b, c=c, rms=math.sqrt(error / len(points)), points=len(points), sizes=sizes))
