"""The `workbench` command: the TUI with no arguments, headless subcommands otherwise.

Commands are thin: each parses flags, calls one engine/corpora/inspector function, and
prints. Command modules import torch, transformers, datasets and Textual only inside the
command that uses them, so `workbench --help` and `workbench runs` start fast.
"""

from __future__ import annotations

import os
import sys

import typer

from workbench.commands.common import OneLineErrorGroup
from workbench.commands.compare import compare_command
from workbench.commands.corpora import corpora_app
from workbench.commands.export import export_command
from workbench.commands.inspect import inspect_command
from workbench.commands.lr_find import lr_find_command  # lr-find
from workbench.commands.run import run_command
from workbench.commands.runs import runs_command
from workbench.commands.sweep import sweep_command
from workbench.commands.transfer import transfer_command
from workbench.commands.tui import open_tui, tui_command
from workbench.quiet import quiet_libraries

app = typer.Typer(
    name="workbench",
    help="A terminal workbench for small language-model pre-training and fine-tuning experiments.",
    cls=OneLineErrorGroup,
    no_args_is_help=False,
    invoke_without_command=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command("run")(run_command)
app.command("runs")(runs_command)
app.command("sweep")(sweep_command)
app.command("transfer")(transfer_command)
app.command("lr-find")(lr_find_command)
app.add_typer(corpora_app, name="corpora")
app.command("tui")(tui_command)
app.command("inspect")(inspect_command)
app.command("compare")(compare_command)
app.command("export")(export_command)


@app.callback()
def root(ctx: typer.Context) -> None:
    """With no command, open the TUI."""
    if ctx.invoked_subcommand is None:
        open_tui()


def main() -> None:
    quiet_libraries()  # environment variables only: the libraries it quiets are not loaded yet
    try:
        app()
    except SystemExit as done:
        if done.code in (0, None) and "textual" in sys.modules and "torch" in sys.modules:
            leave_at_once()
        raise


def leave_at_once() -> None:
    """After the TUI closed cleanly: exit without Python's clean-up of torch, transformers and
    datasets (about 1.3 s here). Nothing of ours is left to do: the app stopped any run with a
    checkpoint, restored the terminal, and detached runs are processes of their own."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
