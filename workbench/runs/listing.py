"""Listing runs: every run under a run root, and every sweep's trials grouped under it.

A row says what a run is and how far it got (``run_row``), read through ``RunDir`` so a
damaged run is listed as damaged, never dropped.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import RunDirError
from workbench.runs import sweepdir
from workbench.runs.events import probe_line_problem
from workbench.runs.logcache import EVENTS
from workbench.runs.processes import pid_alive
from workbench.runs.rowcache import MEMORY, RowCache, run_stamp
from workbench.runs.rundir import RUN_FILES, RunDir, base_problem, created_problem, is_time, read_jsonl


@dataclass
class RunRow:
    """One line of ``workbench runs`` and the TUI's Runs table."""

    name: str
    path: str
    objective: str
    corpus: str
    base: str
    steps: int
    total_steps: int
    best_eval_loss: float | None
    status: str
    """What the status column shows: ``state``, or ``damaged: <reasons> (state)``."""
    created: float
    extra: dict = field(default_factory=dict)
    state: str = ""
    """running, finished, stopped, failed, interrupted or unknown, damaged or not."""
    problems: list[str] = field(default_factory=list)
    """Why the run is damaged (files or lines that could not be read); empty when it is not."""
    method: str = "full"
    """How it trained from its base: full, lora or frozen (``RunSpec.method``)."""
    kept_steps: list[int] = field(default_factory=list)
    """Checkpoints kept out of rotation (``keep_steps``) that exist now: bases ``RUN@STEP``."""
    sweep: str | None = None
    """The sweep folder (its name under the run root) that holds this run as a trial; None for a run of its own."""
    trial: int | None = None
    """The trial's number in its sweep (from its folder name, ``t007`` -> 7), None when it has none."""


def _progress(events: list[dict[str, Any]]) -> tuple[int, int, float | None]:
    """(step reached, total steps, best eval loss) from checked events."""
    steps, total, best = 0, 0, None
    for event in events:
        kind = event["event"]
        if kind == "step":
            steps, total = event["step"], event["total_steps"]
        elif kind == "eval" and event.get("split", "eval") == "eval":
            loss = event["eval_loss"]
            if math.isfinite(loss) and (best is None or loss < best):
                best = loss
        elif kind == "started":
            total = event["total_steps"]
        elif kind == "finished":
            steps = event["step"]
    return steps, total, best


def _mtime(path: Path) -> float:
    """A file's modification time, or 0.0 when it has none a date can show."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return 0.0
    return mtime if is_time(mtime) else 0.0


def run_facts(run: RunDir) -> dict[str, Any]:
    """What a row says that is read from the run's files (``rowcache.FACT_TYPES``): all of it
    but what must be checked live (is a "running" run's pid alive, which kept checkpoints exist)."""
    toml_problems: list[str] = []
    try:
        data = run.read_run_toml()
    except RunDirError as error:
        data = {}
        toml_problems.append("run.toml is missing" if not run.run_toml.exists() else f"run.toml: {error.problem.split(' (')[0]}")
    spec, meta = data.get("spec", {}), data.get("meta", {})
    meta_problem = (created_problem(meta) or base_problem(meta)) if data else None
    if meta_problem:
        toml_problems.append(f"run.toml: {meta_problem}")
    status = run.status()
    log = EVENTS.read_events(run)  # a running run: only its new lines are parsed
    steps, total, best = _progress(log.records)
    kept = data.get("kept")
    kept = kept.get("steps") if isinstance(kept, dict) else None
    return {
        "objective": spec.get("objective", "?"), "corpus": spec.get("corpus", "?"), "base": spec.get("base", ""),
        "method": str(spec.get("method", "full")),
        "created": float(meta["created"]) if "created" in meta and not created_problem(meta) else _mtime(run.run_toml),
        "toml_problems": toml_problems, "status": status["status"], "pid": status.get("pid"),
        "status_problem": status.get("damaged"), "steps": steps, "total_steps": total, "best": best,
        "log_problems": log.problems() + read_jsonl(run.probes_file, probe_line_problem).problems(),
        "kept": [step for step in kept if isinstance(step, int) and not isinstance(step, bool) and step > 0]
        if isinstance(kept, list) else [],
    }


def row_from_facts(path: Path, facts: dict[str, Any]) -> RunRow:
    """The row of the run at ``path`` from its ``run_facts``, with what must be live checked now:
    a "running" run whose pid is gone is "interrupted", and only kept checkpoints that exist count."""
    problems = list(facts["toml_problems"])
    if facts["status_problem"]:
        problems.append(facts["status_problem"])
    problems += facts["log_problems"]
    state = facts["status"]
    if state == "running" and facts["pid"] and not pid_alive(facts["pid"]):
        state = "interrupted"
    label = state
    if problems:
        label = f"damaged: {'; '.join(problems)}" + (f" ({state})" if state != "unknown" else "")
    return RunRow(
        name=path.name, path=str(path), objective=facts["objective"], corpus=facts["corpus"], base=facts["base"],
        steps=facts["steps"], total_steps=facts["total_steps"], best_eval_loss=facts["best"], status=label,
        created=facts["created"], state=state, problems=problems, method=facts["method"],
        kept_steps=kept_steps(path, {"steps": facts["kept"]}) if facts["kept"] else [],
    )


def run_row(run: RunDir) -> RunRow:
    """One row, whatever shape the run is in: a file that cannot be read or trusted makes
    the status ``damaged: <reason>`` instead of hiding the run (or, by raising, every run
    under the root)."""
    return row_from_facts(run.path, run_facts(run))


def _is_run_folder(path: Path) -> bool:
    try:
        return path.is_dir() and any(os.path.lexists(path / name) for name in RUN_FILES)
    except OSError:
        return False


def _damaged_row(path: Path, why: str) -> RunRow:
    """The row of a run folder that could not be read at all."""
    return RunRow(name=path.name, path=str(path), objective="?", corpus="?", base="", steps=0, total_steps=0,
                  best_eval_loss=None, status=f"damaged: {why}", created=_mtime(path), state="unknown", problems=[why])


_TRIAL_NAME = re.compile(r"t(\d+)")


def _resolved(folder: Path, parent: Path | None) -> Path:
    """``folder`` resolved; given its ``parent`` already resolved, a folder that is no link is
    just the parent joined with its name (no ``realpath`` walk for each of 1,000 runs)."""
    if parent is not None and not os.path.islink(folder):
        return parent / folder.name
    return folder.resolve()


def _resolved_parent(folder: Path) -> Path | None:
    """``folder`` resolved, or None when it cannot be (each run under it then resolves itself)."""
    try:
        return folder.resolve()
    except (OSError, RuntimeError):
        return None


def _listed_row(folder: Path, cache: RowCache | None, parent: Path | None = None) -> RunRow:
    """A run's row, its facts from ``cache`` when its files have not changed since they were
    read; ``parent``: the folder holding it, resolved already."""
    try:
        path = _resolved(folder, parent)
        stamp = run_stamp(path) if cache is not None else None
        facts = cache.get(str(path), stamp) if cache is not None and stamp is not None else None
        if facts is None:
            facts = run_facts(RunDir(path))
            if cache is not None and stamp is not None:  # stamped before reading: a change meanwhile is read next time
                cache.put(str(path), stamp, facts)
        return row_from_facts(path, facts)
    except (OSError, RuntimeError) as exc:  # a folder removed or made unreadable while listing, a link loop
        return _damaged_row(folder, f"unreadable ({getattr(exc, 'strerror', None) or exc})")


def _trial_rows(sweep: Path, cache: RowCache | None) -> list[RunRow]:
    """A sweep's trials (its run folders), in trial order; each named ``<sweep>/<trial>``, a
    path under the run root that every command takes as a run name."""
    try:
        children = sorted(child for child in sweep.iterdir() if _is_run_folder(child))
    except OSError as exc:
        return [_damaged_row(sweep, f"sweep folder unreadable ({exc.strerror or exc})")]
    parent = _resolved_parent(sweep)
    rows = []
    for child in children:
        row = _listed_row(child, cache, parent)
        number = _TRIAL_NAME.fullmatch(child.name)
        row.name, row.sweep, row.trial = f"{sweep.name}/{child.name}", sweep.name, int(number.group(1)) if number else None
        rows.append(row)
    rows.sort(key=lambda r: (r.trial is None, r.trial or 0, r.name))
    return rows


def list_runs(out: str = "checkpoints", cache: RowCache | None = MEMORY) -> list[RunRow]:
    """Every run under ``out``, newest first, and every sweep's trials together (trial order),
    the sweep placed by its newest trial; a damaged run is listed as damaged, never dropped.
    A run's files are read only when they changed since ``cache`` last read them (this
    process's ``MEMORY`` unless told; None: read everything)."""
    root = Path(out)
    if not root.is_dir():
        return []
    try:
        children = sorted(root.iterdir())
    except OSError as exc:
        raise RunDirError(f"cannot list the run root ({exc.strerror or exc})", where=out, fix="check its permissions") from None
    parent = _resolved_parent(root)
    groups: list[list[RunRow]] = []
    for child in children:
        if _is_run_folder(child):
            groups.append([_listed_row(child, cache, parent)])
        elif sweepdir.is_sweep(child) and not _is_run_folder(child):
            trials = _trial_rows(child, cache)
            groups += [trials] if trials else []
    groups.sort(key=lambda rows: max(r.created for r in rows), reverse=True)
    return [row for rows in groups for row in rows]


def refresh_running(rows: list[RunRow], cache: RowCache | None = MEMORY) -> list[RunRow]:
    """``rows`` (a ``list_runs`` result) with each running run read again, the others as they
    are: what a poll needs while runs are running and no run folder has come, gone or changed
    status (reading 1,000 rows again every few seconds would keep a core busy)."""
    fresh = []
    for row in rows:
        if row.state == "running":
            again = _listed_row(Path(row.path), cache)
            again.name, again.sweep, again.trial = row.name, row.sweep, row.trial
            row = again
        fresh.append(row)
    return fresh


def kept_steps(path: Path, kept: Any) -> list[int]:
    """``[kept] steps`` of ``run.toml`` whose checkpoint folder is there now."""
    steps = kept.get("steps") if isinstance(kept, dict) else None
    if not isinstance(steps, list):
        return []
    return sorted(step for step in steps if isinstance(step, int) and not isinstance(step, bool) and step > 0
                  and (path / "checkpoints" / f"step-{step:07d}" / "config.json").is_file())
