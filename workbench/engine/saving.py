"""Saving: periodic checkpoints (atomic, rotated) and the final model, from one place."""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable

from workbench.engine import checkpoint as ckpt
from workbench.engine.events import CheckpointSaved, Event
from workbench.engine.guard import NonFiniteGuard
from workbench.engine.meter import ThroughputMeter
from workbench.engine.setup import RunState


class Saver:
    def __init__(self, state: RunState, guard: NonFiniteGuard, meter: ThroughputMeter, emit: Callable[[Event], None]):
        self.s = state
        self.guard = guard
        self.meter = meter
        self.emit = emit

    def checkpoint(self, step: int) -> None:
        """A resumable checkpoint of ``step``. Every rank calls it (a sharded save gathers
        the full state from all of them); rank 0 writes."""
        s = self.s
        s.strategy.sync_replica(s.module, s.model, step)
        optimizer = s.strategy.saved_optimizer(s.module, s.optimizer)
        if not s.strategy.is_main:
            return
        self.guard.before_save(step)
        folder = ckpt.save_checkpoint(s.run_dir.checkpoints, step, s.model, s.tokenizer, optimizer, s.scheduler, self.record())
        ckpt.rotate(s.run_dir.checkpoints, s.spec.keep_checkpoints)
        progress = s.progress
        self.emit(CheckpointSaved(step=step, path=str(folder), best=progress.last is not None and progress.last == progress.best))

    def record(self) -> dict[str, Any]:
        """What a resume needs besides weights, optimizer and schedule (``trainer_state.json``)."""
        s = self.s
        return {
            "eval_loss": s.progress.last,
            "best_eval_loss": s.progress.best,
            "eval_loss_before": s.progress.before,
            "batch_size": s.spec.batch_size,
            "micro_batch": s.micro_batch,
            "nonfinite_skips": self.guard.skips,
            "grad_accum": s.spec.grad_accum,
            "world_size": s.strategy.world,
            "global_batch": s.global_batch,
            "tokens_seen": self.meter.tokens_seen,
        }

    def final_model(self) -> None:
        """``model/`` with the trained weights and tokenizer, replaced in one rename."""
        s = self.s
        tmp, old = s.run_dir.path / ".model-tmp", s.run_dir.path / ".model-old"
        shutil.rmtree(tmp, ignore_errors=True)
        s.model.save_pretrained(tmp, safe_serialization=True)
        s.tokenizer.save_pretrained(tmp)
        shutil.rmtree(old, ignore_errors=True)
        if s.run_dir.model_dir.exists():
            os.replace(s.run_dir.model_dir, old)
        os.replace(tmp, s.run_dir.model_dir)
        shutil.rmtree(old, ignore_errors=True)
