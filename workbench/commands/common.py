"""Helpers shared by the commands: error reporting and duration parsing."""

from __future__ import annotations

import os
import re
import sys
from typing import NoReturn

from rich.console import Console

from workbench.errors import SpecError, TrainingError, WorkbenchError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


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
        err_console.print(f"[bold red]error:[/] {error.one_line()}", markup=True)
    raise SystemExit(error.exit_code)


def parse_duration(text: str | None) -> float | None:
    """'90', '90s', '5m', '1.5h' -> seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not match:
        raise SpecError(f"cannot read time budget {text!r}", fix="write e.g. 90s, 5m or 1h")
    value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if value <= 0:
        raise SpecError("time budget must be positive", fix="write e.g. 90s, 5m or 1h")
    return value


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
