"""Run a sweep's trials in this process, one after another, through the engine.

Each trial is an ordinary ``TrainingRun`` in ``<sweep>/tNNN/`` with two listeners: a
``TrialWatch`` that reports every eval to Optuna and stops the run (with its checkpoint)
when the pruner calls it hopeless or the loss has diverged, and the stop signals, so that
Ctrl-C stops the trial with a checkpoint and then the sweep (exit 130), leaving the trial
RUNNING in the study and ``stopped`` in the results; ``--resume`` continues it from its
checkpoint. A trial that fails (a bad value, out of memory, NaN) is told to Optuna as
FAIL with its one-line reason, and the sweep goes on.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench.config import RunSpec
from workbench.errors import WorkbenchError
from workbench.runs.control import RunControl
from workbench.runs.events import EvalDone, Event, RunStarted, event_from_json
from workbench.runs.rundir import RunDir
from workbench.runs.signals import install_stop_signals
from workbench.runs.sweepdir import relative_run_dir, trial_path
from workbench.sweep.results import iso, study_rows, write_results
from workbench.sweep.spec import SweepSpec
from workbench.sweep.study import frozen_trial, make_pruner, reopen, resumable, take_next

if TYPE_CHECKING:
    from workbench.config import RunSpec

DIVERGED = 1.5
"""A minimised eval loss above this many times the loss before training: the run diverged."""
BUSY = "another process is writing this run"


@dataclass
class Sweep:
    folder: Path
    spec: SweepSpec
    study: Any
    lock_path: Path | None = None
    say: Callable[[str], None] = print
    """Where the one line per trial start and end goes."""


@dataclass
class Outcome:
    state: str
    """complete, pruned, failed, stopped, or skipped (another process holds the trial)."""
    reason: str | None = None
    value: float | None = None
    step: int | None = None
    exit_code: int | None = None


@dataclass
class TrialWatch:
    """Listener: report evals to Optuna; stop the run when it is hopeless or diverged."""

    trial: Any
    spec: SweepSpec
    control: Any
    reported: set = field(default_factory=set)
    before: float | None = None
    verdict: tuple[str, str] | None = None
    last: tuple[int, float] | None = None
    total_steps: int = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.total_steps = event.total_steps
            if self.spec.pruning and hasattr(self.trial, "study"):  # warm-up: a third of this trial's steps

                self.trial.study.pruner = make_pruner(self.spec, event.total_steps)
        if not isinstance(event, EvalDone) or event.split != "eval" or self.verdict is not None:
            return
        value = metric_of_eval(event, self.spec.metric)
        if value is None:
            return
        if event.step == 0:
            self.before = value
            return
        self.last = (event.step, value)
        if self.spec.pruning and self._diverged(event.step, value):
            return
        if event.step in self.reported:
            return
        self.trial.report(value, event.step)
        self.reported.add(event.step)
        at_end = bool(self.total_steps) and event.step >= self.total_steps  # the run is done: nothing left to save
        if self.spec.pruning and not at_end and self.trial.should_prune():
            self.verdict = ("pruned", f"pruned at step {event.step}: {self.spec.metric} {value:.4g} is behind the other trials")
            self.control.request_stop("pruned")

    def _diverged(self, step: int, value: float) -> bool:
        limit = None if self.before is None else DIVERGED * self.before
        worse = not math.isfinite(value) or (self.spec.direction == "minimize" and limit is not None and value > limit)
        if worse:
            before = f", above {self.before:.4g} before training" if self.before is not None else ""
            self.verdict = ("failed", f"diverged: {self.spec.metric} {value:.4g} at step {step}{before}; lower the learning rate")
            self.control.request_stop("diverged")
        return worse


def metric_of_eval(event: EvalDone, metric: str) -> float | None:
    value = event.eval_loss if metric in ("eval_loss", "best_eval_loss") else event.metrics.get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def metric_of_summary(summary: dict[str, Any], metric: str) -> float | None:
    value = {"eval_loss": summary.get("eval_loss_after")}.get(metric, summary.get(metric))
    if value is None:
        value = (summary.get("metrics") or {}).get(metric)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


# ---------------------------------------------------------------------- one trial
def suggest(trial: Any, spec: SweepSpec) -> dict[str, Any]:
    """The trial's swept values: a grid point's (queued), a search's (sampled now), the seed."""
    params: dict[str, Any] = {}
    for name, values in spec.grid.items():
        params[name] = trial.suggest_categorical(name, values)
    for name, dist in spec.distributions().items():
        if dist.kind == "choice":
            params[name] = trial.suggest_categorical(name, dist.choices)
        elif dist.kind == "int":
            params[name] = trial.suggest_int(name, dist.low, dist.high)
        else:
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.kind == "loguniform")
    if spec.seeds > 1:
        params["seed"] = trial.suggest_categorical("seed", spec.seed_values)
    return params


def record(sweep: Sweep, trial: Any, **attrs: Any) -> None:
    """Store the trial's sweep attributes in the study, then rewrite the results table."""
    for key, value in {**attrs, "updated": iso(None)}.items():
        trial.set_user_attr(key, value)
    refresh_results(sweep)


def refresh_results(sweep: Sweep) -> list[dict[str, Any]]:
    rows = study_rows(sweep.study, sweep.folder, sweep.spec.swept)
    write_results(sweep.folder, rows, sweep.spec.swept)
    return rows


def run_trial(sweep: Sweep, trial: Any, resume_dir: Path | None = None) -> Outcome:
    """Run (or continue) one trial to its end; tell Optuna how it ended."""
    name = f"t{trial.number:03d}"
    try:
        params = suggest(trial, sweep.spec)
        spec = sweep.spec.run_spec(params, out=str(sweep.folder), name=name)
    except WorkbenchError as error:
        return finish(sweep, trial, Outcome("failed", error.one_line()))
    shown = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    sweep.say(f"{name} {'resumed' if resume_dir else 'started'}  {shown}")
    record(sweep, trial, state="running", run_dir=relative_run_dir(sweep.folder, resume_dir or sweep.folder / name), reason=None)
    outcome = train(sweep, trial, spec, resume_dir)
    if outcome.state == "skipped":
        return outcome
    outcome = finish(sweep, trial, outcome)
    value = "" if outcome.value is None else f" {sweep.spec.metric} {outcome.value:.4g}"
    step = "" if outcome.step is None else f" at step {outcome.step}"
    sweep.say(f"{name} {outcome.state}{value}{step}{f' ({outcome.reason})' if outcome.reason else ''}")
    return outcome


def train(sweep: Sweep, trial: Any, spec: RunSpec, resume_dir: Path | None) -> Outcome:
    """The trial's training run, with pruning and Ctrl-C; its outcome (not yet told)."""
    from workbench.engine.runner import TrainingRun  # loads torch: only when used

    control = RunControl()
    watch = TrialWatch(trial, sweep.spec, control, reported=set(frozen_trial(sweep.study, trial.number).intermediate_values))
    finished = finished_summary(resume_dir)
    if finished is not None:  # it had ended before its end was recorded
        return ended(sweep, finished, watch)
    if resume_dir is not None:
        watch.before = loss_before(resume_dir, sweep.spec.metric)
        run = TrainingRun(RunSpec(out=str(sweep.folder)), listeners=[watch], control=control, resume=resume_dir)
    else:
        run = TrainingRun(spec, listeners=[watch], control=control)
    in_main = threading.current_thread() is threading.main_thread()
    signals = install_stop_signals(control, wait_for_checkpoint=True, hangup_deadline_s=10.0) if in_main else None
    if signals is not None:
        run.listeners.append(signals)
    try:
        result = run.run()
        outcome = ended(sweep, result.summary, watch, result.step)
    except WorkbenchError as error:
        state = "skipped" if BUSY in error.problem else "failed"
        outcome = Outcome(state, error.one_line(), step=run.step or None)
    except Exception as error:  # noqa: BLE001 - a bug in one trial must not end the sweep
        outcome = Outcome("failed", f"{type(error).__name__}: {error}".splitlines()[0][:300], step=run.step or None)
    finally:
        if signals is not None and signals.exit_code is None:
            signals.restore()
        elif signals is not None:
            signals.ignore_further()  # the run has saved: a second signal changes nothing now
        if run.run_dir is not None:
            trial.set_user_attr("run_dir", relative_run_dir(sweep.folder, run.run_dir.path))
    if signals is not None and signals.exit_code is not None:
        outcome.exit_code = signals.exit_code
        if outcome.state not in ("failed", "skipped"):
            outcome = Outcome("stopped", f"stopped by {signals.name} at step {run.step}; resume the sweep to continue it",
                              watch.last[1] if watch.last else None, run.step, signals.exit_code)
    return outcome


def loss_before(run_dir: Path, metric: str) -> float | None:
    """A resumed trial's metric before training (its step-0 eval), for the divergence check."""
    for data in RunDir(run_dir).events():
        event = event_from_json(data)
        if isinstance(event, EvalDone) and event.step == 0 and event.split == "eval":
            return metric_of_eval(event, metric)
    return None


def finished_summary(run_dir: Path | None) -> dict[str, Any] | None:
    """A resumed trial whose run had already finished: its summary (nothing to train)."""
    if run_dir is None:
        return None

    run = RunDir(run_dir)
    summary = run.summary() if run.summary_file.is_file() else {}
    return summary if run.status().get("status") == "finished" and summary.get("status") == "finished" else None


def ended(sweep: Sweep, summary: dict[str, Any], watch: TrialWatch, step: int | None = None) -> Outcome:
    step = step if step is not None else summary.get("steps")
    if watch.verdict is not None:
        state, reason = watch.verdict
        value = watch.last[1] if watch.last and state == "pruned" else None
        return Outcome(state, reason, value, step)
    value = metric_of_summary(summary, sweep.spec.metric)
    if value is None:
        return Outcome("failed", f"the run ended without a finite {sweep.spec.metric}", step=step)
    return Outcome("complete", None, value, step)


def finish(sweep: Sweep, trial: Any, outcome: Outcome) -> Outcome:
    """Tell Optuna (a stopped trial stays RUNNING, to be resumed) and record the row."""
    from optuna.trial import TrialState  # optuna: loaded on first use

    attrs: dict[str, Any] = {"state": outcome.state, "reason": outcome.reason, "updated": iso(None)}
    if outcome.step is not None:
        attrs["step"] = outcome.step
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if outcome.state == "complete":
        sweep.study.tell(trial, outcome.value)
    elif outcome.state == "pruned":
        sweep.study.tell(trial, state=TrialState.PRUNED)
    elif outcome.state == "failed":
        sweep.study.tell(trial, state=TrialState.FAIL)
    refresh_results(sweep)
    return outcome


# ---------------------------------------------------------------------- the loop
def work(sweep: Sweep) -> int:
    """Resume this sweep's stopped trials, then take queued ones until none is left.
    Returns the exit code: 0, or 128 + the signal that stopped it."""
    for number in [t.number for t in resumable(sweep.study)]:
        trial = reopen(sweep.study, number, sweep.spec)
        if trial is None:  # another process took it or finished it meanwhile
            continue
        path = trial_path(sweep.folder, {"trial": number, "run_dir": frozen_trial(sweep.study, number).user_attrs.get("run_dir")})
        resume_dir = path if (path / "run.toml").is_file() else None  # in this folder only, whatever was stored
        outcome = run_trial(sweep, trial, resume_dir)
        if outcome.exit_code is not None:
            return outcome.exit_code
    while True:
        trial = take_next(sweep.study, sweep.lock_path, sweep.spec)
        if trial is None:
            return 0
        outcome = run_trial(sweep, trial)
        if outcome.exit_code is not None:
            return outcome.exit_code
