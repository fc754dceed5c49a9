"""The training run: spec -> corpus -> tokenizer -> model -> task data -> loop -> run dir.

The loop is hand-written over Accelerate (device placement, mixed precision, DDP under
torchrun, ``backward``) rather than transformers' Trainer, because the workbench needs
what Trainer does not give: pickle-free atomic checkpoints, exact resume (data order and
masking are functions of (seed, step)), a per-step NaN check, cooperative stop/pause from
another thread, and no per-step host sync beyond what a hand-written loop has (the loss
is read once per ``log_interval``).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from workbench.config import RunSpec
from workbench.corpora import load_corpus
from workbench.engine import checkpoint as ckpt
from workbench.engine import distributed, performance, sharding
from workbench.engine.control import RunControl
from workbench.engine.events import (
    CheckpointSaved,
    EvalDone,
    Event,
    Listener,
    Message,
    RunFailed,
    RunFinished,
    RunStarted,
    StepLogged,
)
from workbench.engine.rundir import MetricsWriter, RunDir, find_run, git_commit, versions
from workbench.engine.spec_resolution import resolve_spec
from workbench.errors import RunDirError, TrainingError, WorkbenchError
from workbench.models import BaseRef, load_config, load_model, load_tokenizer, parameter_count, resolve_base
from workbench.tasks.base import Task, TaskData
from workbench.tokenization import train_tokenizer

EvalHook = Callable[["TrainingRun", int], Iterable[Event]]
"""Called after each eval with the run and step; yields extra events (probes, forgetting)."""

EVAL_HOOK_FACTORIES: list[Callable[["TrainingRun"], EvalHook | None]] = []
"""Modules that add eval-time work (the inspector's probes) append a factory here."""


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
"""Write failures that are the disk's fault, reported as one-line errors instead of tracebacks."""

MAX_SCALER_SKIPS = 50
"""fp16 steps the loss scaler may skip in a row (the scale halves each time) before the
run is treated as diverged; a healthy run skips a handful at the start and then rarely."""

HOOK_MODULES = ("workbench.inspector.probes", "workbench.tasks.finetune.forgetting")
"""Engine-level (UI-free) modules that register eval hooks when they exist."""


def load_hook_modules() -> None:
    import importlib
    import importlib.util

    for module in HOOK_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(module)


@dataclass
class RunResult:
    status: str
    run_dir: Path
    model_dir: Path
    step: int
    summary: dict = field(default_factory=dict)


def pick_device(requested: str) -> str:
    if requested != "auto":
        if requested == "cuda" and not torch.cuda.is_available():
            raise TrainingError("--device cuda, but no CUDA GPU is visible", fix="use --device cpu or auto")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def pick_precision(requested: str, device: str) -> str:
    if requested != "auto":
        if requested in ("bf16", "fp16") and device == "cpu" and requested == "fp16":
            raise TrainingError("fp16 needs a GPU", fix="use --precision fp32 or bf16 on CPU")
        return requested
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def step_seed(seed: int, step: int, row: int = 0) -> int:
    """Masking, dropout and sampling at ``step`` depend on this alone: exact resume.

    ``row`` is where a micro-batch starts in the step's global batch. Seeding each
    micro-batch by its position makes MLM masks the same however the global batch is split
    (one process with accumulation, or N GPUs), so a resume with another number of
    processes, or after an out-of-memory halving, continues the same masks.
    """
    base = (seed * 1_000_003 + step) % (2**63 - 1)
    return base if row == 0 else (base * 1_000_033 + row) % (2**63 - 1)


class BatchOrder:
    """Deterministic data order: a seeded permutation per epoch, sliced per step/rank."""

    def __init__(self, num_examples: int, global_batch: int, seed: int):
        self.n = num_examples
        self.global_batch = min(global_batch, num_examples)
        self.seed = seed
        self.steps_per_epoch = max(1, num_examples // self.global_batch)
        self._epoch = -1
        self._perm: torch.Tensor | None = None

    def indices(self, step: int) -> list[int]:
        epoch, offset = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm = torch.randperm(self.n, generator=generator)
            self._epoch = epoch
        assert self._perm is not None
        start = offset * self.global_batch
        return self._perm[start : start + self.global_batch].tolist()


class TrainingRun:
    """One run of one spec. Create it, then call ``run()`` (blocking; any thread)."""

    def __init__(
        self,
        spec: RunSpec | None = None,
        *,
        listeners: Iterable[Listener] = (),
        control: RunControl | None = None,
        resume: str | Path | None = None,
    ):
        if spec is None and resume is None:
            raise ValueError("give a spec or a run to resume")
        self.control = control or RunControl()
        self.listeners: list[Listener] = list(listeners)
        self.resume_from = resume
        self.spec_in = spec
        self.run_dir: RunDir | None = None
        self.spec: RunSpec | None = None
        self.task: Task | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self.step = 0
        self.meta: dict[str, Any] = {}
        self.base_ref: BaseRef | None = None
        self._writer: MetricsWriter | None = None
        self.eval_hooks: list[EvalHook] = []

    # ------------------------------------------------------------------ events
    def emit(self, event: Event) -> None:
        if self._writer is not None and self.is_main:
            self._writer(event)
        if not self.is_main:
            return
        for listener in self.listeners:
            listener(event)

    is_main: bool = True
    world: int = 1
    sharded: bool = False
    _replica_step: int | None = None

    # ------------------------------------------------------------------ set-up
    def _open_run_dir(self) -> tuple[RunSpec, Task, int]:
        if self.resume_from is not None:
            self.run_dir = find_run(str(self.resume_from), out=self.spec_in.out if self.spec_in else "checkpoints")
            spec = self.run_dir.spec()
            self.meta = self.run_dir.meta()
            spec, task = resolve_spec(spec)
            return spec, task, 0
        assert self.spec_in is not None
        spec, task = resolve_spec(self.spec_in)
        return spec, task, 0

    def _tokenizer_and_model(self, spec: RunSpec, task: Task, corpus: Any, resume_ckpt: Path | None) -> None:
        if resume_ckpt is not None:
            ref = BaseRef(given=str(resume_ckpt), kind="local", model_dir=str(resume_ckpt))
            self.tokenizer = load_tokenizer(ref)
            self.model = load_model(ref, task.auto_class)
            return
        if spec.base:
            self.base_ref = resolve_base(spec.base)
            config = load_config(self.base_ref)
            task.check_base(config, where=spec.base)
            self.tokenizer = load_tokenizer(self.base_ref)
            self.data = task.prepare(corpus, self.tokenizer, spec)
            self.model = load_model(self.base_ref, task.auto_class, **task.model_kwargs(getattr(self.data, "info", {})))
            return
        self.emit(Message(text=f"Training a {spec.tokenizer} tokenizer (vocab {spec.vocab_size}) on {corpus.name}"))
        self.tokenizer = train_tokenizer(spec.tokenizer, corpus.sample_texts(), spec.vocab_size or 4096, masked=task.masked)
        torch.manual_seed(spec.seed)
        self.model = task.build_model(spec.size, self.tokenizer, spec.seq_len or 128)

    def _total_steps(self, spec: RunSpec, order: BatchOrder) -> int:
        if spec.max_steps is not None:
            return spec.max_steps
        return max(1, math.ceil((spec.epochs or 1.0) * order.steps_per_epoch))

    # ------------------------------------------------------------------ the run
    def run(self) -> RunResult:
        try:
            return self._run()
        except WorkbenchError as exc:
            self._fail(str(exc))
            raise
        except torch.OutOfMemoryError:
            message = TrainingError(
                f"out of memory at step {self.step}",
                fix="lower --batch-size (keep the effective batch with --grad-accum) or --seq-len; the last checkpoint is kept",
            )
            self._fail(str(message))
            raise message from None
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS:
                self._fail(f"{type(exc).__name__}: {exc}")
                raise
            message = TrainingError(
                f"could not write to disk at step {self.step} ({exc.strerror}: {exc.filename or ''}); completed checkpoints are intact",
                fix="free disk space (df -h) or fix the disk, then resume with `workbench run --resume`",
            )
            self._fail(str(message))
            raise message from None
        except Exception as exc:
            if self.world > 1 and lost_a_peer(exc):
                message = TrainingError(
                    f"stopped at step {self.step}: another process of this run failed (its message is above)",
                    fix=f"see its error above; once that is fixed, resume with `workbench run --resume {self.run_dir.path if self.run_dir else 'RUN'} --gpus N`",
                )
                self._fail(str(message))
                raise message from None
            self._fail(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if self._writer is not None:
                self._writer.close()

    def _fail(self, message: str) -> None:
        if self.run_dir is not None and self.is_main:
            try:
                self.run_dir.write_status("failed", message=message, step=self.step)
            except OSError:
                pass
        try:
            self.emit(RunFailed(message=message, step=self.step, run_dir=str(self.run_dir.path) if self.run_dir else ""))
        except Exception:  # noqa: BLE001 - reporting a failure must not hide it
            pass

    def _run(self) -> RunResult:
        from accelerate import Accelerator

        from workbench.quiet import quiet_libraries

        quiet_libraries()
        spec, task, _ = self._open_run_dir()
        self.spec, self.task = spec, task
        device = pick_device(spec.device)
        precision = pick_precision(spec.precision, device)
        performance.configure_backends(device)
        if "LOCAL_RANK" not in os.environ:
            # One process may train several runs (the TUI): Accelerate keeps one global state,
            # so forget the previous run's device/precision before making a new Accelerator.
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
        accelerator = Accelerator(
            cpu=device == "cpu",
            mixed_precision={"bf16": "bf16", "fp16": "fp16"}.get(precision, "no"),
        )
        self.is_main = accelerator.is_main_process
        self.world = accelerator.num_processes

        # Corpus first: a bad corpus must fail before anything is written.
        corpus = load_corpus(
            spec.corpus,
            text_column=spec.text_column,
            eval_corpus=spec.eval_corpus,
            eval_fraction=spec.eval_fraction,
            seed=spec.seed,
            require_text=getattr(task, "needs_text_column", True),
        ) if getattr(task, "loads_corpus", True) else None
        if hasattr(task, "check_data"):
            task.check_data(corpus, spec)  # labels, tags, answer spans: fail before writing anything

        resume_ckpt: Path | None = None
        state: dict[str, Any] = {}
        if self.run_dir is not None:  # resuming
            ckpt.clean_incomplete(self.run_dir.checkpoints)
            found = ckpt.complete_checkpoints(self.run_dir.checkpoints)
            if found:
                resume_ckpt = found[-1]
                ckpt.check_resumable(resume_ckpt)
                state = ckpt.read_state(resume_ckpt)
        else:
            self.run_dir = distributed.shared_run_dir(accelerator, spec.out, spec.name or "run")  # every rank learns the path
        run_dir = self.run_dir
        assert run_dir is not None

        self.data: TaskData | None = None
        # Rank 0 first: it trains (and caches) the tokenizer and tokenizes; the other ranks then
        # load the same tokenizer and token cache instead of racing to build their own.
        with accelerator.main_process_first():
            self._tokenizer_and_model(spec, task, corpus, resume_ckpt)
            if self.data is None:
                self.data = task.prepare(corpus, self.tokenizer, spec)
        data = self.data

        if self.is_main:
            if resume_ckpt is None and not (run_dir.tokenizer_dir / "tokenizer_config.json").is_file():
                self.tokenizer.save_pretrained(run_dir.tokenizer_dir)
            if not run_dir.run_toml.is_file():
                self.meta = {
                    "created": time.time(),
                    "git_commit": git_commit(),
                    **versions(),
                    "task_auto_class": task.auto_class_name,
                    "eval_source": corpus.eval_source if corpus else "",
                    **(self.base_ref.identity() if self.base_ref else {}),
                    **getattr(data, "meta", {}),
                }
                run_dir.write_run_toml(spec, self.meta)
            self._writer = MetricsWriter(run_dir.metrics)
            ckpt.ensure_free_space(run_dir.path, 3 * 4 * parameter_count(self.model) + (16 << 20))

        world = accelerator.num_processes
        micro_batch = spec.batch_size or 1
        global_batch = distributed.global_batch_for(state, micro_batch * spec.grad_accum * world, world)
        # An out-of-memory halving survives a resume: the same global batch, smaller slices.
        micro_batch = max(1, min(micro_batch, int(state.get("micro_batch", micro_batch)),
                                 distributed.recorded_oom_micro_batch(run_dir) or micro_batch))
        order = BatchOrder(data.num_examples("train"), global_batch, spec.seed)
        total_steps = self._total_steps(spec, order)
        eval_interval = spec.eval_interval or max(1, total_steps // 10)
        save_interval = spec.save_interval or eval_interval

        # The loop trains ``model``; ``self.model`` (transformers' class) is what is saved, probed
        # and reported: the same parameter objects, or under FSDP an unsharded CPU replica that
        # is refreshed from the shards at every eval and save.
        self.sharded = world > 1 and spec.parallel == "fsdp"
        if self.sharded and precision == "fp16":
            raise TrainingError("FSDP runs train in bf16 or fp32, not fp16", fix="pass --precision bf16 (or fp32), or --parallel ddp")
        source = copy.deepcopy(self.model) if self.sharded else self.model
        model = performance.training_module(source, spec.lean_model, spec.objective, from_base=bool(spec.base))
        if self.sharded:
            sharding.shard(model, accelerator.device, world)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=spec.lr,
            betas=(0.9, 0.98 if task.pretraining else 0.999),
            **performance.adamw_options(device),
        )
        from transformers import get_scheduler

        scheduler = get_scheduler(
            {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[spec.schedule],
            optimizer,
            num_warmup_steps=int(spec.warmup_ratio * min(total_steps, 1_000_000)),
            num_training_steps=total_steps,
        )
        if resume_ckpt is not None:
            ckpt.optimizer_from_safetensors(
                optimizer, resume_ckpt / "optimizer.safetensors",
                load=(lambda full: sharding.load_full_optimizer(model, optimizer, full)) if self.sharded else None,
            )
            scheduler.load_state_dict(state["scheduler"])
            self.step = int(state["step"])
        performance.prefer_sdpa(self.model)
        compile_choice = "off" if self.sharded and spec.compile == "auto" else spec.compile  # FSDP + compile: opt in
        if performance.should_compile(compile_choice, device, spec.size, from_base=bool(spec.base)):
            self.emit(Message(text="Compiling the model with torch.compile: the first steps take a minute"))
            performance.compile_in_place(model)  # in place: checkpoints keep plain key names
        if not self.sharded:  # FSDP's module is already distributed; Accelerate would wrap it in DDP
            model, optimizer = accelerator.prepare(model, optimizer)
            performance.drop_output_upcast(accelerator.unwrap_model(model))  # the loop runs under accelerator.autocast() itself
        raw_model = self.model

        load_hook_modules()
        for factory in EVAL_HOOK_FACTORIES:
            hook = factory(self)
            if hook is not None:
                self.eval_hooks.append(hook)

        if self.is_main:
            run_dir.write_status("running", step=self.step)
        self.emit(
            RunStarted(
                run_dir=str(run_dir.path),
                name=run_dir.path.name,
                objective=spec.objective,
                corpus=spec.corpus,
                total_steps=total_steps,
                parameters=parameter_count(raw_model),
                device=device,
                precision=precision,
                resumed_from_step=self.step,
                spec=spec.to_dict(),
            )
        )
        if resume_ckpt is not None:
            self.emit(Message(text=f"Resumed from {resume_ckpt.name} (step {self.step})"))
        if type(accelerator.unwrap_model(model)).__name__ == "LeanGPT2":
            self.emit(Message(text="Training with the lean GPT-2 (same weights and checkpoints as GPT2LMHeadModel)"))
        if self.sharded:
            self.emit(Message(text=f"FSDP: parameters, gradients and optimizer state sharded over {world} processes"))

        eval_before = state.get("eval_loss_before")
        last_eval: float | None = state.get("eval_loss")
        best_eval: float | None = state.get("best_eval_loss")
        if resume_ckpt is None:
            last_eval = eval_before = self._evaluate(accelerator, model, data, task, spec, 0)
            best_eval = eval_before

        def save(step: int) -> None:
            saved_optimizer: Any = optimizer
            if self.sharded:  # every rank takes part in gathering the full state
                self._sync_replica(model)
                saved_optimizer = sharding.GatheredOptimizer(sharding.gather_full_optimizer(model, optimizer))
            if not self.is_main:
                return
            if device != "cpu" and spec.on_nonfinite == "stop" and bool(nonfinite_seen):
                self._non_finite("loss or gradient norm", float("nan"), spec, since=last_check_step)
            folder = ckpt.save_checkpoint(
                run_dir.checkpoints,
                step,
                raw_model,
                self.tokenizer,
                saved_optimizer,
                scheduler,
                {
                    "eval_loss": last_eval,
                    "best_eval_loss": best_eval,
                    "eval_loss_before": eval_before,
                    "batch_size": spec.batch_size,
                    "micro_batch": micro_batch,
                    "nonfinite_skips": nonfinite_skips,
                    "grad_accum": spec.grad_accum,
                    "world_size": world,
                    "global_batch": global_batch,
                    "tokens_seen": tokens_seen,
                },
            )
            ckpt.rotate(run_dir.checkpoints, spec.keep_checkpoints)
            self.emit(CheckpointSaved(step=step, path=str(folder), best=last_eval is not None and last_eval == best_eval))

        tokens_seen = int(state.get("tokens_seen", 0))
        nonfinite_skips = int(state.get("nonfinite_skips", 0))
        # Checked every step on CPU (free) and in skip mode; on a GPU in stop mode a device-side
        # flag is read at each log and before each save, so no per-step host sync is added.
        check_every_step = device == "cpu" or spec.on_nonfinite == "skip"
        # With fp16's loss scaler an infinite gradient norm is routine: the scaler skips that
        # step and lowers the scale. Only the loss counts then, plus a guard against a scale
        # that never recovers (every step skipped while the loss stays finite).
        scaler_active = getattr(accelerator, "scaler", None) is not None
        scaler_skips = 0
        nonfinite_seen = torch.zeros((), dtype=torch.bool, device=accelerator.device)
        last_check_step = self.step
        start_time = time.perf_counter()
        paused_s = 0.0
        log_start, log_tokens = time.perf_counter(), 0
        loss_sum = torch.zeros((), device=accelerator.device)
        loss_count = 0
        start_step = self.step
        status = "finished"
        rank = accelerator.process_index
        per_rank = global_batch // world
        model.train()
        while self.step < total_steps:
            waited = self.control.wait_while_paused()
            paused_s += waited
            log_start += waited  # tokens/s counts training time only
            stop = self.control.stop_requested
            over_budget = spec.time_budget is not None and time.perf_counter() - start_time - paused_s >= spec.time_budget
            if world > 1:
                # Every rank must leave the loop at the same step, or the next collective pairs
                # an eval on one rank with a gradient all-reduce on another. They agree at log
                # boundaries, where the loss is read anyway (no extra host sync per step).
                if (self.step - start_step) % spec.log_interval == 0:
                    stop, over_budget = distributed.any_rank(accelerator, stop, over_budget)
                else:
                    stop = over_budget = False
            if stop:
                status = "stopped"
                break
            if over_budget:
                self.emit(Message(text=f"Time budget of {spec.time_budget:g}s reached at step {self.step}"))
                break
            indices = order.indices(self.step)
            mine = indices[rank * per_rank : (rank + 1) * per_rank] if world > 1 else indices
            micro_chunks = [mine[i : i + micro_batch] for i in range(0, len(mine), micro_batch)]
            step_loss = None
            step_tokens = 0
            try:
                for index, chunk in enumerate(micro_chunks):  # masks and dropout: a function of (seed, step, row)
                    torch.manual_seed(step_seed(spec.seed, self.step, row=rank * per_rank + index * micro_batch))
                    batch, n_tokens = data.batch("train", chunk)
                    batch = performance.to_device(batch, accelerator.device)
                    sync = index == len(micro_chunks) - 1
                    context = contextlib.nullcontext() if sync or world == 1 else accelerator.no_sync(model)
                    with context:
                        with accelerator.autocast():
                            loss = model(**batch).loss / len(micro_chunks)
                        accelerator.backward(loss)
                    step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
                    step_tokens += n_tokens * world
            except torch.OutOfMemoryError:
                step_loss = loss = batch = None
                optimizer.zero_grad(set_to_none=True)
                if device == "cuda":
                    torch.cuda.empty_cache()
                if world > 1:  # the other ranks are already inside this step's collectives
                    self._stop_after_distributed_oom(save, micro_batch, run_dir, rank)
                if spec.on_oom == "halve" and micro_batch > 1:
                    micro_batch //= 2
                    self.emit(Message(text=(
                        f"Out of memory at step {self.step + 1}: micro-batch halved to {micro_batch} "
                        f"({math.ceil(per_rank / micro_batch)} accumulation steps, the same effective batch of {global_batch}); retrying the step"
                    )))
                    continue
                failed_micro_batch, micro_batch = micro_batch, max(1, micro_batch // 2)  # the checkpoint records it
                self._stop_after_oom(save, failed_micro_batch, run_dir)
            assert step_loss is not None
            log_tokens += step_tokens
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), spec.max_grad_norm if spec.max_grad_norm > 0 else float("inf"))
            if self.sharded:  # FSDP returns the norm as a DTensor
                grad_norm = grad_norm.full_tensor()
            skip_step = False
            if check_every_step:
                loss_value, norm_value = float(step_loss), float(grad_norm)
                if not math.isfinite(loss_value) or not (scaler_active or math.isfinite(norm_value)):
                    what, value = ("loss", loss_value) if not math.isfinite(loss_value) else ("gradient norm", norm_value)
                    if spec.on_nonfinite != "skip" or nonfinite_skips >= spec.max_nonfinite_skips:
                        self._non_finite(what, value, spec, skips=nonfinite_skips)
                    nonfinite_skips += 1
                    skip_step = True
                    scheduler.base_lrs = [lr * 0.5 for lr in scheduler.base_lrs]
                    self.emit(Message(text=(
                        f"The {what} became {value} at step {self.step + 1}: step skipped, learning rate halved "
                        f"to {scheduler.base_lrs[0]:.3g} ({nonfinite_skips}/{spec.max_nonfinite_skips})"
                    )))
            elif scaler_active:
                nonfinite_seen |= ~torch.isfinite(step_loss)
            else:
                nonfinite_seen |= ~(torch.isfinite(step_loss) & torch.isfinite(grad_norm))
            if not skip_step:
                optimizer.step()
                loss_sum += step_loss
                loss_count += 1
                if scaler_active:  # the scaler reads its scale on the host anyway
                    scaler_skips = scaler_skips + 1 if accelerator.optimizer_step_was_skipped else 0
                    if scaler_skips >= MAX_SCALER_SKIPS:
                        self._non_finite(f"gradient norm (the fp16 loss scaler skipped {scaler_skips} steps in a row)",
                                         float("inf"), spec)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            self.step += 1

            if (self.step % spec.log_interval == 0 or self.step == total_steps) and loss_count > 0:
                mean_loss = float(accelerator.reduce(loss_sum, "mean") if world > 1 else loss_sum) / max(1, loss_count)  # mean over ranks
                if not math.isfinite(mean_loss) or bool(nonfinite_seen):
                    self._non_finite("loss", mean_loss, spec, since=last_check_step)
                last_check_step = self.step
                now = time.perf_counter()
                elapsed = now - start_time - paused_s
                rate = log_tokens / max(1e-9, now - log_start)
                per_step = elapsed / max(1, self.step - start_step)
                eta = per_step * (total_steps - self.step)
                if spec.time_budget is not None:
                    eta = min(eta, max(0.0, spec.time_budget - elapsed))
                tokens_seen += log_tokens
                self.emit(
                    StepLogged(
                        step=self.step,
                        total_steps=total_steps,
                        loss=mean_loss,
                        lr=float(scheduler.get_last_lr()[0]),
                        tokens=tokens_seen,
                        tokens_per_s=rate,
                        elapsed_s=elapsed,
                        eta_s=eta,
                        grad_norm=None if skip_step or not math.isfinite(float(grad_norm)) else float(grad_norm),
                    )
                )
                loss_sum.zero_()
                loss_count, log_start, log_tokens = 0, time.perf_counter(), 0

            if self.step % eval_interval == 0 and self.step < total_steps:
                last_eval = self._evaluate(accelerator, model, data, task, spec, self.step)
                best_eval = last_eval if best_eval is None else min(best_eval, last_eval)
                model.train()
            if self.step % save_interval == 0 and self.step < total_steps:
                save(self.step)

        tokens_seen += log_tokens
        if status == "stopped" or self.step < total_steps:
            reason = self.control.stop_reason or "time budget"
            self.emit(Message(text=f"Stopping at step {self.step} ({reason}); saving a checkpoint"))
        last_eval = self._evaluate(accelerator, model, data, task, spec, self.step)
        best_eval = last_eval if best_eval is None else min(best_eval, last_eval)
        save(self.step)
        train_time = time.perf_counter() - start_time - paused_s
        summary = self._finish(raw_model, run_dir, status, eval_before, last_eval, best_eval, tokens_seen, train_time, start_step)
        return RunResult(status=status, run_dir=run_dir.path, model_dir=run_dir.model_dir, step=self.step, summary=summary)

    # ------------------------------------------------------------------ pieces
    def _non_finite(self, what: str, value: float, spec: RunSpec, *, skips: int = 0, since: int | None = None) -> None:
        """Stop the run: nothing after the last finite checkpoint is saved."""
        at = f"between steps {since + 1} and {self.step}" if since is not None else f"at step {self.step + 1}"
        skipped = f" after {skips} skipped steps" if skips else ""
        raise TrainingError(
            f"the {what} became {value} {at}{skipped}; no checkpoint was written after it, the last finite one is kept",
            fix=f"lower the learning rate (now --lr {spec.lr:g}), use --precision fp32, or set on_nonfinite = \"skip\"; then restart or resume",
        )

    def _stop_after_oom(self, save: Callable[[int], None], micro_batch: int, run_dir: RunDir) -> None:
        """Checkpoint the state before the failed step and stop with advice.

        The checkpoint records half the micro-batch, so ``--resume`` continues with it.
        """
        step = self.step
        save(step)
        advice = (
            f"resume with `workbench run --resume {run_dir.path}`: it continues with micro-batch {micro_batch // 2} and the same effective batch"
            if micro_batch > 1 else "use a smaller --seq-len or model, or a GPU with more memory"
        )
        raise TrainingError(f"out of memory at step {step + 1} with micro-batch {micro_batch}; checkpoint saved at step {step}", fix=advice)

    def _stop_after_distributed_oom(self, save: Callable[[int], None], micro_batch: int, run_dir: RunDir, rank: int) -> None:
        """Out of memory in one of several processes: stop, and make the resume smaller.

        A single process retries the step with half the micro-batch. Several cannot: the
        other ranks are waiting in this step's gradient all-reduce, which the failed rank
        can no longer join, so it exits and torchrun stops the rest. Rank 0 holds the same
        weights as every rank, so when it is the one that failed it checkpoints first (a
        local write, no collective). Any other rank leaves ``oom.json`` in the run
        directory, which the resume reads (on a shared file system).
        """
        half = max(1, micro_batch // 2)
        step = self.step
        if self.is_main and not self.sharded:  # a sharded save would need the failed rank too
            save(step)
        else:  # the resume reads this instead of a checkpoint's record
            distributed.record_oom(run_dir, half, step=step, rank=rank)
        raise TrainingError(
            f"out of memory at step {step + 1} on rank {rank} with micro-batch {micro_batch}; "
            "several processes cannot retry a step, so the run stopped (its checkpoints are intact)",
            fix=f"resume with `workbench run --resume {run_dir.path} --gpus N`: it continues with micro-batch {half} and the same effective batch"
            if micro_batch > 1 else "use a smaller --seq-len or model, or GPUs with more memory",
        )

    def _sync_replica(self, model: Any) -> None:
        """FSDP only: gather the full weights (every rank joins) into rank 0's CPU replica.

        Once per step: an eval and a save at the same step share one gather."""
        if not self.sharded or self._replica_step == self.step:
            return
        full = sharding.gather_full_model(model)
        if self.is_main:
            sharding.load_replica(self.model, full)
        self._replica_step = self.step

    @torch.no_grad()
    def _evaluate(self, accelerator: Any, model: Any, data: TaskData, task: Task, spec: RunSpec, step: int) -> float:
        """Mean loss over a fixed, seeded set of eval batches (the same at every eval).

        With several processes, rank r takes batches r, r + world, ...; the sums are then
        added up across ranks, so the result equals a single process's and eval time falls
        with the number of GPUs. The forward runs on the unwrapped module: DDP's forward
        could start a collective (buffer broadcast) that ranks with fewer batches never join.
        """
        module = accelerator.unwrap_model(model)
        module.eval()
        n_eval = data.num_examples("eval")
        batch_size = spec.batch_size or 1
        world, rank = accelerator.num_processes, accelerator.process_index
        rng_state = torch.get_rng_state()
        loss_sum = torch.zeros((), device=accelerator.device)
        loss_batches = 0
        totals: dict[str, float] = {}
        n_batches = min(spec.eval_batches, max(1, math.ceil(n_eval / batch_size)))
        # Sharded, every rank must run the same number of forwards (each one gathers weights
        # from all ranks): ranks short of a batch repeat batch 0 and discard the result.
        rounds = math.ceil(n_batches / world) * world if self.sharded else n_batches
        for b in range(rank, rounds, world):
            real = b < n_batches
            first = b * batch_size if real else 0
            indices = list(range(first, min(n_eval, first + batch_size)))
            if not indices:
                break
            torch.manual_seed(spec.seed + 10_007 * (b + 1))  # the same masks at every eval
            batch, _ = data.batch("eval", indices)
            batch = performance.to_device(batch, accelerator.device)
            with accelerator.autocast():
                outputs = module(**batch)
            if not real:
                continue
            if outputs.loss is not None:
                loss_sum += outputs.loss.detach().float()
                loss_batches += 1
            task.eval_metrics(outputs, batch, totals)
        torch.set_rng_state(rng_state)
        if world > 1:
            counts = accelerator.reduce(torch.stack([loss_sum, torch.tensor(float(loss_batches), device=loss_sum.device)]), "sum")
            loss_sum, loss_batches = counts[0], int(counts[1])
            totals = distributed.sum_across_ranks(accelerator, totals)
        eval_loss = float(loss_sum / loss_batches) if loss_batches else float("nan")
        metrics = task.finish_metrics(totals)
        if not math.isfinite(eval_loss) and loss_batches:
            raise TrainingError(
                f"the eval loss became {eval_loss} at step {step}",
                fix=f"lower the learning rate (now --lr {spec.lr:g}) or use --precision fp32",
            )
        self.emit(EvalDone(step=step, eval_loss=eval_loss, perplexity=_perplexity(eval_loss), metrics=metrics))
        self._sync_replica(model)  # probes and reports read self.model
        for hook in self.eval_hooks:
            for event in hook(self, step):
                self.emit(event)
        return eval_loss

    def _finish(self, raw_model: Any, run_dir: RunDir, status: str, before: float | None, after: float,
                best: float | None, tokens: int, train_time: float, start_step: int) -> dict:
        spec, task = self.spec, self.task
        assert spec is not None and task is not None
        metrics: dict[str, Any] = {}
        if self.is_main and self.data is not None:
            raw_model.eval()
            with torch.no_grad():
                metrics = task.final_report(raw_model, self.tokenizer, self.data, spec, run_dir)
            for hook in self.eval_hooks:  # e.g. forgetting: base-eval loss before -> after
                metrics.update(getattr(hook, "summary", dict)())
        summary = {
            "status": status,
            "objective": spec.objective,
            "corpus": spec.corpus,
            "steps": self.step,
            "tokens": tokens,
            "train_time_s": round(train_time, 2),
            "tokens_per_s": round(tokens / train_time, 1) if train_time > 0 and self.step > start_step else None,
            "eval_loss_before": before,
            "eval_loss_after": after,
            "perplexity_before": _perplexity(before) if before is not None else None,
            "perplexity_after": _perplexity(after),
            "best_eval_loss": best,
            "metrics": metrics,
            "run_dir": str(run_dir.path),
            "model_dir": str(run_dir.model_dir),
            "inspect_command": f"workbench inspect {run_dir.path}",
        }
        if self.is_main:
            tmp = run_dir.path / ".model-tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            raw_model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            old = run_dir.path / ".model-old"
            shutil.rmtree(old, ignore_errors=True)
            if run_dir.model_dir.exists():
                os.replace(run_dir.model_dir, old)
            os.replace(tmp, run_dir.model_dir)
            shutil.rmtree(old, ignore_errors=True)
            run_dir.write_summary(summary)
            run_dir.write_status(status, step=self.step)
        self.emit(RunFinished(status=status, step=self.step, run_dir=str(run_dir.path), model_dir=str(run_dir.model_dir), summary=summary))
        return summary


PEER_LOST_MARKERS = ("Connection closed by peer", "Connection reset by peer", "NCCL communicator was aborted", "Broken pipe")


def lost_a_peer(exc: BaseException) -> bool:
    """A collective failed because another rank died (gloo says so at once; NCCL may instead
    block until torchrun stops this process)."""
    dist_error = getattr(torch.distributed, "DistNetworkError", None)
    return (dist_error is not None and isinstance(exc, dist_error)) or any(m in str(exc) for m in PEER_LOST_MARKERS)


def _perplexity(loss: float | None) -> float:
    if loss is None or not math.isfinite(loss):
        return float("nan")
    return float(math.exp(min(loss, 50.0)))


def run_spec(spec: RunSpec, listeners: Iterable[Listener] = (), control: RunControl | None = None) -> RunResult:
    """Train ``spec`` to completion (or stop); the one call both front ends make."""
    return TrainingRun(spec, listeners=listeners, control=control).run()


def resume_run(run: str | Path, listeners: Iterable[Listener] = (), control: RunControl | None = None,
               out: str = "checkpoints") -> RunResult:
    try:
        find_run(str(run), out=out)
    except RunDirError:
        raise
    return TrainingRun(RunSpec(out=out), listeners=listeners, control=control, resume=run).run()
