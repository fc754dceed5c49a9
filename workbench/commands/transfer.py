"""`workbench transfer PRETRAIN_RUN...`: how much pre-training buys a fine-tuned task.

Fine-tunes the downstream spec (the same flags as `workbench run`) from each kept checkpoint
of the pre-training runs, from their untrained weights (``RUN@initial``) and from each
``--extra-base``, with ``--seeds`` seeds each: one study folder ``<out>/<name>/``, run as a
sweep over ``base`` (``sweep/transfer.py``). ``workbench compare STUDY`` shows the answer;
``workbench export STUDY --format csv`` writes it as CSV; Ctrl-C stops with a checkpoint and
``workbench transfer --resume STUDY`` continues.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.commands.common import fail, keyword_option
from workbench.commands.run import spec_option, spec_overrides
from workbench.commands.sweep import run_workers, work_here
from workbench.config import RunSpec, check_out_dir, spec_field_types
from workbench.errors import SpecError, WorkbenchError
from workbench.experiments.transfer import TABLE_COLUMNS, read_transfer_study, table_cells, transfer_notes
from workbench.runs.rundir import atomic_write_text
from workbench.runs.transferdir import is_transfer
from workbench.sweep import SPEC_FILE, is_sweep, read_sweep_spec
from workbench.sweep.runner import Sweep
from workbench.sweep.study import open_study as open_optuna_study
from workbench.sweep.study import queue_lock, storage_url
from workbench.sweep.transfer import check_bases, gather_bases, record, transfer_sweep

if TYPE_CHECKING:
    from workbench.experiments.transfer import TransferView

PANEL = "Transfer study"
NOT_FLAGS = ("parallel",)
"""``--parallel`` is the fine-tunes side by side (``--base``, what the study varies, is refused with the reason)."""


def _option(name: str, annotation: Any, default: Any, *flags: str, help_text: str) -> inspect.Parameter:
    return keyword_option(name, annotation, typer.Option(default, *flags, help=help_text, rich_help_panel=PANEL))


TRANSFER_PARAMETERS = [
    _option("extra_base", list[str], [], "--extra-base", help_text="Another base to fine-tune from, a reference line "
            "(a model folder such as MiniLM's, a run, a hub id; repeatable)."),
    _option("steps", Optional[str], None, "--steps", help_text="Only these kept steps of the runs (e.g. 100,400; "
            "default: every kept step)."),
    _option("initial", bool, True, "--initial/--no-initial", help_text="Also fine-tune from each run's untrained "
            "weights (RUN@initial): the no-pre-training baseline."),
    _option("seeds", int, 3, "--seeds", help_text="Fine-tunes per base (seeds seed, seed+1, ...)."),
    _option("metric", Optional[str], None, "--metric", help_text="What a fine-tune scores for the sweep machinery "
            "(eval_loss by default; the view shows the task metric and the eval loss either way)."),
    _option("direction", Optional[str], None, "--direction", help_text="minimize (default) or maximize."),
    _option("prune", bool, False, "--prune/--no-prune", help_text="Stop hopeless fine-tunes early (off: every base "
            "is measured to the end)."),
    _option("storage", Optional[str], None, "--storage", help_text="Optuna RDB URL shared by several machines."),
    _option("resume", Optional[str], None, "--resume", help_text="Continue this study (name or folder)."),
    _option("workers", int, 1, "--parallel", help_text="Fine-tunes side by side, each its own process."),
    _option("as_json", bool, False, "--json", help_text="Print the transfer view as JSON at the end."),
]


def transfer_signature() -> inspect.Signature:
    runs = inspect.Parameter("runs", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[list[str]],
                             default=typer.Argument(None, metavar="PRETRAIN_RUN...", help="Pre-training runs that kept "
                                                    "checkpoints (--keep-steps)."))
    types_by_name = spec_field_types()
    spec_params = [spec_option(f, types_by_name[f.name]) for f in dataclasses.fields(RunSpec) if f.name not in NOT_FLAGS]
    return inspect.Signature([runs, *spec_params, *TRANSFER_PARAMETERS])


def new_study(options: dict[str, Any]) -> tuple[Path, Any]:
    """Check everything, then make the study folder: sweep.toml, transfer.toml."""
    given = {k: v for k, v in spec_overrides(options).items() if k not in ("name", "out")}
    checked = RunSpec(**given)
    checked.validate(flags=given)
    steps = None
    if options["steps"]:
        try:
            steps = sorted({int(part) for part in options["steps"].split(",")})
        except ValueError:
            raise SpecError(f"--steps {options['steps']!r} is not a list of steps", fix="write e.g. --steps 100,400") from None
    bases = gather_bases(list(options["runs"] or []), list(options["extra_base"]), steps, options["initial"])
    settings = {"seeds": options["seeds"], "metric": options["metric"], "direction": options["direction"],
                "prune": options["prune"], "storage": options["storage"]}
    spec = transfer_sweep({k: getattr(checked, k) for k in given}, bases, settings)
    check_bases(checked.objective, bases.values)
    out = options["out"] or "checkpoints"
    check_out_dir(out)
    folder = Path(out) / (options["name"] or f"transfer-{checked.objective}-{time.strftime('%Y%m%d-%H%M%S')}")
    if is_sweep(folder):
        raise SpecError(f"study {folder} exists already", fix=f"continue it with `workbench transfer --resume {folder}`, "
                        "or pick another --name")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / SPEC_FILE, spec.to_toml())
    record(folder, bases)
    return folder, spec


def open_study(options: dict[str, Any]) -> Any:
    """The study as a Sweep: a new one from the flags, or the one --resume names."""
    if options["resume"]:
        if options["runs"] or spec_overrides({k: v for k, v in options.items() if k != "out"}):
            raise SpecError("a resumed study keeps its runs and spec", fix="drop them (--resume takes --out, --storage, "
                            "--parallel and --json), or start a new study")
        out = options["out"] or "checkpoints"
        folder = next((p for p in (Path(options["resume"]), Path(out) / options["resume"]) if is_transfer(p)), None)
        if folder is None:
            raise SpecError("no such transfer study (no transfer.toml there)", where=options["resume"],
                            fix=f"pass a study folder or the name of one under {out}/")
        spec = read_sweep_spec(folder)
        spec.storage = options["storage"] or spec.storage
        new = False
    else:
        folder, spec = new_study(options)
        new = True
    folder = folder.resolve()
    url = storage_url(folder, spec.storage)
    return Sweep(folder=folder, spec=spec, study=open_optuna_study(spec, folder.name, url, create=new), lock_path=queue_lock(url))


def transfer_command(**options: Any) -> None:
    """Fine-tune one downstream spec from each kept checkpoint of pre-training runs, from no pre-training and from extra bases.

    Each fine-tune is an ordinary run directory in the study folder <out>/<name>/ (a sweep over
    base, with transfer.toml saying where each base came from). `workbench compare STUDY` shows
    the downstream metric against the pre-training step, tokens and FLOPs of each base.
    """
    try:
        if options["workers"] < 1:
            raise SpecError(f"--parallel must be at least 1, not {options['workers']}", fix="pass --parallel 1 or more")
        sweep = open_study(options)
        if options["as_json"]:
            sweep.say = lambda text: print(text, file=sys.stderr, flush=True)
        else:
            sweep.say = lambda text: print(text, flush=True)
        if options["workers"] > 1:
            code = run_workers(sweep, {"workers": options["workers"], "json_rows": options["as_json"]})
        else:
            code = work_here(sweep, None)
    except WorkbenchError as error:
        fail(error)
    show_study(sweep.folder, options["as_json"])
    if code:
        print(f"Stopped. Continue with: workbench transfer --resume {sweep.folder}", file=sys.stderr)
    raise SystemExit(code)


transfer_command.__signature__ = transfer_signature()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- showing the answer
def show_study(folder: Path, as_json: bool) -> None:
    view = read_transfer_study(folder)
    if as_json:
        sys.stdout.write(json.dumps(view.to_json(), indent=2, default=str) + "\n")
        return

    console = Console(highlight=False)

    console.print(transfer_table(view))
    for line in transfer_notes(view):
        console.print(line, markup=False)


def transfer_table(view: TransferView) -> Any:
    table = Table(title=Text(f"{view.title}: {view.metric or 'eval loss'} by base (mean ± std over finished seeds)"))
    for column in TABLE_COLUMNS:
        name = view.metric or "metric" if column == "metric" else column
        table.add_column(name, justify="left" if column == "base" else "right", overflow="fold")
    for cells in table_cells(view):
        table.add_row(*(Text(cell) for cell in cells))
    return table
