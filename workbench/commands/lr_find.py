"""`workbench lr-find`: the learning-rate range test of a spec, plotted in the terminal.

It takes every spec flag `workbench run` takes (made from ``RunSpec`` the same way, by
``run.spec_option``) plus the test's own; it trains a throwaway copy of the model and never
makes a run directory. The test itself is ``engine/lr_find.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from workbench.commands.common import err_console, fail, keyword_option
from workbench.commands.run import build_spec, spec_option, spec_overrides
from workbench.config import RunSpec, spec_field_types
from workbench.errors import WorkbenchError

FINDER_PANEL = "Range test"

FINDER_PARAMETERS = [
    keyword_option("config", Optional[Path], typer.Option(
        None, "--config", help="Spec TOML file; flags override it.", rich_help_panel=FINDER_PANEL)),
    keyword_option("steps", int, typer.Option(
        100, "--steps", help="Optimizer steps of the test (fewer when the loss diverges first).", rich_help_panel=FINDER_PANEL)),
    keyword_option("min_lr", float, typer.Option(
        1e-7, "--min-lr", help="Learning rate of the first step.", rich_help_panel=FINDER_PANEL)),
    keyword_option("max_lr", float, typer.Option(
        1.0, "--max-lr", help="Learning rate of the last step (rising exponentially).", rich_help_panel=FINDER_PANEL)),
    keyword_option("diverge", float, typer.Option(
        4.0, "--diverge", help="Stop once the smoothed loss is this many times its lowest.", rich_help_panel=FINDER_PANEL)),
    keyword_option("json_out", bool, typer.Option(
        False, "--json", help="Print the curve and the suggestion as one JSON object.", rich_help_panel=FINDER_PANEL)),
]


def lr_find_signature() -> inspect.Signature:
    """One option per spec field (as `workbench run`), then the test's own."""
    types_by_name = spec_field_types()
    spec_params = [spec_option(f, types_by_name[f.name]) for f in dataclasses.fields(RunSpec)]
    return inspect.Signature(spec_params + FINDER_PARAMETERS)


def plot(found: Any, width: int = 100) -> str:
    """Loss against lr (log x) as text: each step's loss, the smoothed loss, the suggestion."""
    import plotext as plt  # a plotting library: loaded only to draw

    plt.clear_figure()
    if not sys.stdout.isatty():
        plt.theme("clear")  # no colour codes in a file or a pipe
    plt.plot_size(width, 22)
    plt.xscale("log")
    decades = range(math.floor(math.log10(found.lrs[0])), math.ceil(math.log10(found.lrs[-1])) + 1)
    plt.xticks([10.0**d for d in decades], [f"1e{d}" for d in decades])
    plt.scatter(found.lrs, found.losses, marker="dot", label="loss of each step's batch")
    plt.plot(found.lrs, found.smoothed, label="smoothed (beta 0.98)")
    if found.suggested is not None:
        plt.vertical_line(found.suggested)
    plt.xlabel("learning rate (log scale)")
    plt.ylabel("training loss")
    return plt.build()


def report(found: Any) -> list[str]:
    """The suggestion and what the curve covers, in words."""
    tried = (f"{len(found.lrs)} steps of batch {found.batch}, lr {found.lrs[0]:.1e} to {found.lrs[-1]:.1e}; {found.stopped}"
             if found.lrs else found.stopped)
    lines = [f"curve: {tried}; losses are training losses, one batch each"]
    if found.suggested is None:
        lines.append(f"no suggestion: {found.reason}")
        return lines
    lines.append(f"suggested {found.suggested:.1e}: {found.reason}")
    if found.default_lr:
        lines.append(f"the spec's lr is {found.default_lr:.1e} ({found.suggested / found.default_lr:.2g}x that); "
                     "train with --lr auto to use the suggestion")
    return lines


def lr_find_command(**options: Any) -> None:
    """Find a learning rate: a short range test (lr rising exponentially) on a throwaway copy of the model.

    Takes the same spec flags as `workbench run` and writes no run directory. Prints the loss
    against the learning rate and the suggested lr: where the smoothed loss fell fastest.
    """
    json_out = options["json_out"]
    try:
        spec = build_spec(options["config"], spec_overrides(options))  # the spec first: bad input fails before torch loads
        from workbench.engine.lr_find import RangeTest, find_lr  # loads torch: only when used

        test = RangeTest(steps=options["steps"], min_lr=options["min_lr"], max_lr=options["max_lr"], diverge=options["diverge"])
        found = find_lr(spec, test, lambda event: err_console.print(getattr(event, "text", ""), markup=False))
    except WorkbenchError as error:
        fail(error)
    if json_out:
        print(json.dumps(found.to_dict()))
        return
    if found.lrs:
        print(plot(found))
    for line in report(found):
        print(line)
    if found.suggested is None:
        raise SystemExit(1)


lr_find_command.__signature__ = lr_find_signature()  # type: ignore[attr-defined]
