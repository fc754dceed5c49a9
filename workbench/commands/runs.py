"""`workbench runs`: the run history under checkpoints/."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.table import Table

from workbench.console import fmt_loss


def runs_command(out: str = typer.Option("checkpoints", "--out", help="Run root to list.")) -> None:
    """List runs with objective, corpus, steps, best eval loss and status."""
    from workbench.engine.rundir import list_runs

    rows = list_runs(out)
    console = Console()
    if not rows:
        console.print(f"No runs under {out}/ yet. Start one with: workbench run")
        return
    table = Table(title=f"Runs in {out}/")
    for column in ("name", "objective", "corpus", "steps", "best eval loss", "status", "date"):
        table.add_column(column, justify="right" if column in ("steps", "best eval loss") else "left")
    for row in rows:
        table.add_row(
            row.name, row.objective, row.corpus, f"{row.steps}/{row.total_steps}", fmt_loss(row.best_eval_loss),
            row.status, dt.datetime.fromtimestamp(row.created).strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)
