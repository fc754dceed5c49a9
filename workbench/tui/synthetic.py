"""A stand-in training engine that streams a synthetic loss curve (no model, no torch).

It has ``TrainingRun``'s shape (``run()`` blocking, listeners, ``RunControl``) and writes a
real run directory (``run.toml``, ``metrics.jsonl``, ``status.json``), so the UI tests, the
latency benchmark and experiments with the UI exercise every UI path
without the seconds a real model costs. Real training is tested separately.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from workbench.config import RunSpec
from workbench.runs.control import RunControl
from workbench.runs.events import CheckpointSaved, EvalDone, Event, Listener, RunFinished, RunStarted, StepLogged
from workbench.runs.rundir import MetricsWriter, new_run_dir


class SyntheticRun:
    def __init__(self, spec: RunSpec, *, listeners: Iterable[Listener] = (), control: RunControl | None = None,
                 steps: int = 40, delay: float = 0.01, log_every: int = 1, eval_every: int = 10,
                 created: float | None = None):
        self.spec = spec
        self.listeners = list(listeners)
        self.control = control or RunControl()
        self.steps = spec.max_steps or steps
        self.delay = delay
        self.log_every = log_every
        self.eval_every = eval_every
        self.created = created

    def run(self) -> object:
        spec = self.spec.replace(name=self.spec.name or f"{self.spec.objective}-synthetic")
        run_dir = new_run_dir(spec.out, spec.name or "run")
        run_dir.write_run_toml(spec, {"created": self.created if self.created is not None else time.time()})
        writer = MetricsWriter(run_dir.metrics)

        def emit(event: Event) -> None:
            writer(event)
            for listener in self.listeners:
                listener(event)

        run_dir.write_status("running", step=0)
        emit(RunStarted(run_dir=str(run_dir.path), name=run_dir.path.name, objective=spec.objective,
                        corpus=spec.corpus, total_steps=self.steps, parameters=1000, device="cpu", precision="fp32"))
        emit(EvalDone(step=0, eval_loss=6.0, perplexity=math.exp(6.0)))
        status, step, start = "finished", 0, time.perf_counter()
        while step < self.steps:
            self.control.wait_while_paused()
            if self.control.stop_requested:
                status = "stopped"
                break
            time.sleep(self.delay)
            step += 1
            loss = 1.5 + 4.5 * math.exp(-step / 15) + 0.15 * math.sin(step)
            if step % self.log_every == 0 or step == self.steps:
                elapsed = time.perf_counter() - start
                emit(StepLogged(step=step, total_steps=self.steps, loss=loss, lr=1e-3 * (1 - step / self.steps),
                                tokens=step * 256, tokens_per_s=256 / max(self.delay, 1e-6), elapsed_s=elapsed,
                                eta_s=elapsed / step * (self.steps - step)))
            if step % self.eval_every == 0:
                emit(EvalDone(step=step, eval_loss=loss + 0.2, perplexity=math.exp(loss + 0.2)))
        emit(CheckpointSaved(step=step, path=str(run_dir.checkpoints / f"step-{step:07d}")))
        run_dir.write_status(status, step=step)
        emit(RunFinished(status=status, step=step, run_dir=str(run_dir.path), model_dir=str(run_dir.model_dir)))
        writer.close()
        return run_dir
