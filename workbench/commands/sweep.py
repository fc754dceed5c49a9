"""`workbench sweep`: many runs of one spec over a grid, seeds or a search (Optuna).

The fixed part of the spec takes the same flags as `workbench run` (made from ``RunSpec``'s
fields by the same code), except ``--parallel``, which here is the number of trials run side
by side (a run's own ddp/fsdp setting can still be set in the config's ``[fixed]`` table).
``--name`` and ``--out`` name the sweep folder ``<out>/<name>/``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from workbench.commands.common import err_console, fail, keyword_option
from workbench.commands.run import spec_option, spec_overrides
from workbench.config import RunSpec, check_out_dir, spec_field_types
from workbench.errors import SpecError, WorkbenchError
from workbench.runs.rundir import atomic_write_text
from workbench.sweep import SPEC_FILE, is_sweep, read_sweep_spec
from workbench.sweep.runner import Sweep, refresh_results, work
from workbench.sweep.spec import SweepSpec, check_sweep, default_name, parse_grid_flag, parse_search_flag, read_sweep_toml, redact
from workbench.sweep.study import open_storage, open_study, pruning_line, queue_lock, storage_url, study_name_in, waiting_count

SWEEP_PANEL = "Sweep"
MAX_TRIALS = 1000
"""The default of --max-trials (the same as ``workbench.sweep.spec.MAX_TRIALS``, which
this module does not import at start-up)."""
STORAGE_ENV = "WORKBENCH_SWEEP_STORAGE"
"""How a --parallel worker gets a --storage URL given with a password (never on its command line)."""
NOT_FLAGS = ("parallel",)
"""RunSpec fields with no flag here: ``--parallel`` is the sweep's trial count side by side."""
SWEEP_SETTINGS = ("seeds", "trials", "sampler", "prune", "pruner", "metric", "direction", "storage")


def _option(name: str, annotation: Any, default: Any, *flags: str, help_text: str, hidden: bool = False) -> inspect.Parameter:
    return keyword_option(name, annotation, typer.Option(default, *flags, help=help_text, rich_help_panel=SWEEP_PANEL,
                                                         hidden=hidden))


SWEEP_PARAMETERS = [
    _option("config", Optional[Path], None, "--config", help_text="Sweep TOML (tables fixed, grid, search; seeds, trials...) "
            "or any run spec file (its fields are the fixed part); flags override it."),
    _option("grid", list[str], [], "--grid", help_text="FIELD=V1,V2,... a grid axis over any spec field (repeatable)."),
    _option("search", list[str], [], "--search", help_text="FIELD=DIST, e.g. lr=loguniform:1e-4:3e-3, dropout=uniform:0:0.2, "
            "n_layer=int:1:4, schedule=choice:linear,cosine (repeatable), with --trials."),
    _option("seeds", Optional[int], None, "--seeds", help_text="Repeat every point with this many seeds (seed, seed+1, ...)."),
    _option("trials", Optional[int], None, "--trials", help_text="Trials of a search."),
    _option("sampler", Optional[str], None, "--sampler", help_text="grid (with --grid), random or tpe (with --search; "
            "default tpe), seeded by --seed."),
    _option("prune", Optional[bool], None, "--prune/--no-prune", help_text="Stop hopeless or diverged trials early "
            "(default: on for a search, after a third of each trial's steps and 3 finished trials; off for a grid or --seeds)."),
    _option("pruner", Optional[str], None, "--pruner", help_text="median (default) or halving (successive halving)."),
    _option("metric", Optional[str], None, "--metric", help_text="What a trial scores: eval_loss (default), "
            "best_eval_loss or a task metric such as accuracy."),
    _option("direction", Optional[str], None, "--direction", help_text="minimize (default) or maximize."),
    _option("storage", Optional[str], None, "--storage", help_text="Optuna RDB URL shared by several machines, e.g. "
            "postgresql://user@host/db, the password in PGPASSWORD or ~/.pgpass (default: study.db in the sweep folder)."),
    _option("max_trials", int, MAX_TRIALS, "--max-trials", help_text="Refuse a sweep of more trials than this "
            "(grid points x seeds, or trials x seeds)."),
    _option("resume", Optional[str], None, "--resume", help_text="Continue this sweep (name or folder): its stopped "
            "trial from its checkpoint, then the trials not done."),
    _option("workers", int, 1, "--parallel", help_text="Trials side by side, each its own process (one GPU each, "
            "or the CPU threads split between them)."),
    _option("json_rows", bool, False, "--json", help_text="Print the results rows as JSON lines at the end."),
    _option("worker_threads", Optional[int], None, "--worker-threads", help_text="(internal) a --parallel worker's "
            "torch threads.", hidden=True),
]


def sweep_signature() -> inspect.Signature:
    types_by_name = spec_field_types()
    spec_params = [spec_option(f, types_by_name[f.name]) for f in dataclasses.fields(RunSpec) if f.name not in NOT_FLAGS]
    return inspect.Signature(spec_params + SWEEP_PARAMETERS)


def build_sweep(options: dict[str, Any]) -> Any:
    """The sweep spec from --config and the flags, every value checked."""
    spec = read_sweep_toml(options["config"]) if options["config"] else SweepSpec()
    given = {k: v for k, v in spec_overrides(options).items() if k not in ("name", "out")}
    checked = RunSpec(**{**spec.fixed, **given})
    checked.validate(flags=given)  # a bad flag is named as its flag
    spec.fixed.update({k: getattr(checked, k) for k in given})
    flagged: set[str] = set()
    for flag, parse, table in (("--grid", parse_grid_flag, spec.grid), ("--search", parse_search_flag, spec.search)):
        for text in options[flag[2:]]:
            name, values = parse(text)
            if name in flagged:
                raise SpecError(f"{flag} {name} is given twice", fix=f"give each field once, e.g. {flag} {name}=A,B")
            flagged.add(name)
            table[name] = values
    for key in SWEEP_SETTINGS:
        if options[key] is not None:
            setattr(spec, key, options[key])
    spec.study = None  # a new sweep's study is named after its folder, whatever a --config file says
    check_sweep(spec, options["max_trials"])
    return spec


def check_resume_flags(options: dict[str, Any]) -> None:
    given = [k for k in spec_overrides(options) if k != "out"]
    given += [k for k in ("config", "seeds", "trials", "sampler", "prune", "pruner", "metric", "direction")
              if options[k] is not None]
    given += [k for k in ("grid", "search") if options[k]]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise SpecError(f"{flag} cannot be changed when resuming a sweep: its sweep.toml is its spec",
                        fix="drop it (--resume takes --out, --storage, --parallel and --json), or start a new sweep")


def open_sweep(options: dict[str, Any]) -> tuple[Any, bool]:
    """(the Sweep, whether it is new): made from the flags, or the one --resume names."""
    if options["resume"]:
        folder, spec, study = resume_sweep(options)
    else:
        folder, spec, study = new_sweep(options)
    url = storage_url(folder, spec.storage)
    return Sweep(folder=folder, spec=spec, study=study, lock_path=queue_lock(url)), not options["resume"]


def resume_sweep(options: dict[str, Any]) -> tuple[Path, Any, Any]:
    """The sweep --resume names: its folder, its spec, and its study, found from the folder
    (the name in sweep.toml, else the one study in its study.db), never from elsewhere."""
    out = options["out"] or "checkpoints"
    check_resume_flags(options)
    folder = next((p for p in (Path(options["resume"]), Path(out) / options["resume"]) if is_sweep(p)), None)
    if folder is None:
        raise SpecError("no such sweep (no sweep.toml there)", where=options["resume"],
                        fix=f"pass a sweep folder or the name of one under {out}/")
    folder = folder.resolve()
    spec = read_sweep_spec(folder)
    given = options["storage"] or os.environ.get(STORAGE_ENV)
    if given and (options["storage"] or redact(given) == spec.storage):
        spec.storage = given  # the password stays in memory
    if spec.storage is None and not (folder / "study.db").is_file():
        raise SpecError("the sweep has no study.db", where=str(folder),
                        fix="copy its study.db along with it, or pass --storage where its study is")
    url = storage_url(folder, spec.storage)
    name = spec.study or (study_name_in(url) if spec.storage is None else None) or folder.name
    return folder, spec, open_study(spec, name, url, create=False)


def new_sweep(options: dict[str, Any]) -> tuple[Path, Any, Any]:
    """A new sweep: every check first, then its folder, study and sweep.toml. Should the
    study fail, what this call made is removed again (the name stays free)."""
    out = options["out"] or "checkpoints"
    spec = build_sweep(options)
    check_out_dir(out)
    folder = Path(out) / (options["name"] or default_name(spec))
    if is_sweep(folder):
        raise SpecError(f"sweep {folder} exists already", fix=f"continue it with `workbench sweep --resume {folder}`, "
                        "or pick another --name")
    if spec.storage:
        open_storage(spec.storage)  # unreachable, locked, no driver: said before anything is made
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    spec.study = folder.name
    before = set(folder.iterdir())
    try:
        study = open_study(spec, spec.study, storage_url(folder, spec.storage), create=True)
        atomic_write_text(folder / SPEC_FILE, spec.to_toml())
    except BaseException:
        for path in set(folder.iterdir()) - before:  # only what this call made
            path.unlink()
        for path in made:
            if path.exists() and not any(path.iterdir()):
                path.rmdir()
        raise
    return folder, spec, study


def sweep_command(**options: Any) -> None:
    """Run many trials of one spec: a grid (--grid), repeats (--seeds) or a search (--search, --trials).

    Each trial is an ordinary run directory in the sweep folder <out>/<name>/, which also holds
    sweep.toml, the Optuna study (study.db) and results.jsonl/results.csv. Ctrl-C stops the
    current trial with a checkpoint; `workbench sweep --resume SWEEP` continues.
    """
    json_rows = options["json_rows"]
    say_console = err_console if json_rows else None
    try:
        if options["workers"] < 1:
            raise SpecError(f"--parallel must be at least 1, not {options['workers']}", fix="pass --parallel 1 or more")
        sweep, new = open_sweep(options)
        sweep.say = (lambda text: say_console.print(text, markup=False)) if say_console else (lambda text: print(text, flush=True))
        if options["worker_threads"] is None:
            say_header(sweep, new)
        code = run_workers(sweep, options) if options["workers"] > 1 else work_here(sweep, options["worker_threads"])
    except WorkbenchError as error:
        fail(error)
    if options["worker_threads"] is None:
        show_results(sweep, json_rows, code)
    raise SystemExit(code)


def work_here(sweep: Any, threads: int | None) -> int:
    if threads is not None:
        import torch  # torch: loaded on first use

        torch.set_num_threads(max(1, threads))
    try:
        return work(sweep)
    except KeyboardInterrupt:  # Ctrl-C between trials: nothing was training
        return 130


def run_workers(sweep: Any, options: dict[str, Any]) -> int:
    """``--parallel N``: N worker processes on the same study, each taking the next trial.
    One GPU each when there are GPUs, otherwise the CPU cores split between them. Each runs
    in its own session, so Ctrl-C reaches them once, forwarded from here."""
    import torch  # torch: loaded on first use

    workers = options["workers"]
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    threads = max(1, (os.cpu_count() or 1) // workers)
    args = [sys.executable, "-m", "workbench", "sweep", "--resume", str(sweep.folder), "--worker-threads", str(threads)]
    if options["json_rows"]:
        args.append("--json")  # their trial lines to stderr: stdout is for the rows
    procs = []
    for index in range(workers):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        if sweep.spec.storage:
            env[STORAGE_ENV] = sweep.spec.storage  # not on the command line, where ps shows it
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
        procs.append(subprocess.Popen(args, env=env, start_new_session=True))
    sweep.say(f"{workers} workers on {sweep.folder.name}: " + (f"one GPU each ({gpus} visible)" if gpus else f"{threads} CPU threads each"))

    def forward(signum: int, frame: Any) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [proc.wait() for proc in procs]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    stopped = [c for c in codes if c in (129, 130, 143)]
    return stopped[0] if stopped else max(codes, key=abs, default=0)


def say_header(sweep: Any, new: bool) -> None:
    """The sweep's first lines: what it runs, where its study is, and its pruning."""
    spec = sweep.spec
    where = redact(spec.storage) if spec.storage else "study.db"
    sweep.say(f"{'sweep' if new else 'resuming'} {sweep.folder.name}: {spec.trial_count} trials ({spec.sampler_name}), "
              f"{spec.metric} ({spec.direction}), study {sweep.study.study_name} in {where}")
    sweep.say(pruning_line(spec))


def show_results(sweep: Any, json_rows: bool, code: int) -> None:
    rows = refresh_results(sweep)
    if json_rows:
        for row in rows:
            print(json.dumps(row))
    else:
        table = Table(title=f"{sweep.folder.name}: {sweep.spec.metric} ({sweep.spec.direction})")
        for column in ["trial", *sweep.spec.swept, "state", "value", "at step", "reason"]:
            table.add_column(column, overflow="fold")
        for row in rows:
            params = [f"{row['params'].get(k, ''):g}" if isinstance(row["params"].get(k), float) else str(row["params"].get(k, ""))
                      for k in sweep.spec.swept]
            value = "" if row["value"] is None else f"{row['value']:.4f}" + ("" if row["value_is_final"] else " (not final)")
            at = "" if row["value_step"] is None else str(row["value_step"])
            table.add_row(row["name"], *params, row["state"], value, at, row["reason"] or "")
        Console(highlight=False).print(table)
    waiting = waiting_count(sweep.study)
    stopped = sum(row["state"] == "stopped" for row in rows)
    if stopped or waiting:
        err_console.print(f"{stopped} trial(s) stopped, {waiting} not started. Continue with: workbench sweep --resume "
                          f"{sweep.folder}", markup=False, highlight=False)


sweep_command.__signature__ = sweep_signature()  # type: ignore[attr-defined]
