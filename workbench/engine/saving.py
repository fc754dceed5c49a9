"""Saving: the initial weights, periodic checkpoints (atomic, rotated) and the final model,
from one place."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from safetensors import SafetensorError

from workbench import methods
from workbench.engine.guard import NonFiniteGuard
from workbench.engine.meter import ThroughputMeter
from workbench.engine.setup import RunState
from workbench.errors import RunDirError, TrainingError
from workbench.runs import checkpoint as ckpt
from workbench.runs.events import CheckpointSaved, Event, Message
from workbench.runs.lock import refuse_symlinks
from workbench.runs.publish import publish_folder


class Saver:
    def __init__(self, state: RunState, guard: NonFiniteGuard, meter: ThroughputMeter, emit: Callable[[Event], None]):
        self.s = state
        self.guard = guard
        self.meter = meter
        self.emit = emit

    def initial(self) -> None:
        """``checkpoints/initial/``: a new from-scratch run's untrained weights and tokenizer,
        a plain ``save_pretrained`` folder (not a resumable checkpoint: no optimizer, no
        manifest; resume and rotation never look at it), so that ``workbench inspect RUN``
        compares the model before training with the one after. Rank 0 writes it, as
        ``final_model`` writes ``model/``: into a temp folder, fsynced, renamed into place,
        never through a symlink. A resumed run, a run from a base, or a run that has it
        already is left as it is."""
        s = self.s
        if not s.strategy.is_main or s.resumed_from is not None or s.spec.base:
            return
        root = s.run_dir.checkpoints
        folder = root / ckpt.INITIAL
        refuse_symlinks(root, folder)
        if os.path.lexists(folder):
            return

        def write(tmp: Path) -> None:
            s.model.save_pretrained(tmp, safe_serialization=True)
            s.tokenizer.save_pretrained(tmp)

        try:
            root.mkdir(exist_ok=True)
            publish_folder(folder, root / f"{ckpt.TMP_PREFIX}{ckpt.INITIAL}-{os.getpid()}", write)
        except (OSError, SafetensorError) as exc:  # disk full, quota, read-only: checkpoints would fail the same way
            reason = (exc.strerror if isinstance(exc, OSError) else None) or " ".join(str(exc).split())[:200]
            raise TrainingError(f"could not write the initial weights ({reason})", where=str(folder),
                                fix="free disk space (df -h) or pass --out on another disk, then start the run again") from None

    def checkpoint(self, step: int, micro_batch: int) -> None:
        """A resumable checkpoint of ``step``, recording the ``micro_batch`` a resume starts
        with (the stepper's, or its half after an out-of-memory stop). Every rank calls it (a sharded save gathers
        the full state from all of them); rank 0 writes."""
        s = self.s
        s.strategy.sync_replica(s.module, s.model, step)
        optimizer = s.strategy.saved_optimizer(s.module, s.optimizer)
        if not s.strategy.is_main:
            return
        self.guard.before_save(step)
        weights = methods.checkpoint_view(s.model, s.spec.method.name)  # lora/frozen: the trainable weights only
        folder = ckpt.save_checkpoint(s.run_dir.checkpoints, step, weights, s.tokenizer, optimizer, s.scheduler, self.record(micro_batch))
        ckpt.rotate(s.run_dir.checkpoints, s.spec.train.keep_checkpoints, kept=s.plan.kept)  # kept steps stay
        progress = s.progress
        self.emit(CheckpointSaved(step=step, path=str(folder), best=progress.last is not None and progress.last == progress.best))

    def record(self, micro_batch: int) -> dict[str, Any]:
        """What a resume needs besides weights, optimizer and schedule (``trainer_state.json``)."""
        s = self.s
        return {
            "eval_loss": s.progress.last,
            "best_eval_loss": s.progress.best,
            "eval_loss_before": s.progress.before,
            "batch_size": s.spec.train.batch_size,
            "micro_batch": micro_batch,
            "nonfinite_skips": self.guard.skips,
            "grad_accum": s.spec.train.grad_accum,
            "world_size": s.strategy.world,
            "global_batch": s.global_batch,
            "tokens_seen": self.meter.tokens_seen,
            "train_time_s": round(self.meter.spent(), 3),
        }

    def final_model(self) -> None:
        """``model/`` with the trained weights and tokenizer (a LoRA run's merged into the
        base: plain transformers), and a LoRA run's ``adapter/`` as peft saves it."""
        s = self.s

        def write_model(tmp: Path) -> None:
            methods.merged_model(s.model).save_pretrained(tmp, safe_serialization=True)
            s.tokenizer.save_pretrained(tmp)

        self._publish(s.run_dir.model_dir, write_model)
        if methods.is_peft(s.model):
            self._publish(s.run_dir.path / methods.ADAPTER_DIR, lambda tmp: methods.save_adapter(s.model, tmp))

    def _publish(self, model_dir: Path, write: Callable[[Path], Any]) -> None:
        """Like a checkpoint: written into a temp folder made fresh here, fsynced, then renamed
        into place; never through a symlink."""
        s = self.s
        root = s.run_dir.path
        tmp = root / f".{model_dir.name}-tmp"
        refuse_symlinks(model_dir)
        if model_dir.exists() and not model_dir.is_dir():
            raise RunDirError("is not a folder, and the final model goes there", where=str(model_dir),
                              fix="move that file out of the run directory, then resume the run")
        self._clear(tmp)
        publish_folder(model_dir, tmp, write, replace=True)  # the previous final model, if any, is superseded

    def _clear(self, path: Path) -> None:
        """Remove a leftover temp folder of an earlier save; anything else there (a symlink, a
        file) is not ours: it is moved aside with a message, never written through or deleted."""
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            kind = "a symbolic link" if path.is_symlink() else "not a folder"
            aside = path.with_name(f"{path.name}.moved-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            os.replace(path, aside)
            self.emit(Message(text=f"Moved {path} ({kind}) aside to {aside.name}: the final model is never written through it"))
        elif path.exists():
            shutil.rmtree(path)
