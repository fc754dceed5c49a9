"""Helpers shared by the commands: one-line error reporting."""

from __future__ import annotations

import inspect
import os
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from workbench.errors import TrainingError, WorkbenchError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

UsageError = next(base for base in typer.BadParameter.__mro__ if base.__name__ == "UsageError")
"""Click's usage error as typer raises it (recent typer versions bundle their own click)."""


def keyword_option(name: str, annotation: Any, option: Any) -> inspect.Parameter:
    """One typer option as a signature parameter: for commands whose options are listed, not spelled out."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def is_rank_zero() -> bool:
    """True outside torchrun and in its rank 0: the process that speaks for a whole run."""
    return os.environ.get("RANK", "0") == "0"


def fail(error: WorkbenchError) -> NoReturn:
    """Print the one-line error (no traceback) and exit 2.

    In a multi-process run every rank reads the same input and would print the same bad-input
    line; only rank 0 prints those. Training errors (an out-of-memory on one GPU) are the
    failing rank's own, so every rank prints them.
    """
    if is_rank_zero() or isinstance(error, TrainingError):
        err_console.print(f"[bold red]error:[/] {escape(error.one_line())}", markup=True)
    raise SystemExit(error.exit_code)


class BadFlagValue(typer.BadParameter):
    """A flag's text that its parser rejected, with the parser's own fix."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


def fail_usage(error: Exception) -> NoReturn:
    """A bad flag or value, as the same one line as any other bad input (click's exit code 2)."""
    if type(error).__name__ == "NoArgsIsHelpError":  # help was asked for, not an error
        raise error
    ctx = getattr(error, "ctx", None)
    command = ctx.command_path if ctx is not None else "workbench"
    fix = getattr(error, "fix", None) or f"see `{command} --help`"
    fail(WorkbenchError(error.format_message(), fix=fix))


class OneLineErrorGroup(TyperGroup):
    """The root command: usage errors of any subcommand print one line, not a Rich panel.

    Subcommands parse their flags inside the root's ``invoke``, so catching there covers them all.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as error:
            fail_usage(error)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as error:
            fail_usage(error)
