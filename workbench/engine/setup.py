"""Set-up: spec -> corpus -> tokenizer -> model -> task data -> optimizer, as one state object.

Everything the loop needs is returned in a ``RunState``; the loop itself lives in
``engine/runner.py``. Order matters for "nothing written on bad input": the corpus, its
labels and the base's architecture are checked before the run directory is created.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from workbench import feasibility, methods
from workbench.config import LR_AUTO, ResolvedSpec, RunSpec, check_out_dir
from workbench.engine import distributed, memory, performance
from workbench.engine.keeping import plan_kept
from workbench.engine.local_accelerator import LocalAccelerator
from workbench.engine.order import BatchOrder
from workbench.engine.plan import Plan, make_scheduler
from workbench.engine.spec_resolution import resolve_spec
from workbench.engine.strategy import SingleProcess, strategy_for
from workbench.errors import SpecError, TrainingError
from workbench.models import BaseRef, load_config, load_model, load_tokenizer, parameter_count, resolve_base
from workbench.quiet import quiet_libraries
from workbench.runs import checkpoint as ckpt
from workbench.runs.events import Message
from workbench.runs.lock import RunLock, claim
from workbench.runs.reporting import check_report_folders
from workbench.runs.rundir import RunDir, find_run, git_commit, versions
from workbench.tasks.base import Task, TaskData


@dataclass
class Progress:
    """Eval losses the summary and checkpoints report (restored on resume)."""

    before: float | None = None
    last: float | None = None
    best: float | None = None
    coverage: dict = field(default_factory=dict)
    """What the last eval covered: examples, tokens, fraction of the split, and in words."""

    def record(self, loss: float) -> None:
        self.last = loss
        self.best = loss if self.best is None else min(self.best, loss)


@dataclass
class RunState:
    spec: ResolvedSpec
    task: Task
    run_dir: RunDir
    accelerator: Any
    strategy: SingleProcess
    device: str
    precision: str
    tokenizer: Any
    model: Any
    """transformers' model: what is saved, probed and reported."""
    module: Any = None
    """What the loop trains: ``model``, its lean twin (same parameters), or FSDP shards."""
    data: TaskData | None = None
    optimizer: Any = None
    scheduler: Any = None
    order: BatchOrder | None = None
    plan: Plan = field(default_factory=lambda: Plan(1, None, 1, None))
    """The run's length (steps or a time budget), its evals and saves, what the lr follows."""
    start_micro_batch: int = 1
    """The micro-batch the run starts with (an out-of-memory halving survives a resume); the
    ``Stepper`` owns the current one."""
    global_batch: int = 1
    start_step: int = 0
    """0, or the resumed checkpoint's step; the ``Stepper`` owns the step count from there."""
    resumed_from: Path | None = None
    saved: dict[str, Any] = field(default_factory=dict)
    """The resumed checkpoint's ``trainer_state.json`` (empty for a fresh run)."""
    progress: Progress = field(default_factory=Progress)
    lock: RunLock | None = None
    """Rank 0's lock on the run directory, held until ``TrainingRun.run()`` returns."""


def pick_device(requested: str) -> str:
    if requested != "auto":
        if requested == "cuda" and not torch.cuda.is_available():
            raise TrainingError("--device cuda, but no CUDA GPU is visible", fix="use --device cpu or auto")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_precision(requested: str, device: str) -> str:
    if requested == "fp16" and device == "cpu":
        raise TrainingError("fp16 needs a GPU", fix="use --precision fp32 or bf16 on CPU")
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def make_accelerator(spec: ResolvedSpec) -> tuple[Any, str, str]:
    """Accelerate under torchrun, where a process trains one run; otherwise the engine's own
    single-process accelerator, so that runs in one process never share a device or precision."""
    device = pick_device(spec.runtime.device)
    precision = pick_precision(spec.runtime.precision, device)
    performance.configure_backends(device)
    if "LOCAL_RANK" not in os.environ:
        return LocalAccelerator(device, precision), device, precision
    from accelerate import Accelerator  # accelerate: loaded on first use

    accelerator = Accelerator(cpu=device == "cpu", mixed_precision={"bf16": "bf16", "fp16": "fp16"}.get(precision, "no"))
    return accelerator, device, precision


@dataclass
class Inputs:
    """What is read and checked before anything is written."""

    spec: ResolvedSpec
    task: Task
    corpus: Any
    checked: Any
    base_ref: BaseRef | None
    base_config: Any
    run_dir: RunDir | None
    """The run being resumed, or None for a new run."""
    meta: dict[str, Any] = field(default_factory=dict)
    """lr-find: extra ``run.toml`` meta, e.g. ``lr_found_by`` for ``--lr auto``."""


def read_inputs(spec_in: RunSpec | None, resume: str | Path | None, out: str, overrides: dict[str, Any] | None = None,
                emit: Callable[[Any], None] | None = None) -> Inputs:
    """Resolve the spec, read and check the corpus, and check the base: fail before writing.
    A resume reads its spec from ``run.toml`` and applies ``overrides`` (``--max-steps`` ...),
    saying which; ``run.toml`` itself keeps the original."""
    run_dir = find_run(str(resume), out=out) if resume is not None else None
    if run_dir is not None:
        spec, changed = run_dir.spec().resumed_with(overrides or {})
        if changed and emit is not None:
            emit(Message(text=f"Resuming with {', '.join(changed)}"))
    else:
        assert spec_in is not None and not overrides, "overrides apply to a resume only"
        spec_in.validate()
        spec = spec_in
        check_out_dir(spec.out, where=None)  # a file at or above --out: refuse before anything is made
    base_ref = resolve_base(spec.base) if spec.base else None
    base_config = load_config(base_ref) if base_ref is not None else None
    resolved, task = resolve_spec(spec, base_config=base_config)
    if run_dir is None and base_ref is None:  # a run.toml from before these bounds still resumes
        feasibility.check_vocab(resolved.model.tokenizer, resolved.model.vocab_size)
    if run_dir is None or {"max_steps", "epochs"} & set(overrides or {}):
        feasibility.check_warmup(resolved.optim.warmup_steps, resolved.train.max_steps)
    return checked_inputs(resolved, task, (base_ref, base_config), run_dir)


def checked_inputs(spec: ResolvedSpec, task: Task, base: tuple[BaseRef | None, Any], run_dir: RunDir | None) -> Inputs:
    """The corpus read and checked (labels, tags, answer spans) and the base's architecture
    checked against the task, before anything is written."""
    base_ref, base_config = base
    corpus = task.load_corpus(spec)
    checked = task.check_data(corpus, spec)  # labels, tags, answer spans
    if base_config is not None:
        task.check_base(base_config, where=spec.base)
    return Inputs(spec, task, corpus, checked, base_ref, base_config, run_dir)


def resume_point(run_dir: RunDir, emit: Callable[[Any], None], max_steps: int | None = None) -> tuple[Path | None, dict[str, Any]]:
    """The newest verified checkpoint of a run being resumed, and its checked state.

    Checkpoints that fail verification are moved to ``checkpoints/.rejected/`` and named
    through ``emit`` (never deleted); impossible ``trainer_state.json`` values, or a run that
    had checkpoints of which none verifies, stop with a one-line ``RunDirError``."""
    found = ckpt.newest_verified(run_dir.checkpoints, emit)
    if found is None:
        return None, {}
    ckpt.check_resumable(found)
    return found, ckpt.checked_state(found, max_steps)


def tokenizer_and_model(inputs: Inputs, resume_ckpt: Path | None, emit: Callable[[Any], None]) -> tuple[Any, Any]:
    """From a checkpoint, from the base, or a new tokenizer and a freshly initialised model."""
    spec, task = inputs.spec, inputs.task
    if resume_ckpt is not None and spec.method.name == "full":
        ref = BaseRef(given=str(resume_ckpt), kind="local", model_dir=str(resume_ckpt))
        return load_tokenizer(ref), load_model(ref, task.auto_class)
    if inputs.base_ref is not None:  # a lora/frozen resume: the base again, then its trainable weights (methods.py)
        tokenizer = load_tokenizer(inputs.base_ref)
        torch.manual_seed(spec.train.seed)  # a new task head is initialised from the global generator: the same head every time
        model = load_model(inputs.base_ref, task.auto_class, config=inputs.base_config, **task.model_kwargs(inputs.checked, tokenizer))
        return tokenizer, model
    from workbench.tokenization import train_tokenizer  # loads transformers: only when used

    corpus = inputs.corpus
    size = "one token per character seen" if spec.model.tokenizer == "char" else f"vocab {spec.model.vocab_size}"
    emit(Message(text=f"Training a {spec.model.tokenizer} tokenizer ({size}) on {corpus.name}"))
    tokenizer = train_tokenizer(spec.model.tokenizer, corpus.sample_texts(), spec.model.vocab_size, masked=task.masked)
    if spec.model.vocab_size is not None and len(tokenizer) != spec.model.vocab_size:  # run.toml records the vocabulary used
        emit(Message(text=feasibility.vocab_adjusted(spec.model.tokenizer, spec.model.vocab_size, len(tokenizer))))
        spec = inputs.spec = spec.replace(vocab_size=len(tokenizer))
    torch.manual_seed(spec.train.seed)  # bitwise-identical initial weights for the same spec and seed
    return tokenizer, task.build_model(spec, tokenizer)


def prepare_method(model: Any, inputs: Inputs, resume_ckpt: Path | None, emit: Callable[[Any], None]) -> Any:
    """The model the spec's ``method`` trains (``methods.py``): all of it, LoRA adapters and the
    head, or the head alone; a lora/frozen resume loads its checkpoint's trainable weights."""
    spec = inputs.spec
    if spec.method.name == "full":
        return model
    base_dir = inputs.base_ref.model_dir if inputs.base_ref is not None else None
    prepared = methods.prepare_model(model, spec, base_dir, resume_ckpt)
    emit(Message(text=methods.info(prepared, spec.method.name).line()))
    if inputs.task.windowed and not inputs.task.masked:  # clm: the lean GPT-2 is a from-scratch, every-weight twin
        emit(Message(text=f"Method {spec.method.name} trains transformers' GPT-2 (the lean twin trains every weight from scratch only)"))
    return prepared


def write_run_files(state: RunState, inputs: Inputs) -> None:
    """Rank 0: the tokenizer and ``run.toml`` of a new run; a free-space check for every run."""
    run_dir, spec = state.run_dir, state.spec
    if state.resumed_from is None and not (run_dir.tokenizer_dir / "tokenizer_config.json").is_file():
        state.tokenizer.save_pretrained(run_dir.tokenizer_dir)
    if not run_dir.run_toml.is_file():
        meta = {
            "created": time.time(),
            "git_commit": git_commit(),
            **versions(),
            "task_auto_class": state.task.auto_class_name,
            "eval_source": getattr(inputs.corpus, "eval_source", "") or "",
            **(inputs.base_ref.identity() if inputs.base_ref else {}),
            **state.task.run_meta(state.data),
            **(methods.info(state.model, spec.method.name).meta() if spec.method.name != "full" else {}),
            **inputs.meta,  # lr-find: how --lr auto found the lr
        }
        run_dir.write_run_toml(spec, meta)
    ckpt.ensure_free_space(run_dir.path, 3 * 4 * parameter_count(state.model) + (16 << 20))


def plan_batches(state: RunState) -> None:
    """Global batch, micro-batch, data order, and the plan: steps (or a time budget), evals, saves."""
    spec, world = state.spec, state.strategy.world
    micro_batch = spec.train.batch_size
    state.global_batch = distributed.global_batch_for(state.saved, micro_batch * spec.train.grad_accum * world, world)
    # An out-of-memory halving survives a resume: the same global batch, smaller slices.
    recorded = distributed.recorded_oom_micro_batch(state.run_dir) or micro_batch
    state.start_micro_batch = max(1, min(micro_batch, int(state.saved.get("micro_batch", micro_batch)), recorded))
    assert state.data is not None
    windows = state.data.window_starts() if spec.data.sampling == "random" else None
    state.order = BatchOrder(state.data.num_examples("train"), state.global_batch, spec.train.seed, windows=windows)
    if spec.train.max_steps is not None:
        total: int | None = spec.train.max_steps
    elif spec.train.epochs is not None:
        total = max(1, math.ceil(spec.train.epochs * state.order.steps_per_epoch))
        feasibility.check_total_steps(total, f"epochs {spec.train.epochs:g}")
        if state.resumed_from is None:
            feasibility.check_warmup(spec.optim.warmup_steps, total, f"epochs {spec.train.epochs:g}")
    else:  # a time budget alone (``resolve_spec`` leaves no other way to have neither)
        total = None
    eval_interval = spec.eval.eval_interval  # None: a tenth of the run, now that its length is known
    if eval_interval is None and total is not None:
        eval_interval = max(1, total // 10)
    state.plan = Plan(total, spec.train.time_budget, eval_interval, spec.train.save_interval)


def make_optimizer(state: RunState) -> None:
    """AdamW (no decay on biases and norms) and the warmup schedule, restored on resume."""
    spec, module = state.spec, state.module
    trained = [p for _, p in module.named_parameters() if p.requires_grad]  # all, except with method lora or frozen
    decay = [p for p in trained if p.ndim >= 2]
    no_decay = [p for p in trained if p.ndim < 2]
    state.optimizer = torch.optim.AdamW(  # the spec is resolved: beta2 holds the objective's default
        [{"params": decay, "weight_decay": spec.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.optim.lr, betas=(spec.optim.beta1, spec.optim.beta2), eps=spec.optim.eps, **performance.adamw_options(state.device),
    )
    state.scheduler = make_scheduler(state.optimizer, state.plan, spec)
    if state.resumed_from is not None:
        state.strategy.load_optimizer(module, state.optimizer, state.resumed_from / "optimizer.safetensors")
        state.scheduler.load_state_dict(state.saved["scheduler"])
        state.start_step = int(state.saved["step"])
        state.plan.resumed_at(state.start_step, float(state.saved.get("train_time_s", 0.0)))


def make_training_module(state: RunState, emit: Callable[[Any], None]) -> None:
    """The module the loop trains, distributed, compiled and prepared by Accelerate."""
    spec, strategy = state.spec, state.strategy
    state.module = state.task.training_module(strategy.training_copy(state.model), spec)
    if strategy.sharded:
        strategy.shard(state.module)
    make_optimizer(state)
    performance.prefer_sdpa(state.model)
    compile_choice = "off" if strategy.sharded and spec.runtime.compile == "auto" else spec.runtime.compile  # FSDP + compile: opt in
    if performance.should_compile(compile_choice, state.device, spec.model.size, from_base=bool(spec.base)):
        emit(Message(text="Compiling the model with torch.compile: the first steps take a minute"))
        performance.compile_in_place(state.module)  # in place: checkpoints keep plain key names
    state.module, state.optimizer = strategy.prepare(state.module, state.optimizer)


SettleLr = Callable[["Inputs", Callable[[Any], None]], dict[str, str]]
"""``lr = "auto"``: runs the range test, puts the lr in ``inputs.spec``, returns the ``run.toml``
meta saying how it was found (``engine/lr_find.settle_auto``, passed in by the runner)."""


def set_up(spec_in: RunSpec | None, resume: str | Path | None, out: str, emit: Callable[[Any], None],
           on_run_dir: Callable[[RunDir, bool], None], overrides: dict[str, Any] | None = None,
           settle_lr: SettleLr | None = None) -> RunState:
    """Everything before the first step. ``on_run_dir`` learns the run directory as soon as
    it exists (so a failure after that point is recorded in its ``status.json``)."""
    quiet_libraries()
    inputs = read_inputs(spec_in, resume, out, overrides, emit)
    if inputs.spec.optim.lr == LR_AUTO:  # the range test first, before the run directory exists
        if settle_lr is None:
            raise SpecError("lr = auto needs the range test, which this caller did not pass", fix="pass a number with --lr")
        inputs.meta.update(settle_lr(inputs, emit))
    spec = inputs.spec
    accelerator, device, precision = make_accelerator(spec)
    base_dir = inputs.base_ref.model_dir if inputs.base_ref is not None else None
    memory.check_run_fits(spec, inputs.task, inputs.base_config, base_dir, accelerator.device, accelerator.num_processes)
    strategy = strategy_for(accelerator, spec.runtime.parallel, precision)
    # One writer per run: rank 0 locks a resumed run before anything in it is touched.
    lock = claim(inputs.run_dir.path, emit) if inputs.run_dir is not None and strategy.is_main else None
    try:
        if lock is not None:  # before the run is touched: a stopped run that cannot report stays stopped
            check_report_folders(spec.runtime.report_to, inputs.run_dir.path)
        with accelerator.main_process_first():  # the other ranks read checkpoints once rank 0 holds the lock
            resume_ckpt, saved = resume_point(inputs.run_dir, emit, spec.train.max_steps) if inputs.run_dir is not None else (None, {})
        run_dir = inputs.run_dir or distributed.shared_run_dir(accelerator, spec.out, spec.name)  # every rank learns the path
        if lock is None and strategy.is_main:
            lock = claim(run_dir.path, emit)  # a new run: its folder was just made (mkdir is atomic), nothing in it yet
        on_run_dir(run_dir, strategy.is_main)
        # Rank 0 first: it trains (and caches) the tokenizer and tokenizes; the other ranks then
        # load the same tokenizer and token cache instead of racing to build their own.
        with accelerator.main_process_first():
            tokenizer, model = tokenizer_and_model(inputs, resume_ckpt, emit)
            spec = inputs.spec  # with the vocabulary the tokenizer really has
            model = prepare_method(model, inputs, resume_ckpt, emit)
            data = inputs.task.prepare(inputs.corpus, tokenizer, spec, inputs.checked)
        state = RunState(spec=spec, task=inputs.task, run_dir=run_dir, accelerator=accelerator, strategy=strategy,
                         device=device, precision=precision, tokenizer=tokenizer, model=model, data=data,
                         resumed_from=resume_ckpt, saved=saved, lock=lock)
        state.progress = Progress(saved.get("eval_loss_before"), saved.get("eval_loss"), saved.get("best_eval_loss"))
        if strategy.is_main:
            write_run_files(state, inputs)
        plan_batches(state)
        plan_kept(state, emit)  # transfer: the keep_steps checkpoints, fixed once the step count is known
        make_training_module(state, emit)
        return state
    except BaseException:
        if lock is not None:  # a failed set-up frees the run; a good one hands the lock to TrainingRun.run
            lock.release()
        raise
