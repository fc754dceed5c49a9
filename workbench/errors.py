"""User-facing errors: one line naming the problem, where it is, and the fix.

Front ends print ``str(error)`` and exit with code 2, never a traceback. Anything that is
not a ``WorkbenchError`` is a bug and keeps its traceback.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A problem with the user's input or environment that they can fix."""

    exit_code = 2

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None):
        self.problem = problem
        self.where = where
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{self.where}: {self.problem}" if self.where else self.problem
        if self.fix:
            text = f"{text.rstrip('.')}. Fix: {self.fix}"
        return " ".join(text.split())


class CorpusError(WorkbenchError):
    """A corpus that cannot be found, read or used."""


class SpecError(WorkbenchError):
    """A run spec with an invalid or inconsistent setting."""


class BaseModelError(WorkbenchError):
    """A base model that cannot be loaded or does not fit the objective."""


class RunDirError(WorkbenchError):
    """A run directory that is missing or unusable (resume, inspect)."""


class TrainingError(WorkbenchError):
    """Training stopped for a reason the user can act on (NaN loss, out of memory)."""
