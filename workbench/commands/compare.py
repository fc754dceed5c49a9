"""`workbench compare RUN... | SWEEP`: the fields that differ and the results, in one table.

Every row has its state and the step its value comes from; only a completed row's value is
final. The rows are grouped by objective (never ranked across two), and within one the
completed rows come first, sorted by the metric (the sweep's, else the eval loss), best
first, then the running, stopped, pruned and failed ones. Run names and values are never
cut: when the console is too narrow, a long state wraps and whole columns are left out, the
least useful first (``LEFT_OUT_FIRST``, then the differing fields from the last). A sweep
also gets the mean and spread of its metric over seeds and per swept value, and each
objective with at least three sizes the fitted power law ``L = a * X^-b + c``; both say how
many rows they left out and why. ``--json`` prints it all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.commands.common import fail
from workbench.commands.transfer import show_study
from workbench.errors import WorkbenchError
from workbench.experiments.compare import (
    LEFT_OUT_FIRST,
    collect,
    fit_line,
    fmt_number,
    groups_line,
    scaling_view,
    seed_summary,
    table_cells,
    value_header,
    x_choices,
)
from workbench.runs.transferdir import is_transfer

if TYPE_CHECKING:
    from workbench.experiments.compare import Comparison

RIGHT = ("step", "value", "best eval", "params", "tokens", "FLOPs", "time")


STATE_MIN = 10
"""The narrowest the state column gets before a column is left out instead (it wraps)."""


def _needed(column: str, cells: list[dict[str, str]]) -> int:
    widest = max([cell_len(column)] + [cell_len(cell[column]) for cell in cells])
    return min(widest, STATE_MIN) if column == "state" else widest


def shown_columns(columns: list[str], cells: list[dict[str, str]], width: int, left_out_first: list[str]) -> list[str]:
    """The columns that fit in ``width``, leaving out ``left_out_first`` in order (never the first)."""
    shown = list(columns)
    for column in (None, *left_out_first):
        if column is not None and column in shown:
            shown.remove(column)
        if sum(_needed(c, cells) for c in shown) + 3 * len(shown) + 1 <= width:
            break
    return shown


def compare_table(comparison: Comparison, width: int) -> Table:
    columns, cells = table_cells(comparison)
    header = value_header(comparison)
    for cell in cells:
        cell[header] = cell.pop("value")
    columns = [header if column == "value" else column for column in columns]
    order = [*LEFT_OUT_FIRST, *reversed(comparison.fields)]
    shown = shown_columns(columns, cells, width, order)
    within = " within each objective" if len(comparison.groups()) > 1 else ""
    sort = f"completed first, best first{within}" if len(comparison.rows) > 1 else ""
    table = Table(title=Text(f"{comparison.title}: by {comparison.metric} ({comparison.direction}){', ' + sort if sort else ''}"))
    for column in shown:
        table.add_column(column, justify="right" if column in (*RIGHT, header) or column in comparison.fields and column != "objective" else "left",
                         no_wrap=column != "state", overflow="fold")
    previous = None
    for row, cell in zip(comparison.rows, cells):
        if previous is not None and cell.get("objective", "") != previous:
            table.add_section()
        previous = cell.get("objective", "")
        table.add_row(*(Text(cell[column], style="" if row.is_final else "dim") for column in shown))
    return table


def summary_tables(comparison: Comparison) -> list[Table]:
    """A sweep's metric over seeds (each configuration) and per value of each swept field."""
    summary = seed_summary(comparison)
    tables = []
    note = f" ({summary['note']})" if summary["note"] else ""

    def figures(stats: dict) -> list[str]:
        spread = "-" if stats["std"] is None else f"{stats['std']:.4f}"
        return [str(stats["n"]), f"{stats['mean']:.4f}", spread, f"{stats['min']:.4f}-{stats['max']:.4f}"]

    if any(group["n"] > 1 for group in summary["groups"]):
        names = list(summary["groups"][0]["fields"]) if summary["groups"] else []
        table = Table(title=Text(f"{comparison.metric} over seeds, completed trials{note}"))
        for column in [*names, "seeds", "mean", "std", "range"]:
            table.add_column(column, justify="right")
        for group in summary["groups"]:
            table.add_row(*[fmt_number(group["fields"][n]) for n in names], *figures(group))
        tables.append(table)
    for name, values in summary["fields"].items():
        if len(values) < 2:
            continue
        table = Table(title=Text(f"{comparison.metric} by {name}, completed trials{note}"))
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
    if len(targets) == 1 and transfer_study(targets[0], out):  # transfer: a study gets the transfer view

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
    if groups_line(comparison):
        console.print(Text(groups_line(comparison)))
    console.print(compare_table(comparison, console.width))
    for table in summary_tables(comparison) if comparison.kind == "sweep" else []:
        console.print(table)
    for group in comparison.groups():
        view = scaling_view(comparison, x_axis, group)
        console.print(Text(f"Scaling ({view.frontier_covers}): " + fit_line(view)))
    problems = comparison.problems + [f"{row.name}: {'; '.join(row.problems)}" for row in comparison.rows if row.problems]
    for problem in problems:
        console.print(Text(f"skipped: {problem}", style="dim"))


def transfer_study(target: str, out: str) -> Any:
    """The folder of a transfer study named by ``target`` (a path or a name under ``out``), else None."""
    return next((p for p in (Path(target), Path(out) / target) if is_transfer(p)), None)
