"""`workbench runs`: the run history under checkpoints/.

The run's name is what a user copies into every other command, so it is never cut: when the
console is too narrow, the corpus and status columns wrap, then whole columns are left out,
the least useful first (the date, the best loss, the objective...). A sweep's trials are
listed together, in trial order, under a line naming the sweep; a trial's name is
``<sweep>/<trial>``, which every command takes. ``--json`` lists the same rows for scripts,
each with its ``sweep`` and ``trial`` (null for a run of its own).

What each run's files said is kept in a small cache file per run root under the user's cache
folder (``runs.rowcache``), so a second listing reads only the runs whose files changed; a
"running" run's pid is still checked on every listing.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.commands.common import fail
from workbench.console import fmt_loss
from workbench.errors import WorkbenchError
from workbench.runs import rowcache
from workbench.runs.listing import list_runs

if TYPE_CHECKING:
    from workbench.runs.listing import RunRow

COLUMNS = ("name", "objective", "corpus", "steps", "best eval loss", "status", "date")
"""The columns, in the order shown."""

LEFT_OUT_FIRST = ("date", "best eval loss", "objective", "corpus", "steps", "status")
"""The columns left out when the name would not fit whole, least useful first (never the name)."""

WRAPPING = ("corpus", "status")
"""Columns that wrap (folding a word when they must) rather than widen the table."""

WRAP_MIN = 12
"""The narrowest a wrapping column is allowed to get before a column is left out instead
(a status word, "interrupted", on one line)."""

LOSS_WIDTH = 9
"""The best eval loss column: its header on two lines ("best eval" / "loss"), a loss on one."""

JSON_FIELDS = ("name", "path", "objective", "method", "corpus", "base", "steps", "total_steps", "best_eval_loss", "status", "state",
               "created", "problems", "sweep", "trial", "kept_steps")


def _date(row: RunRow) -> str:
    return dt.datetime.fromtimestamp(row.created).strftime("%Y-%m-%d %H:%M")


def _cells(row: RunRow) -> dict[str, Text]:
    """One row's cells by column. Text, not str: a name or corpus with [brackets] is not Rich markup."""
    return {
        "name": Text(row.name), "objective": Text(row.objective), "corpus": Text(row.corpus),
        "steps": Text(f"{row.steps}/{row.total_steps}"), "best eval loss": Text(fmt_loss(row.best_eval_loss)),
        "status": Text(row.status, style="red" if row.problems else ""), "date": Text(_date(row)),
    }


def _needed(column: str, cells: list[dict[str, Text]]) -> int:
    """The width a column needs: its widest cell or header, a wrapping one at most ``WRAP_MIN``."""
    if column == "best eval loss":
        return LOSS_WIDTH
    widest = max([cell_len(column)] + [cell_len(cell[column].plain) for cell in cells])
    return min(widest, WRAP_MIN) if column in WRAPPING else widest


def shown_columns(cells: list[dict[str, Text]], width: int) -> list[str]:
    """The columns that fit in ``width`` with the name whole, leaving out the least useful first."""
    shown = list(COLUMNS)
    for column in (None, *LEFT_OUT_FIRST):
        if column is not None:
            shown.remove(column)
        # a box with one space of padding either side: 3 characters per column and one more
        if sum(_needed(c, cells) for c in shown) + 3 * len(shown) + 1 <= width:
            break
    return shown


def runs_table(rows: list[RunRow], title: str, width: int) -> Table:
    """The runs as a table no wider than ``width`` (unless the longest name alone is)."""
    cells = [_cells(row) for row in rows]
    shown = shown_columns(cells, width)
    table = Table(title=Text(title))
    squeezed = shown == ["name"] and _needed("name", cells) + 4 > width  # folded rather than cut
    for column in shown:
        justify = "right" if column in ("steps", "best eval loss") else "left"
        wraps = column in WRAPPING or column == "best eval loss" or squeezed
        table.add_column(column, justify=justify, no_wrap=not wraps, overflow="fold",
                         width=LOSS_WIDTH if column == "best eval loss" else None)
    previous: str | None = None
    for row, cell in zip(rows, cells):
        if row.sweep != previous and (row.sweep is not None or previous is not None):
            table.add_section()  # a sweep's trials together, set apart from the runs around them
        previous = row.sweep
        table.add_row(*(cell[column] for column in shown))
    return table


def runs_json(rows: list[RunRow]) -> str:
    """The rows as a JSON list, each with ``JSON_FIELDS`` (``created``: seconds since the epoch),
    one run a line: readable, and written by json's C encoder (``indent=`` takes its Python
    one, a tenth of a second for 1,000 runs)."""
    lines = [json.dumps({name: getattr(row, name) for name in JSON_FIELDS}) for row in rows]
    return "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"


def runs_command(
    out: str = typer.Option("checkpoints", "--out", help="Run root to list."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as a JSON list (name, path, objective, corpus, "
                                 "base, steps, total_steps, best_eval_loss, status, state, created, problems, sweep, trial)."),
) -> None:
    """List runs, and sweeps' trials grouped by sweep, with objective, corpus, steps, best eval loss and status."""
    cache = rowcache.load(out)  # what an earlier `workbench runs` read: only changed runs are read again
    try:
        rows = list_runs(out, cache)
    except WorkbenchError as error:
        fail(error)
    rowcache.save(cache, out)
    if as_json:
        sys.stdout.write(runs_json(rows) + "\n")
        return
    console = Console()
    if not rows:
        console.print(f"No runs under {out}/ yet. Start one with: workbench run", markup=False, highlight=False)
        return
    sweeps = len({row.sweep for row in rows if row.sweep is not None})
    trials = f", {sum(1 for row in rows if row.sweep)} of them trials of {sweeps} sweep(s)" if sweeps else ""
    console.print(runs_table(rows, f"Runs in {out}/ ({len(rows)}{trials})", console.width))
    damaged = sum(1 for row in rows if row.problems)
    if damaged:
        console.print(Text(f"{damaged} of {len(rows)} runs damaged: what could not be read was skipped, the rest is shown.",
                           style="dim"))
