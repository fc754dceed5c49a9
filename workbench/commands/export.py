"""`workbench export RUN --format csv|tensorboard`: an existing run's metrics in another format.

``metrics.jsonl`` stays the source of truth; this converts what it holds. ``csv`` writes one
row per step and eval event (``metrics.csv`` in the run directory by default); ``tensorboard``
replays the events through the same reporter ``--report-to tensorboard`` uses (event files in
the run's ``tensorboard/`` folder by default), so a run trained without it can be viewed
with ``tensorboard --logdir``.

Export never writes through a symbolic link (a planted ``metrics.csv -> ../victim`` is a
one-line error, the victim untouched), and it publishes whole results only: the CSV is
written to a temp file beside it, fsynced and renamed into place (``atomic_write_text``); the
event files go to a temp folder that then takes the old folder's place (``publish_folder``),
so exporting twice gives what exporting once does, not every point twice.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Optional

import typer

from workbench.commands.common import err_console, fail
from workbench.commands.compare import transfer_study
from workbench.errors import WorkbenchError
from workbench.experiments.transfer import read_transfer_study, transfer_csv
from workbench.runs.lock import refuse_symlinks
from workbench.runs.publish import publish_folder
from workbench.runs.reporting import TENSORBOARD_FOLDER, TensorBoardReporter, check_reporters
from workbench.runs.rundir import atomic_write_text, find_run

FORMATS = ("csv", "tensorboard")

CSV_COLUMNS = ("event", "split", "step", "time", "loss", "lr", "tokens", "tokens_per_s", "elapsed_s", "grad_norm", "eval_loss",
               "perplexity", "examples", "eval_tokens", "fraction", "coverage")
"""The CSV's first columns (``tokens``: training tokens so far, on step rows; ``eval_tokens``: the
tokens an eval covered); an eval's task metrics follow as ``metric:<name>``."""


def csv_rows(events: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): one row per ``step`` and ``eval`` event, in file order."""
    rows, metric_names = [], []
    for event in events:
        if event["event"] not in ("step", "eval"):
            continue
        row = {name: event.get(name) for name in CSV_COLUMNS if name in event}
        if event["event"] == "eval":
            row["split"] = event.get("split", "eval")
            row["eval_tokens"] = row.pop("tokens", None)
            for name, value in (event.get("metrics") or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[f"metric:{name}"] = value
                    metric_names += [f"metric:{name}"] if f"metric:{name}" not in metric_names else []
        rows.append(row)
    return [*CSV_COLUMNS, *metric_names], rows


def export_csv(events: list[dict[str, Any]], path: Path) -> int:
    """Write the CSV to ``path`` whole (temp file, fsync, rename), never through a link there."""
    columns, rows = csv_rows(events)
    refuse_symlinks(path)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())
    return len(rows)


def export_tensorboard(events: list[dict[str, Any]], folder: Path) -> int:
    """Replay the events into a temp folder beside ``folder``, then put it in ``folder``'s place:
    exporting twice gives one set of event files, as once."""
    check_reporters("tensorboard")
    refuse_symlinks(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise OSError(20, "not a folder", str(folder))
    folder.parent.mkdir(parents=True, exist_ok=True)

    def replay(tmp: Path) -> None:
        reporter = TensorBoardReporter(tmp)
        try:
            for event in events:
                reporter(event)
        finally:
            reporter.close()

    publish_folder(folder, folder.parent / f".{folder.name}.tmp-{os.getpid()}", replay, replace=True)
    return sum(1 for event in events if event["event"] in ("step", "eval"))


def export_command(
    run: str = typer.Argument(..., help="Run directory (path or name under --out)."),
    fmt: str = typer.Option(..., "--format", help="csv (one row per step and eval) or tensorboard (event files)."),
    to: Optional[Path] = typer.Option(None, "--to", help="Where to write: a .csv file, or a folder for TensorBoard "
                                      "(default: metrics.csv or tensorboard/ in the run directory)."),
    out: str = typer.Option("checkpoints", "--out", help="Run root where names are looked up."),
) -> None:
    """Convert a run's metrics.jsonl to CSV or TensorBoard event files (the run directory stays as it is)."""
    try:
        if fmt not in FORMATS:
            raise WorkbenchError(f"unknown export format {fmt!r}", fix=f"use --format {' or --format '.join(FORMATS)}")
        if export_study(run, fmt, to, out):  # transfer: a study's table, not a run's events
            return
        found = find_run(run, out)
        log = found.read_events()
        if log.unreadable:
            raise WorkbenchError(f"metrics.jsonl is {log.unreadable}", where=str(found.path), fix="check the file's permissions")
        if fmt == "csv":
            target = to or found.path / "metrics.csv"
            count = export_csv(log.records, target)
        else:
            target = to or found.path / TENSORBOARD_FOLDER
            count = export_tensorboard(log.records, target)
    except WorkbenchError as error:
        fail(error)
    except OSError as error:
        fail(WorkbenchError(f"cannot write there ({error.strerror or error})", where=str(error.filename or to),
                            fix="pass --to a folder you can write to"))
    for problem in log.problems():
        err_console.print(f"skipped: {problem}")
    view = f"; view it with: tensorboard --logdir {target}" if fmt == "tensorboard" else ""
    print(f"Wrote {count} step and eval events of {found.path.name} to {target}{view}")


def export_study(target: str, fmt: str, to: Optional[Path], out: str) -> bool:
    """``workbench export STUDY --format csv``: a transfer study's table (one line per base) to
    ``transfer.csv`` in the study (or ``--to``). False when ``target`` is no transfer study."""
    folder = transfer_study(target, out)
    if folder is None:
        return False
    if fmt != "csv":
        raise WorkbenchError(f"a transfer study exports as csv, not {fmt}", where=str(folder), fix="use --format csv")
    view = read_transfer_study(folder)
    target_file = to or folder / "transfer.csv"
    target_file.parent.mkdir(parents=True, exist_ok=True)
    target_file.write_text(transfer_csv(view), encoding="utf-8")
    print(f"Wrote {len(view.rows)} bases of {folder.name} to {target_file}")
    return True
