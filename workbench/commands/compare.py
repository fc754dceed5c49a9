"""`workbench compare RUN... | SWEEP`: the fields that differ and the results, in one table.

The rows are sorted by the metric (the sweep's, else the final eval loss), best first. Run
names are never cut: when the console is too narrow, whole columns are left out, the least
useful first (``LEFT_OUT_FIRST``, then the differing fields from the last). A sweep also
gets the mean and spread of its metric over seeds and per swept value, and any comparison
with at least three sizes the fitted power law ``L = a * X^-b + c``. ``--json`` prints it all.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from workbench.experiments.compare import Comparison

RIGHT = ("final eval", "best eval", "params", "tokens", "FLOPs", "time")


def shown_columns(columns: list[str], cells: list[dict[str, str]], width: int, left_out_first: list[str]) -> list[str]:
    """The columns that fit in ``width``, leaving out ``left_out_first`` in order (never the first)."""
    shown = list(columns)
    for column in (None, *left_out_first):
        if column is not None and column in shown:
            shown.remove(column)
        needed = sum(max([cell_len(c)] + [cell_len(cell[c]) for cell in cells]) for c in shown)
        if needed + 3 * len(shown) + 1 <= width:
            break
    return shown


def compare_table(comparison: Comparison, width: int) -> Table:
    from workbench.experiments.compare import LEFT_OUT_FIRST, table_cells

    columns, cells = table_cells(comparison)
    order = [*LEFT_OUT_FIRST, *reversed(comparison.fields)]
    shown = shown_columns(columns, cells, width, order)
    sort = "best first" if len(comparison.rows) > 1 else ""
    table = Table(title=Text(f"{comparison.title}: by {comparison.metric} ({comparison.direction}){', ' + sort if sort else ''}"))
    for column in shown:
        table.add_column(column, justify="right" if column in RIGHT or column in comparison.fields else "left",
                         no_wrap=column != "state", overflow="fold")
    for cell in cells:
        table.add_row(*(Text(cell[column]) for column in shown))
    return table


def summary_tables(comparison: Comparison) -> list[Table]:
    """A sweep's metric over seeds (each configuration) and per value of each swept field."""
    from workbench.experiments.compare import fmt_number, seed_summary

    summary = seed_summary(comparison)
    tables = []

    def figures(stats: dict) -> list[str]:
        spread = "-" if stats["std"] is None else f"{stats['std']:.4f}"
        return [str(stats["n"]), f"{stats['mean']:.4f}", spread, f"{stats['min']:.4f}-{stats['max']:.4f}"]

    if any(group["n"] > 1 for group in summary["groups"]):
        names = list(summary["groups"][0]["fields"]) if summary["groups"] else []
        table = Table(title=Text(f"{comparison.metric} over seeds"))
        for column in [*names, "seeds", "mean", "std", "range"]:
            table.add_column(column, justify="right")
        for group in summary["groups"]:
            table.add_row(*[fmt_number(group["fields"][n]) for n in names], *figures(group))
        tables.append(table)
    for name, values in summary["fields"].items():
        if len(values) < 2:
            continue
        table = Table(title=Text(f"{comparison.metric} by {name}"))
        for column in (name, "trials", "mean", "std", "range"):
            table.add_column(column, justify="right")
        for entry in values:
            table.add_row(fmt_number(entry["value"]), *figures(entry))
        tables.append(table)
    return tables


def compare_command(
    targets: list[str] = typer.Argument(..., metavar="RUN... | SWEEP", help="Run directories (paths or names under --out), or one sweep folder."),
    out: str = typer.Option("checkpoints", "--out", help="Run root where names are looked up."),
    x_axis: Optional[str] = typer.Option(None, "--x", help="Size axis of the power-law fit: parameters, flops, tokens or a "
                                         "numeric field that differs (default: parameters when 3 sizes differ in them)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON: rows with their fields and results, "
                                 "a sweep's summary over seeds, the scaling points and fit."),
) -> None:
    """Compare runs or a sweep's trials: differing fields, eval losses, metric, size, FLOPs, time."""
    from workbench.commands.common import fail
    from workbench.errors import WorkbenchError
    from workbench.experiments.compare import collect, fit_line, scaling_view, x_choices

    if len(targets) == 1 and transfer_study(targets[0], out):  # transfer: a study gets the transfer view
        from workbench.commands.transfer import show_study

        show_study(transfer_study(targets[0], out), as_json)
        return
    try:
        comparison = collect(targets, out)
        axes = x_choices(comparison)
        if x_axis is not None and x_axis not in axes:
            raise WorkbenchError(f"--x {x_axis} is not a size of these runs", fix=f"use one of: {', '.join(axes)}")
    except WorkbenchError as error:
        fail(error)
    if as_json:
        sys.stdout.write(json.dumps(comparison.to_json(x_axis), indent=2, default=str) + "\n")
        return
    console = Console()
    if not comparison.rows:
        console.print(Text(f"No trials in {comparison.path} yet."))
        return
    console.print(compare_table(comparison, console.width))
    for table in summary_tables(comparison) if comparison.kind == "sweep" else []:
        console.print(table)
    view = scaling_view(comparison, x_axis)
    console.print(Text(f"Scaling ({view.frontier_covers}): " + fit_line(view)))
    problems = comparison.problems + [f"{row.name}: {'; '.join(row.problems)}" for row in comparison.rows if row.problems]
    for problem in problems:
        console.print(Text(f"skipped: {problem}", style="dim"))


def transfer_study(target: str, out: str) -> Any:
    """The folder of a transfer study named by ``target`` (a path or a name under ``out``), else None."""
    from pathlib import Path

    from workbench.runs.transferdir import is_transfer

    return next((p for p in (Path(target), Path(out) / target) if is_transfer(p)), None)
