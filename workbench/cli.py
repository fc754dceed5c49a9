"""The `workbench` command: the TUI with no arguments, headless subcommands otherwise.

Commands are thin: each parses flags, calls one engine/corpora/inspector function, and
prints. Command modules import torch, transformers, datasets and Textual only inside the
command that uses them, so `workbench --help` and `workbench runs` start fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Collection
from typing import Any

import typer

from workbench.commands.common import OneLineErrorGroup
from workbench.commands.tui import open_tui
from workbench.quiet import quiet_libraries

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("workbench.commands.run", "run_command"),
    "runs": ("workbench.commands.runs", "runs_command"),
    "sweep": ("workbench.commands.sweep", "sweep_command"),
    "transfer": ("workbench.commands.transfer", "transfer_command"),
    "lr-find": ("workbench.commands.lr_find", "lr_find_command"),
    "corpora": ("workbench.commands.corpora", "corpora_app"),
    "tui": ("workbench.commands.tui", "tui_command"),
    "inspect": ("workbench.commands.inspect", "inspect_command"),
    "compare": ("workbench.commands.compare", "compare_command"),
    "export": ("workbench.commands.export", "export_command"),
}
"""Each command and where it is defined (its help is its docstring there). ``main`` imports
only the module of the command it runs: all of them together are about a third of a second,
which `workbench runs` would otherwise pay at every call."""


def build_app(only: Collection[str] | None = None) -> typer.Typer:
    """The `workbench` command with every command (``only`` None) or those named."""
    built = typer.Typer(
        name="workbench",
        help="A terminal workbench for small language-model pre-training and fine-tuning experiments.",
        cls=OneLineErrorGroup,
        no_args_is_help=False,
        invoke_without_command=True,
        pretty_exceptions_show_locals=False,
        add_completion=False,
    )
    for name, (module, attribute) in COMMANDS.items():
        if only is None or name in only:
            command = getattr(importlib.import_module(module), attribute)
            if isinstance(command, typer.Typer):
                built.add_typer(command, name=name)
            else:
                built.command(name)(command)
    built.callback()(root)
    return built


def root(ctx: typer.Context) -> None:
    """With no command, open the TUI."""
    if ctx.invoked_subcommand is None:
        open_tui()


def __getattr__(name: str) -> Any:
    """``workbench.cli.app``: every command (tests and docs take it; ``main`` builds its own)."""
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def chosen_command(argv: list[str]) -> str | None:
    """The command ``argv`` runs when it is one of ``COMMANDS`` (the root takes no options but
    --help, so it is the first word); None for no command, --help or a word that is none."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def main() -> None:
    quiet_libraries()  # environment variables only: the libraries it quiets are not loaded yet
    argv = sys.argv[1:]
    command = chosen_command(argv)
    only = {command} if command else None if argv else ()  # no word at all: the TUI, which needs no command
    try:
        build_app(only)()
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
