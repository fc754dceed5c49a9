"""The `workbench` command: the TUI with no arguments, headless subcommands otherwise.

Commands are thin: each parses flags, calls one engine/corpora/inspector function, and
prints. Textual is imported only by the `tui` command.
"""

from __future__ import annotations

import os

import typer

from workbench.commands.corpora import corpora_app
from workbench.commands.run import run_command
from workbench.commands.runs import runs_command

app = typer.Typer(
    name="workbench",
    help="A terminal workbench for small language-model pre-training and fine-tuning experiments.",
    no_args_is_help=False,
    invoke_without_command=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command("run")(run_command)
app.command("runs")(runs_command)
app.add_typer(corpora_app, name="corpora")


def _register_optional() -> None:
    """Commands from other modules (tui, inspect) register themselves when present."""
    import importlib
    import importlib.util

    for module in ("workbench.commands.tui", "workbench.commands.inspect"):
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).register(app)


_register_optional()


@app.callback()
def root(ctx: typer.Context) -> None:
    """With no command, open the TUI."""
    if ctx.invoked_subcommand is None:
        from workbench.commands import tui as tui_command  # noqa: PLC0415

        tui_command.open_tui()


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from workbench.quiet import quiet_libraries

    quiet_libraries()
    app()
