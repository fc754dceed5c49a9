"""`workbench tui` (and `workbench` with no arguments): open the Textual workbench."""

from __future__ import annotations

import typer


def open_tui(out: str = "checkpoints") -> None:
    from workbench.tui.app import run_app  # Textual is imported here and nowhere in the engine

    run_app(out)


def tui_command(
    out: str = typer.Option("checkpoints", "--out", help="Run root: where runs are written and listed."),
) -> None:
    """Open the terminal workbench (the same as `workbench` with no arguments)."""
    open_tui(out)
