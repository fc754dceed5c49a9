"""How far the range test's smoothing moves its suggestion, on curves whose answer is known.

Each synthetic loss falls by 2 nats along a logistic in log lr, steepest at ``center``, over
the default test (100 steps, 1e-7 to 1). The suggestion (``engine/lr_find.suggest``, the
steepest descent of the bias-corrected moving average, beta 0.98) is printed as a multiple
of the true steepest lr. Given ``workbench lr-find --json`` outputs, it also prints, for each
measured curve, the suggestion beside those of two other rules tried: half of it, and the
steepest descent of a zero-lag (forward-backward) average.

    python benchmarks/lr_find_lag.py
    python benchmarks/lr_find_lag.py curve-clm.json curve-mlm.json
"""

from __future__ import annotations

import json
import math
import sys

from workbench.engine.lr_find import RangeTest, smooth, suggest


def synthetic(lrs: list[float], center: float, width: float) -> list[float]:
    return [8 - 2 / (1 + math.exp(-2 * (math.log10(lr) - math.log10(center)) / width)) for lr in lrs]


def main(paths: list[str]) -> None:
    test = RangeTest()
    lrs = [test.lr_at(i) for i in range(test.steps)]
    print("| true steepest lr | logistic width (decades) | suggested | x true |\n|--:|--:|--:|--:|")
    for center in (1e-4, 1e-3, 3e-3, 1e-2):
        for width in (0.5, 1.0):
            found, _, _ = suggest(lrs, smooth(synthetic(lrs, center, width), test.beta))
            print(f"| {center:.0e} | {width:g} | {found:.1e} | {found / center:.2f} |")
    for path in paths:
        curve = json.loads(open(path, encoding="utf-8").read())
        raw = curve["losses"]
        steepest = suggest(curve["lrs"], smooth(raw, test.beta))[0]
        zero_lag = suggest(curve["lrs"], smooth(smooth(raw, test.beta)[::-1], test.beta)[::-1])[0]
        print(f"{path}: steepest {steepest:.1e}, half {steepest / 2:.1e}, zero-lag steepest {zero_lag:.1e}")


if __name__ == "__main__":
    main(sys.argv[1:])
