"""The training run: set up, evaluate, step, log, evaluate, save, finish.

``TrainingRun.train`` is the whole story on one screen; each concern has one home:
set-up (``setup.py``), one optimizer step with accumulation and out-of-memory retry
(``stepping.py``), NaN/Inf (``guard.py``), tokens/s and time (``meter.py``), evals and their
hooks (``evaluation.py``, ``hooks.py``), checkpoints and the final model (``saving.py``),
and what differs between one process, DDP and FSDP (``strategy.py``).

The loop is hand-written over Accelerate (device placement, mixed precision, DDP under
torchrun, ``backward``) rather than transformers' Trainer, because the workbench needs
what Trainer does not give: pickle-free atomic checkpoints, exact resume (data order and
masking are functions of (seed, step)), a per-step NaN check, cooperative stop/pause from
another thread, and no per-step host sync beyond what a hand-written loop has (the loss
is read once per ``log_interval``).
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from workbench.config import RunSpec
from workbench.corpora import cache, progress
from workbench.engine import distributed
from workbench.engine.distributed import lost_a_peer
from workbench.engine.evaluation import Evaluator
from workbench.engine.guard import NonFiniteGuard
from workbench.engine.hooks import HookFactory, default_eval_hooks
from workbench.engine.lr_find import settle_auto
from workbench.engine.meter import LossWindow, ThroughputMeter
from workbench.engine.saving import Saver
from workbench.engine.setup import RunState, set_up
from workbench.engine.stepping import Stepper, StepResult
from workbench.errors import TrainingError, WorkbenchError
from workbench.methods import trainable_count
from workbench.models import parameter_count
from workbench.objectives import perplexity
from workbench.runs.control import RunControl
from workbench.runs.events import Event, Listener, Message, Preparing, RunFailed, RunFinished, RunStarted, StepLogged
from workbench.runs.failed_start import discard_failed_start
from workbench.runs.reporting import check_reporters, open_reporters
from workbench.runs.rundir import MetricsWriter, RunDir

DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
"""Write failures that are the disk's fault, reported as one-line errors instead of tracebacks."""


@dataclass
class RunResult:
    status: str
    run_dir: Path
    model_dir: Path
    step: int
    summary: dict = field(default_factory=dict)


class TrainingRun:
    """One run of one spec. Create it, then call ``run()`` (blocking; any thread)."""

    def __init__(self, spec: RunSpec | None = None, *, listeners: Iterable[Listener] = (), control: RunControl | None = None,
                 resume: str | Path | None = None, overrides: dict[str, Any] | None = None, hooks: HookFactory = default_eval_hooks):
        """``overrides`` (with ``resume`` only): the settings this resume changes, e.g.
        ``{"max_steps": 400}`` (``config.RESUME_OVERRIDES``); ``run.toml`` keeps the original."""
        if spec is None and resume is None:
            raise ValueError("give a spec or a run to resume")
        if overrides and resume is None:
            raise ValueError("overrides change a resumed run; a new run takes them in its spec")
        self.spec_in = spec
        self.resume_from = resume
        self.overrides = dict(overrides or {})
        self.out = spec.out if spec is not None else "checkpoints"
        self.listeners: list[Listener] = list(listeners)
        self.control = control or RunControl()
        self.make_hooks = hooks
        self.run_dir: RunDir | None = None
        self.state: RunState | None = None
        self.stepper: Stepper | None = None
        self.is_main = True
        self._writer: MetricsWriter | None = None
        self._reporters: list[Any] = []
        """``--report-to``'s TensorBoard or trackio writers (``reporting.py``); the extra is checked here, before set-up."""
        if spec is not None:
            check_reporters(spec.report_to)

    @property
    def step(self) -> int:
        return self.stepper.step if self.stepper is not None else 0

    def emit(self, event: Event) -> None:
        if not self.is_main:
            return
        if self._writer is not None:
            self._writer(event)
        for reporter in self._reporters:
            reporter(event)
        for listener in self.listeners:
            listener(event)

    # ------------------------------------------------------------------ the loop
    def train(self) -> RunResult:
        with cache.notices_to(lambda text: self.emit(Message(text=text))), \
                progress.reported_to(lambda stage, fraction: self.emit(Preparing(stage=stage, fraction=fraction))):
            s = set_up(self.spec_in, self.resume_from, self.out, self.emit, on_run_dir=self._opened, overrides=self.overrides,
                       settle_lr=settle_auto)
        self.state, spec = s, s.spec
        if s.strategy.is_main:
            self._writer = MetricsWriter(s.run_dir.metrics)
            self._reporters = open_reporters(spec.runtime.report_to, s.run_dir.path, spec.to_dict())
        scaler_active = getattr(s.accelerator, "scaler", None) is not None
        guard = NonFiniteGuard(spec, s.accelerator.device, scaler_active, int(s.saved.get("nonfinite_skips", 0)), s.start_step, self.emit)
        meter = ThroughputMeter(int(s.saved.get("tokens_seen", 0)), s.start_step, spec.train.time_budget, float(s.saved.get("train_time_s", 0.0)))
        saver = Saver(s, guard, meter, self.emit)
        hooks = self.make_hooks(spec, s.task, s.tokenizer, s.run_dir, self.emit) if s.strategy.is_main else []
        evaluate, self.stepper = Evaluator(s, guard, hooks, self.emit), Stepper(s, guard, saver.checkpoint, self.emit)
        stepper, losses = self.stepper, LossWindow(s.accelerator.device)
        self._announce(s)
        if s.resumed_from is None:
            saver.initial()  # the untrained start, kept out of rotation: what `inspect` compares with
            s.progress.before = evaluate(stepper.step)
        status, ended_by = "finished", ""
        while not s.plan.finished(stepper.step):
            meter.paused(self.control.wait_while_paused())
            at_boundary = (stepper.step - s.start_step) % spec.train.log_interval == 0
            stop, over_budget = s.strategy.agree(at_boundary, self.control.stop_requested, meter.over_budget())
            if stop or over_budget:
                status, ended_by = ("stopped", self.control.stop_reason or "stop requested") if stop else ("finished", "time budget")
                break
            if at_boundary and s.plan.by_time:  # the schedule follows the budget spent, one clock for all ranks
                s.plan.measured(stepper.step, s.strategy.agreed_seconds(meter.spent()), s.start_step, meter.prior_s)
            result = stepper.train_step()
            step = stepper.step
            meter.add(result.tokens)
            losses.add(result.loss)
            if step % spec.train.log_interval == 0 or s.plan.finished(step):
                self._log(s, step, losses, (meter, guard), result)
            evaluated = s.plan.eval_due(step)
            if evaluated:
                evaluate(step)
            if s.plan.save_due(step, evaluated):
                saver.checkpoint(step, stepper.micro_batch)
        return self._finish(s, status, ended_by, (evaluate, saver, meter, hooks))

    def _log(self, s: RunState, step: int, losses: LossWindow, parts: tuple[ThroughputMeter, NonFiniteGuard], result: StepResult) -> None:
        meter, guard = parts
        mean_loss = losses.take(s.strategy.mean)  # mean over ranks
        if mean_loss is None:
            return
        guard.at_log(step, mean_loss)
        rates = meter.log(step, s.plan.total_steps)
        norm = None if result.loss is None else float(result.grad_norm)
        self.emit(StepLogged(step=step, total_steps=s.plan.estimated_total(step), loss=mean_loss, lr=float(s.scheduler.get_last_lr()[0]),
                             tokens=rates.tokens, tokens_per_s=rates.tokens_per_s, elapsed_s=rates.elapsed_s, eta_s=rates.eta_s,
                             grad_norm=norm if norm is not None and math.isfinite(norm) else None))

    def _announce(self, s: RunState) -> None:
        if s.strategy.is_main:
            s.run_dir.write_status("running", step=s.start_step)
        self.emit(RunStarted(run_dir=str(s.run_dir.path), name=s.run_dir.path.name, objective=s.spec.objective, corpus=s.spec.data.corpus,
                             total_steps=s.plan.total_steps or 0, parameters=parameter_count(s.model), trainable_parameters=trainable_count(s.model), method=s.spec.method.name, device=s.device, precision=s.precision,
                             resumed_from_step=s.start_step, spec=s.spec.to_dict(), time_budget_s=s.spec.train.time_budget))
        if s.resumed_from is not None:
            self.emit(Message(text=f"Resumed from {s.resumed_from.name} (step {s.start_step})"))
        from workbench.lean_gpt2 import LeanGPT2  # the twins import transformers' model classes: only once a run starts
        from workbench.sparse_mlm import SparseMaskedLM  # loads transformers: only when used

        trained = s.accelerator.unwrap_model(s.module)
        if isinstance(trained, (LeanGPT2, SparseMaskedLM)):
            self.emit(Message(text=trained.twin_note()))
        if s.strategy.sharded:
            self.emit(Message(text=f"FSDP: parameters, gradients and optimizer state sharded over {s.strategy.world} processes"))

    # ------------------------------------------------------------------ the end
    def _finish(self, s: RunState, status: str, ended_by: str, parts: tuple[Evaluator, Saver, ThroughputMeter, list]) -> RunResult:
        """Checkpoint, eval, report, ``model/``, summary, status. A stopped run (a signal, the
        stop key) saves its checkpoint first, so a second signal or the hang-up deadline can
        only cut what follows, and skips the whole-split final report (minutes on a big eval
        split): it must exit within seconds; a resume to the end writes the report.
        ``ended_by``: why the run ended before its plan did ("time budget", a signal), or ""."""
        evaluate, saver, meter, hooks = parts
        step, micro_batch = self.step, self.stepper.micro_batch if self.stepper is not None else s.start_micro_batch
        tokens = meter.finish()
        stopped = status == "stopped"
        if ended_by:
            self.emit(Message(text=f"Stopping at step {step} ({ended_by}); saving a checkpoint"))
        if stopped:
            saver.checkpoint(step, micro_batch)
            evaluate(step)  # the periodic eval set: a stop must end within seconds
        else:
            evaluate(step, whole=True)  # the final eval covers the whole split
            saver.checkpoint(step, micro_batch)
        metrics: dict[str, Any] = {}
        if s.strategy.is_main:
            if not stopped:
                s.model.eval()
                with torch.no_grad():
                    metrics = s.task.final_report(s.model, s.tokenizer, s.data, s.spec, s.run_dir)
            for hook in hooks:  # e.g. forgetting: base-eval loss before -> after (already measured)
                metrics.update(hook.summary())
        report = f"skipped: stopped ({ended_by}) at step {step}; resume to finish it" if stopped else "done"
        summary = self._summary(s, status, metrics, (step, tokens, meter), report)
        summary["stopped"] = ended_by or None
        if s.strategy.is_main:
            saver.final_model()
            s.run_dir.write_summary(summary)
            s.run_dir.write_status(status, step=step, **({"stopped": ended_by} if ended_by else {}))
        self.emit(RunFinished(status=status, step=step, run_dir=str(s.run_dir.path), model_dir=str(s.run_dir.model_dir), summary=summary))
        return RunResult(status=status, run_dir=s.run_dir.path, model_dir=s.run_dir.model_dir, step=step, summary=summary)

    @staticmethod
    def _summary(s: RunState, status: str, metrics: dict[str, Any], counts: tuple[int, int, ThroughputMeter], report: str) -> dict[str, Any]:
        """``report``: "done", or why the final whole-split report (``metrics``) was skipped.
        tokens/s is this span's (a resume's own tokens over its own time); the time is the run's."""
        step, tokens, meter = counts
        before, after, best = s.progress.before, s.progress.last, s.progress.best
        rate = meter.span_rate() if step > s.start_step else None
        return {
            "status": status,
            "objective": s.spec.objective,
            "corpus": s.spec.data.corpus,
            "steps": step,
            "tokens": tokens,
            "train_time_s": round(meter.spent(), 2),
            "tokens_per_s": round(rate, 1) if rate is not None else None,
            "tokens_per_s_covers": f"steps {s.start_step}-{step} of this process" if s.start_step else f"steps 0-{step}",
            "eval_loss_before": before,
            "eval_loss_after": after,
            "eval_after_covers": s.progress.coverage.get("text", ""),
            "perplexity_before": perplexity(before) if before is not None and s.task.lm_loss else None,
            "perplexity_after": perplexity(after) if s.task.lm_loss else None,
            "best_eval_loss": best,
            "metrics": metrics,
            "report": report,
            "run_dir": str(s.run_dir.path),
            "model_dir": str(s.run_dir.model_dir),
            "inspect_command": f"workbench inspect {s.run_dir.path}",
        }

    # ------------------------------------------------------------------ failures
    def _opened(self, run_dir: RunDir, is_main: bool) -> None:
        self.run_dir, self.is_main = run_dir, is_main

    def run(self) -> RunResult:
        """``train()``, with every failure recorded in ``status.json`` and raised as one line."""
        try:
            return self.train()
        except WorkbenchError as exc:
            self._fail(str(exc))
            raise
        except Exception as exc:
            error = self._one_line(exc)
            self._fail(str(error) if error is not None else f"{type(exc).__name__}: {exc}")
            if error is None:
                raise
            raise error from None
        finally:
            if self._writer is not None:
                self._writer.close()
            for reporter in self._reporters:
                reporter.close()
            if self.state is not None and self.state.lock is not None:
                self.state.lock.release()  # after the last write: the run may be resumed from here

    def _one_line(self, exc: Exception) -> TrainingError | None:
        """The one-line error for out-of-memory, a full disk or a lost peer; None for others."""
        if isinstance(exc, torch.OutOfMemoryError):
            return TrainingError(f"out of memory at step {self.step}",
                                 fix="lower --batch-size (keep the effective batch with --grad-accum) or --seq-len; the last checkpoint is kept")
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            return TrainingError(
                f"could not write to disk at step {self.step} ({exc.strerror}: {exc.filename or ''}); completed checkpoints are intact",
                fix="free disk space (df -h) or fix the disk, then resume with `workbench run --resume`")
        world = self.state.strategy.world if self.state is not None else 1
        if world > 1 and lost_a_peer(exc):
            return TrainingError(
                f"stopped at step {self.step}: lost contact with another process of this run{distributed.peer_host(exc)} "
                "(it failed, was killed or its machine went down; its own message, if any, is above)",
                fix=f"once that process or machine is back (or without it), resume with `workbench run --resume "
                    f"{self.run_dir.path if self.run_dir else 'RUN'} --gpus N`")
        return None

    def _fail(self, message: str) -> None:
        """Record the failure: a new run whose start failed is removed (``failed_start``: it
        holds nothing but what the start wrote), any other run is marked ``failed``."""
        if self.run_dir is not None and self.is_main and self.resume_from is None:
            if discard_failed_start(self.run_dir.path, self.state.lock if self.state is not None else None):
                self.run_dir = None
        if self.run_dir is not None and self.is_main:
            # never left saying "running": on a full disk this overwrites it in place or removes it
            self.run_dir.write_status_anyway("failed", message=message, step=self.step)
        try:
            self.emit(RunFailed(message=message, step=self.step, run_dir=str(self.run_dir.path) if self.run_dir else ""))
        except Exception:  # noqa: BLE001 - reporting a failure must not hide it
            pass


def run_spec(spec: RunSpec, listeners: Iterable[Listener] = (), control: RunControl | None = None) -> RunResult:
    """Train ``spec`` to completion (or stop); the one call both front ends make."""
    return TrainingRun(spec, listeners=listeners, control=control).run()


def resume_run(run: str | Path, listeners: Iterable[Listener] = (), control: RunControl | None = None,
               out: str = "checkpoints", overrides: dict[str, Any] | None = None) -> RunResult:
    """Continue ``run`` from its last checkpoint, with ``overrides`` such as ``{"max_steps": 400}``."""
    return TrainingRun(RunSpec(out=out), listeners=listeners, control=control, resume=run, overrides=overrides).run()
