"""`workbench runs`: the run history under checkpoints/."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.console import fmt_loss


def runs_command(out: str = typer.Option("checkpoints", "--out", help="Run root to list.")) -> None:
    """List runs with objective, corpus, steps, best eval loss and status."""
    from workbench.commands.common import fail
    from workbench.engine.rundir import list_runs
    from workbench.errors import WorkbenchError

    try:
        rows = list_runs(out)
    except WorkbenchError as error:
        fail(error)
    console = Console()
    if not rows:
        console.print(f"No runs under {out}/ yet. Start one with: workbench run", markup=False, highlight=False)
        return
    table = Table(title=Text(f"Runs in {out}/"))
    for column in ("name", "objective", "corpus", "steps", "best eval loss", "status", "date"):
        table.add_column(column, justify="right" if column in ("steps", "best eval loss") else "left")
    for row in rows:
        # Text, not str: a name or corpus with [brackets] is not Rich markup
        table.add_row(
            Text(row.name), Text(row.objective), Text(row.corpus), f"{row.steps}/{row.total_steps}", fmt_loss(row.best_eval_loss),
            Text(row.status, style="red" if row.problems else ""), dt.datetime.fromtimestamp(row.created).strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)
    damaged = sum(1 for row in rows if row.problems)
    if damaged:
        console.print(Text(f"{damaged} of {len(rows)} runs damaged: what could not be read was skipped, the rest is shown.",
                           style="dim"))
