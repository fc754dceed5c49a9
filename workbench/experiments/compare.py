"""Compare runs, or the trials of a sweep: the spec fields that differ and the results.

``collect(targets, out)`` reads run directories (by path or by name under ``out``) or one
sweep folder into a ``Comparison``: one ``CompareRow`` per run or trial, with its state, its
last and best eval loss and the step each comes from (each saying what it covers), its task
metric, parameters, training tokens, FLOPs (6 x parameters x tokens), wall and training time.

A value is shown for what it is: only a completed run's (or trial's) last eval is its final
one. Rows are grouped by objective (a sentiment cross-entropy is not ranked against a
language-model loss); within a group the completed rows come first, sorted by the metric,
then the running, stopped, pruned and failed ones, each with the step its value comes from.
Summaries over seeds and the power-law fit use completed rows of one objective only and say
how many rows they left out and why. A sweep folder (the layout ``workbench sweep`` writes) is::

    <sweep>/sweep.toml      [fixed] spec, [grid] / [search] swept fields, seeds, metric, direction
    <sweep>/results.jsonl   one JSON object per trial: trial, name, run_dir, params, state, reason, value
    <sweep>/t000/ ...       each trial an ordinary run directory

It is read from its files alone (a running sweep is read as it stands; a trial that failed
to start has no run directory and is listed from ``results.jsonl`` with its reason). Every
reader here is as forgiving as ``workbench runs``: what cannot be read is skipped and said.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import RunDirError
from workbench.experiments.scaling import MIN_SIZES, fit_power_law
from workbench.objectives import perplexity
from workbench.runs import sweepdir
from workbench.runs.logcache import EVENTS
from workbench.runs.processes import pid_alive
from workbench.runs.rundir import RunDir, read_jsonl

IGNORED_FIELDS = ("name", "out")
"""Spec fields that always differ between runs and say nothing about them."""

TASK_METRICS = ("accuracy", "macro_f1", "entity_f1", "f1", "exact_match", "nsp_accuracy", "domain_perplexity")
"""Task metrics in the order a row shows the first it has; without one, the perplexity."""

HIGHER_IS_BETTER = ("accuracy", "macro_f1", "entity_f1", "f1", "exact_match", "nsp_accuracy")

FLOPS_COVERS = "6 x parameters x training tokens (forward and backward; attention not counted)"

FINAL_STATES = ("finished", "complete")
"""A run's (or a sweep trial's) state once its final eval is in: only these count in a
summary over seeds and in a scaling fit (a running, stopped or pruned run's last eval is not
its final one, and may be a sample)."""

SIZE_AXES = ("parameters", "flops", "tokens")
"""Sizes a scaling plot can put on its x axis besides a swept field."""


@dataclass
class CompareRow:
    """One run (or one trial of a sweep) and its results. Every loss says what it covers."""

    name: str
    path: str | None
    state: str
    """finished, running, stopped, failed, interrupted, unknown; for a sweep's trial its
    state there (complete, pruned, failed...) when it has one."""
    reason: str = ""
    trial: int | None = None
    spec: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    """The swept fields' values (a sweep's trial), which outrank ``spec``."""
    eval_loss: float | None = None
    """The last eval loss: the final one only when ``is_final``."""
    eval_covers: str = ""
    eval_step: int | None = None
    """The step ``eval_loss`` comes from."""
    best_eval_loss: float | None = None
    best_covers: str = ""
    task_metric: str = ""
    task_value: float | None = None
    task_covers: str = ""
    task_step: int | None = None
    objective: str = ""
    """The run's objective: rows are ranked and fitted only against rows of the same one."""
    parameters: int | None = None
    tokens: int | None = None
    steps: int = 0
    wall_s: float | None = None
    train_s: float | None = None
    value: float | None = None
    """The comparison's metric for this row (what the rows are sorted by)."""
    value_step: int | None = None
    """The step ``value`` comes from (a pruned trial's is where it was pruned)."""
    problems: list[str] = field(default_factory=list)

    @property
    def is_final(self) -> bool:
        """Completed, with an eval: its last eval is its final one."""
        return self.state in FINAL_STATES and self.eval_loss is not None

    @property
    def final_eval_loss(self) -> float | None:
        """The final eval loss: None unless the row is completed (a pruned trial's last loss is not final)."""
        return self.eval_loss if self.is_final else None

    @property
    def flops(self) -> float | None:
        if self.parameters is None or self.tokens is None:
            return None
        return 6.0 * self.parameters * self.tokens

    def field(self, name: str) -> Any:
        """A spec field's value, the swept value first; ``parameters``/``flops``/``tokens`` too."""
        if name in SIZE_AXES:
            return getattr(self, name)
        return self.params[name] if name in self.params else self.spec.get(name)

    def to_json(self, fields: list[str]) -> dict[str, Any]:
        return {
            "trial": self.trial, "name": self.name, "path": self.path, "objective": self.objective, "state": self.state,
            "reason": self.reason, "final": self.is_final, "step": self.value_step,
            "fields": {name: self.field(name) for name in fields},
            "eval_loss": self.eval_loss, "eval_step": self.eval_step, "eval_covers": self.eval_covers,
            "final_eval_loss": self.final_eval_loss, "final_eval_covers": self.eval_covers if self.is_final else "",
            "best_eval_loss": self.best_eval_loss, "best_eval_covers": self.best_covers,
            "task_metric": {"name": self.task_metric, "value": self.task_value, "covers": self.task_covers, "step": self.task_step},
            "parameters": self.parameters, "tokens": self.tokens, "flops": self.flops, "flops_covers": FLOPS_COVERS,
            "steps": self.steps, "wall_s": self.wall_s, "train_s": self.train_s, "value": self.value,
            "problems": self.problems,
        }


@dataclass
class Comparison:
    """Rows to compare, sorted by ``metric`` (best first), and the fields that tell them apart."""

    kind: str
    """``runs`` or ``sweep``."""
    title: str
    rows: list[CompareRow]
    fields: list[str]
    """Spec fields whose values differ between the rows (the swept ones first)."""
    metric: str = "eval_loss"
    direction: str = "minimize"
    swept: list[str] = field(default_factory=list)
    path: str | None = None
    problems: list[str] = field(default_factory=list)
    """What could not be read (the sweep's own files); each row has its own."""

    def groups(self) -> list[str]:
        """The objectives of the rows, in the order first seen: rows are ranked and fitted only within one."""
        return list(dict.fromkeys(row_group(row) for row in self.rows))

    def main_group(self) -> str:
        """The objective with the most completed rows (the first such): what a summary and the default fit are of."""
        groups = self.groups()
        return max(groups, key=lambda g: sum(1 for row in self.rows if row.is_final and row_group(row) == g)) if groups else ""

    def to_json(self, x: str | None = None) -> dict[str, Any]:
        """Everything as JSON: the rows (each with its state, the step its value comes from and
        whether it is final), a sweep's summary over seeds, the scaling points and fit against
        ``x`` of the main objective (``scaling``) and of each objective (``scaling_by_objective``)."""
        return {
            "kind": self.kind, "title": self.title, "path": self.path, "metric": self.metric, "direction": self.direction,
            "fields": self.fields, "swept": self.swept, "problems": self.problems, "objectives": self.groups(),
            "ranked": "within each objective, completed rows first" if len(self.groups()) > 1 else "completed rows first",
            "rows": [row.to_json(self.fields) for row in self.rows],
            "summary": seed_summary(self) if self.kind == "sweep" else None,
            "scaling": scaling_json(scaling_view(self, x)),
            "scaling_by_objective": {group: scaling_json(scaling_view(self, x, group)) for group in self.groups()},
        }


# ---------------------------------------------------------------------------- reading runs
def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _eval_covers(event: dict[str, Any]) -> str:
    coverage = event.get("coverage") or ""
    return f"step {event['step']}: {coverage}" if coverage else f"step {event['step']}"


def _task_metric(summary: dict[str, Any], evals: list[dict[str, Any]], steps: int) -> tuple[str, float | None, str, int | None]:
    """(name, value, what it covers, its step): the final report's task metric, else the last
    eval's, else the perplexity of the last eval loss when it has one (a language-model loss:
    a classification loss's eval has none, and a run from before that was recorded always has
    a task metric of its own)."""
    sources = [(summary.get("metrics"), "final report (whole eval split)", steps)]
    if evals:
        sources.append((evals[-1].get("metrics"), _eval_covers(evals[-1]), evals[-1]["step"]))
    for metrics, covers, step in sources:
        if isinstance(metrics, dict):
            for name in TASK_METRICS:
                value = _finite(metrics.get(name))
                if value is not None:
                    return name, value, covers, step
    if evals and _finite(evals[-1].get("perplexity")) is not None:
        return "perplexity", perplexity(evals[-1]["eval_loss"]), _eval_covers(evals[-1]), evals[-1]["step"]
    return "", None, "", None


def _state(run: RunDir) -> tuple[str, list[str]]:
    status = run.status()
    state = status["status"]
    if state == "running" and status.get("pid") and not pid_alive(status["pid"]):
        state = "interrupted"
    return state, [status["damaged"]] if "damaged" in status else []


def read_run(path: Path, name: str | None = None) -> CompareRow:
    """One run directory as a row, whatever shape it is in (what cannot be read is in ``problems``)."""
    run = RunDir(path)
    row = CompareRow(name=name or path.name, path=str(path), state="unknown")
    try:
        data = run.read_run_toml()
    except RunDirError as error:
        data = {}
        row.problems.append(error.problem)
    row.spec = dict(data.get("spec", {}))
    row.objective = str(row.spec.get("objective", ""))
    row.state, damaged = _state(run)
    log = EVENTS.read_events(run)  # a running run: only its new lines are parsed
    row.problems += damaged + log.problems()
    summary = run.summary()
    _fill_results(row, log.records, summary)
    created = _finite(data.get("meta", {}).get("created"))
    times = [_finite(e.get("time")) for e in log.records]
    times = [t for t in times if t]
    if times:
        start = created if created is not None and created <= times[0] else times[0]
        end = times[-1] if row.state != "running" else max(times[-1], time.time())
        row.wall_s = max(0.0, end - start)
    return row


def _fill_results(row: CompareRow, events: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Losses, task metric, parameters, tokens, steps and training time from the events,
    with ``summary.json`` where the events lack them."""
    evals = [e for e in events if e["event"] == "eval" and e.get("split", "eval") == "eval" and _finite(e["eval_loss"]) is not None]
    steps = [e for e in events if e["event"] == "step"]
    started = [e for e in events if e["event"] == "started"]
    row.steps = max([e["step"] for e in steps] + [e["step"] for e in events if e["event"] == "finished"] + [0])
    if evals:
        row.eval_loss, row.eval_covers, row.eval_step = evals[-1]["eval_loss"], _eval_covers(evals[-1]), evals[-1]["step"]
        best = min(evals, key=lambda e: e["eval_loss"])
        row.best_eval_loss = best["eval_loss"]
        row.best_covers = f"lowest of {len(evals)} evals, at {_eval_covers(best)}"
    elif _finite(summary.get("eval_loss_after")) is not None:
        row.eval_loss, row.eval_step = summary["eval_loss_after"], summary.get("steps") if isinstance(summary.get("steps"), int) else None
        row.eval_covers = summary.get("eval_after_covers") or "final eval (summary.json)"
    row.task_metric, row.task_value, row.task_covers, row.task_step = _task_metric(summary, evals, row.steps)
    if started:
        row.parameters = started[-1]["parameters"]
        row.objective = row.objective or str(started[-1].get("objective") or "")
    tokens = summary.get("tokens") if isinstance(summary.get("tokens"), int) else None
    row.tokens = tokens if tokens is not None else (steps[-1]["tokens"] if steps else None)
    train_s = _finite(summary.get("train_time_s"))
    row.train_s = train_s if train_s is not None else (_finite(steps[-1]["elapsed_s"]) if steps else None)


# ---------------------------------------------------------------------------- sweeps
def is_sweep(path: Path) -> bool:
    return sweepdir.is_sweep(path)


def _result_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"not a JSON object but {type(data).__name__}"
    if not isinstance(data.get("trial"), int) or isinstance(data.get("trial"), bool):
        return "trial is not a number"
    for name, kind in (("name", str), ("run_dir", str), ("state", str), ("reason", str), ("params", dict)):
        if data.get(name) is not None and not isinstance(data[name], kind):
            return f"{name} is not {kind.__name__}"
    return None


def read_sweep_toml(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """``sweep.toml`` as a dict (empty when it is missing), and why it could not be read."""
    return sweepdir.read_sweep_toml(folder)


def swept_fields(config: dict[str, Any]) -> list[str]:
    """The fields a sweep varies: its grid's and its search's, then ``seed`` when repeated."""
    names = []
    for table in ("grid", "search"):
        if isinstance(config.get(table), dict):
            names += [name for name in config[table] if name not in names]
    seeds = config.get("seeds")
    if (isinstance(seeds, list) and len(seeds) > 1) or (isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 1):
        names.append("seed")
    return names


def trial_state(recorded: str, run_state: str) -> str:
    """A trial's state: the run directory's own where it says more than the sweep's record
    (a trial recorded complete or running whose run says stopped, failed or interrupted: its
    process may have died before it could record that), else
    the record's (pruned, failed...), else the run's. A trial without a run is ``missing``
    unless its record says why."""
    if not run_state:  # its folder is gone: only a failure may never have made one
        return "failed" if recorded == "failed" else "missing"
    if run_state in ("stopped", "failed", "interrupted") and recorded in ("complete", "running"):
        return run_state
    return recorded or run_state


def read_sweep(folder: Path) -> Comparison:
    """A sweep folder as a comparison: one row per trial in ``results.jsonl``, plus trial
    folders it does not list yet (a trial that has just started)."""
    config, problems = read_sweep_toml(folder)
    results = read_jsonl(folder / "results.jsonl", _result_problem)
    problems += results.problems()
    latest: dict[int, dict[str, Any]] = {}
    for record in results.records:
        latest[record["trial"]] = record  # a rewrite leaves one per trial; the last wins anyway
    rows, seen = [], set()
    for number, result in sorted(latest.items()):
        path = sweepdir.trial_path(folder, result)  # never outside the folder: a copy reads its own trials
        path = path if sweepdir.is_run(path) else None
        name = result.get("name") or (path.name if path else f"t{number:03d}")
        row = read_run(path, name) if path else CompareRow(name=name, path=None, state="failed")
        row.trial, row.params = number, dict(result.get("params") or {})
        row.state = trial_state(result.get("state") or "", row.state if path else "")
        row.reason = result.get("reason") or ""
        if row.state != "missing" and row.eval_loss is None and _finite(result.get("value")) is not None:  # no eval in its folder
            row.value = result["value"]
            row.value_step = result["step"] if isinstance(result.get("step"), int) and not isinstance(result["step"], bool) else None
        rows.append(row)
        if path is not None:
            seen.add(path.resolve())
    for child in sorted(folder.iterdir()):
        if sweepdir.is_run(child) and child.resolve() not in seen:
            rows.append(read_run(child))
    metric = config.get("metric") if isinstance(config.get("metric"), str) else "eval_loss"
    default_direction = "maximize" if metric in HIGHER_IS_BETTER else "minimize"
    direction = config.get("direction") if config.get("direction") in ("minimize", "maximize") else default_direction
    swept = swept_fields(config)
    return _finish(Comparison("sweep", folder.name, rows, [], metric, direction, swept, str(folder), problems))


# ---------------------------------------------------------------------------- the comparison
def metric_value(row: CompareRow, metric: str) -> tuple[float | None, int | None]:
    """The row's value of ``metric`` and the step it comes from: ``eval_loss`` (the last
    eval's: final only for a completed row), ``best_eval_loss``, ``perplexity``, or a task
    metric by name."""
    if metric in ("eval_loss", "final_eval_loss"):
        return row.eval_loss, row.eval_step
    if metric == "best_eval_loss":
        return row.best_eval_loss, None if row.best_eval_loss is None else _best_step(row)
    if metric == "perplexity" and row.eval_loss is not None and row.task_metric == "perplexity":
        return perplexity(row.eval_loss), row.eval_step
    if metric == row.task_metric:
        return row.task_value, row.task_step
    return None, None


def _best_step(row: CompareRow) -> int | None:
    """The step in ``best_covers`` ("lowest of 3 evals, at step 20: ...")."""
    found = re.search(r"at step (\d+)", row.best_covers)
    return int(found.group(1)) if found else None


def differing_fields(rows: list[CompareRow], first: list[str]) -> list[str]:
    """``first`` (a sweep's swept fields, shown even before their values differ), then the
    fields whose values are not all the same, in the spec's own order."""
    names: list[str] = list(first)
    for row in rows:
        names += [name for name in [*row.params, *row.spec] if name not in names and name not in IGNORED_FIELDS]
    differ = [name for name in names if len({repr(row.field(name)) for row in rows if row.path or name in row.params}) > 1]
    return list(first) + [name for name in differ if name not in first]


def row_group(row: CompareRow) -> str:
    """What a row is ranked and fitted against: rows of the same objective (its loss and metric)."""
    return row.objective or "?"


def _finish(comparison: Comparison) -> Comparison:
    """Fill each row's value and its step, then sort: by objective (the most completed rows
    first), within it the completed rows by the metric (best first), then the others (running,
    stopped, pruned, failed) by the metric, rows without a value last; find the fields that differ."""
    for row in comparison.rows:
        computed, step = metric_value(row, comparison.metric)
        if computed is not None:
            row.value, row.value_step = computed, step
    order = {group: index for index, group in enumerate(
        sorted(comparison.groups(), key=lambda g: -sum(1 for row in comparison.rows if row.is_final and row_group(row) == g)))}
    sign = -1.0 if comparison.direction == "maximize" else 1.0
    comparison.rows.sort(key=lambda r: (order[row_group(r)], not r.is_final, r.value is None,
                                        sign * r.value if r.value is not None else 0.0, r.trial if r.trial is not None else -1, r.name))
    comparison.fields = differing_fields(comparison.rows, comparison.swept)
    return comparison


def find_target(target: str, out: str) -> Path:
    """A run directory or sweep folder by path, or by name under ``out``."""
    for candidate in (Path(target), Path(out) / target):
        if candidate.is_dir() and (is_sweep(candidate) or sweepdir.is_run(candidate)):
            return candidate.resolve()
    raise RunDirError("no run or sweep there (no run.toml, sweep.toml or results.jsonl)", where=target,
                      fix=f"pass a run directory, a sweep folder, or a name listed by `workbench runs --out {out}`")


def collect(targets: list[str], out: str = "checkpoints") -> Comparison:
    """``RUN...`` or one ``SWEEP`` as a comparison (a one-line ``RunDirError`` for a bad path)."""
    if not targets:
        raise RunDirError("nothing to compare", fix="pass run directories or a sweep folder, e.g. workbench compare RUN_A RUN_B")
    paths = [find_target(target, out) for target in targets]
    sweeps = [path for path in paths if is_sweep(path)]
    if sweeps and len(paths) > 1:
        raise RunDirError("a sweep is compared on its own", where=str(sweeps[0]),
                          fix="pass either one sweep folder or several run directories")
    if sweeps:
        return read_sweep(sweeps[0])
    rows = [read_run(path) for path in paths]
    return _finish(Comparison("runs", ", ".join(path.name for path in paths), rows, []))


# ---------------------------------------------------------------------------- summaries
def left_out(rows: list[CompareRow]) -> dict[str, int]:
    """How many rows a summary or fit leaves out, by why: their state (not completed: their
    last value is not final), or ``no eval`` (completed without one)."""
    counts: dict[str, int] = {}
    for row in rows:
        if not row.is_final:
            why = row.state if row.state not in FINAL_STATES else "no eval"
            counts[why] = counts.get(why, 0) + 1
    return counts


def left_out_note(counts: dict[str, int], other_groups: int = 0) -> str:
    """``left out 2 pruned, 1 stopped (not completed)``; empty when nothing was."""
    parts = [f"{count} {why}" for why, count in counts.items()]
    note = f"left out {', '.join(parts)} (not completed: no final value)" if parts else ""
    if other_groups:
        note += ("; " if note else "") + f"{other_groups} row(s) of other objectives are fitted apart"
    return note


def _stats(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values) if values else None, "max": max(values) if values else None}


def seed_summary(comparison: Comparison) -> dict[str, Any]:
    """Mean and spread of the metric over the completed trials of the main objective: per
    configuration over its seeds (``groups``), and per value of each swept field over every
    trial with that value (``fields``); ``left_out`` counts the trials it leaves out, by why."""
    swept = [name for name in comparison.swept if name != "seed"]
    group = comparison.main_group()
    mine = [row for row in comparison.rows if row_group(row) == group]
    scored = [row for row in mine if row.value is not None and row.is_final]
    groups: dict[str, tuple[dict[str, Any], list[float]]] = {}
    for row in scored:
        values = {name: row.field(name) for name in swept}
        groups.setdefault(repr(sorted(values.items(), key=lambda kv: kv[0])), (values, []))[1].append(row.value)
    fields: dict[str, list[dict[str, Any]]] = {}
    for name in swept:
        by_value: dict[str, tuple[Any, list[float]]] = {}
        for row in scored:
            by_value.setdefault(repr(row.field(name)), (row.field(name), []))[1].append(row.value)
        fields[name] = [{"value": value, **_stats(found)} for value, found in by_value.values()]
    counts = left_out(mine)
    return {"metric": comparison.metric, "objective": group, "covers": f"{len(scored)} completed rows",
            "groups": [{"fields": values, **_stats(found)} for values, found in groups.values()],
            "fields": fields, "left_out": counts, "note": left_out_note(counts, len(comparison.rows) - len(mine))}


@dataclass
class ScalingView:
    """What a scaling plot shows: every completed row's (x, final eval loss, name), the best
    per size (the points the law is fitted to) and the fit, or why there is none; for the rows
    of one objective (``group``), with the rows it left out and why."""

    x: str
    points: list[tuple[float, float, str]]
    frontier: list[tuple[float, float, str]]
    frontier_covers: str
    outcome: Any
    log_x: bool
    log_y: bool
    group: str = ""
    left_out: dict[str, int] = field(default_factory=dict)
    other_groups: int = 0
    """Rows of other objectives, never fitted with these."""

    @property
    def note(self) -> str:
        return left_out_note(self.left_out, self.other_groups)


def scaling_json(view: ScalingView) -> dict[str, Any]:
    fit = view.outcome.fit
    return {
        "x": view.x, "y": "final_eval_loss", "objective": view.group, "points": [[x, y] for x, y, _ in view.frontier],
        "points_cover": view.frontier_covers, "left_out": view.left_out, "note": view.note,
        "min_sizes": MIN_SIZES, "reason": view.outcome.reason,
        "fit": None if fit is None else {"a": fit.a, "b": fit.b, "c": fit.c, "rms": fit.rms, "sizes": fit.sizes,
                                         "exact": fit.exact, "formula": fit.formula(view.x)},
    }


def x_choices(comparison: Comparison) -> list[str]:
    """What the x axis can be: parameters, FLOPs, tokens, and every numeric differing field."""
    numeric = [name for name in comparison.fields
               if all(isinstance(row.field(name), (int, float)) and not isinstance(row.field(name), bool)
                      for row in comparison.rows if row.field(name) is not None)
               and any(row.field(name) is not None for row in comparison.rows)]
    return [*SIZE_AXES, *[name for name in numeric if name not in SIZE_AXES]]


def default_x(comparison: Comparison) -> str:
    """Parameters when at least three sizes differ in them, else the first axis that has three."""
    for name in x_choices(comparison):
        if len({row.field(name) for row in comparison.rows if row.field(name) is not None and row.is_final}) >= 3:
            return name
    return "parameters"


def scaling_view(comparison: Comparison, x: str | None = None, group: str | None = None) -> ScalingView:
    """The final eval loss against ``x`` (default ``default_x``) of the completed rows of one
    objective (``group``, default the main one), with ``L = a * X^-b + c`` fitted to the best
    configuration at each size (the mean over its seeds)."""
    x = x or default_x(comparison)
    group = group if group is not None else comparison.main_group()
    mine = [row for row in comparison.rows if row_group(row) == group]
    final = [row for row in mine if row.is_final and _finite(row.field(x)) is not None]
    points = [(float(row.field(x)), row.eval_loss, row.name) for row in final]
    others = [name for name in comparison.swept if name not in (x, "seed")]
    configs: dict[tuple, list[float]] = {}
    for row in final:
        key = (float(row.field(x)), repr([row.field(name) for name in others]) if others else row.name if comparison.kind == "runs" else "")
        configs.setdefault(key, []).append(row.eval_loss)
    best: dict[float, tuple[float, str]] = {}
    for (size, config), losses in configs.items():
        mean = statistics.fmean(losses)
        if size not in best or mean < best[size][0]:
            best[size] = (mean, config)
    frontier = [(size, loss, config) for size, (loss, config) in sorted(best.items())]
    covers = "final eval loss of the best completed configuration at each size" + (", mean over its seeds" if "seed" in comparison.swept else "")
    if len(comparison.groups()) > 1:
        covers += f", {group} runs only"
    outcome = fit_power_law([p[0] for p in frontier], [p[1] for p in frontier])
    positive = bool(points) and all(p[0] > 0 for p in points)
    return ScalingView(x, points, frontier, covers, outcome, log_x=positive, log_y=positive and all(p[1] > 0 for p in points),
                       group=group, left_out=left_out(mine), other_groups=len(comparison.rows) - len(mine))


# ---------------------------------------------------------------------------- cells
def fmt_number(value: Any) -> str:
    """A count in human units (23.4k, 1.2M, 359T FLOPs), a float as ``%g``, anything else as text."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if abs(value) >= 1e21:
        return f"{value:.3g}"
    for size, unit in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}" if minutes else f"{seconds:.1f}s"


def fmt_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


VALUE_COLUMNS = ("value", "step", "state")
"""Right after the name (and the objective): the comparison's metric (headed by its name,
``eval loss``), the step it comes from and the row's state, so that no number of differing
fields pushes them out of a narrow view."""

RESULT_COLUMNS = ("best eval", "metric", "params", "tokens", "FLOPs", "time")
"""The result columns after the differing fields."""

LEFT_OUT_FIRST = ("best eval", "tokens", "time", "metric", "FLOPs", "params")
"""Result columns left out when the table does not fit, least useful first (then the
differing fields from the last; never the name, the state, the step or the value: a long
state wraps instead)."""

STATE_WIDTH = 24
"""A state with its reason is cut to this in a table (the whole reason is in ``--json``)."""


def value_header(comparison: Comparison) -> str:
    return "eval loss" if comparison.metric in ("eval_loss", "final_eval_loss") else comparison.metric.replace("_", " ")


def state_cell(row: CompareRow) -> str:
    """``complete``, ``pruned: pruned at step 2: eval…``: the reason cut to ``STATE_WIDTH``."""
    text = row.state + (f": {row.reason}" if row.reason and not row.is_final else "")
    return text if len(text) <= STATE_WIDTH else text[: STATE_WIDTH - 1] + "…"


def table_cells(comparison: Comparison) -> tuple[list[str], list[dict[str, str]]]:
    """The comparison as plain-text cells: (columns, one dict per row). ``value`` is the
    comparison's metric at ``step`` (final only where the state says complete or finished),
    ``metric`` the task metric (``accuracy 0.812``; ``ppl`` for a language model's
    perplexity), ``time`` the wall time. With several objectives an ``objective`` column
    comes after the name."""
    grouped = len(comparison.groups()) > 1
    fields = [name for name in comparison.fields if not (grouped and name == "objective")]
    columns = ["name", *(["objective"] if grouped else []), *VALUE_COLUMNS, *fields, *RESULT_COLUMNS]
    cells = []
    for row in comparison.rows:
        metric = "-" if row.task_value is None else f"{'ppl' if row.task_metric == 'perplexity' else row.task_metric} {row.task_value:.4g}"
        value = "-" if row.value is None else f"{row.value:.4f}"
        cell = {"name": row.name, "objective": row_group(row), **{name: fmt_number(row.field(name)) for name in fields},
                "state": state_cell(row), "step": "-" if row.value_step is None else str(row.value_step), "value": value,
                "best eval": fmt_loss(row.best_eval_loss), "metric": metric, "params": fmt_number(row.parameters),
                "tokens": fmt_number(row.tokens), "FLOPs": fmt_number(row.flops), "time": fmt_seconds(row.wall_s)}
        cells.append(cell)
    return columns, cells


def groups_line(comparison: Comparison) -> str:
    """One line when the rows are of several objectives: they are ranked and fitted apart; empty otherwise."""
    groups = comparison.groups()
    if len(groups) < 2:
        return ""
    return (f"{len(groups)} objectives ({', '.join(groups)}): their losses are not comparable, so rows are ranked "
            "within each objective and a power law is fitted to one objective's rows only")


SYMBOLS = {"parameters": "N", "flops": "C", "tokens": "D"}
"""The usual letters of the scaling-law literature for the sizes."""


def fit_line(view: ScalingView) -> str:
    """The fit in one line (``L = 40 * N^-0.350 + 1.84, N = parameters: exponent 0.350 (3 sizes, exact fit)``),
    or why there is none; with the rows left out and why."""
    fit = view.outcome.fit
    note = f"; {view.note}" if view.note else ""
    if fit is None:
        return f"no power law for final eval loss vs {view.x}: {view.outcome.reason}{note}"
    symbol = SYMBOLS.get(view.x, view.x)
    named = f", {symbol} = {view.x}" if symbol != view.x else ""
    quality = "exact fit" if fit.exact else f"rms {fit.rms:.4f}"
    return f"{fit.formula(symbol)}{named}: exponent {fit.b:.3f} ({fit.sizes} sizes, {quality}){note}"


def list_targets(root: Path) -> list[tuple[str, Path]]:
    """What can be compared under a run root: ``("sweep", folder)`` for each sweep folder,
    then ``("run", folder)`` for each run, each group by name. Cheap: no file is read."""
    try:
        children = sorted(child for child in root.iterdir() if child.is_dir())
    except OSError:
        return []
    sweeps = [("sweep", child) for child in children if is_sweep(child)]
    runs = [("run", child) for child in children if not is_sweep(child) and sweepdir.is_run(child)]
    return sweeps + runs
