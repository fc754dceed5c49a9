"""`workbench run`: train headless with a Rich display or JSON events."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from workbench.commands.common import fail, parse_duration
from workbench.config import RunSpec
from workbench.errors import WorkbenchError

def build_spec(config: Optional[Path], overrides: dict[str, Any]) -> RunSpec:
    spec = RunSpec.from_toml(config) if config else RunSpec()
    given = {k: v for k, v in overrides.items() if v is not None}
    spec = spec.replace(**given)
    spec.validate()
    return spec


def run_command(
    corpus: Optional[str] = typer.Option(None, "--corpus", "-c", help="Built-in name, local path, or hf:NAME[:CONFIG]."),
    objective: Optional[str] = typer.Option(None, "--objective", "-o", help="mlm, nsp, clm, sentiment, ner, qa or generation."),
    base: Optional[str] = typer.Option(None, "--base", "-b", help="Run dir, local HF model dir or hub id to start from."),
    size: Optional[str] = typer.Option(None, "--size", help="From-scratch preset: tiny, small or base."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="auto, wordpiece, bpe or char."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", help="Vocabulary of a trained tokenizer."),
    eval_corpus: Optional[str] = typer.Option(None, "--eval-corpus", help="Separate evaluation file or folder."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Text column of a tabular corpus."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Label column of a labelled corpus."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Optimizer steps."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="Passes over the data (when --max-steps is unset)."),
    time_budget: Optional[str] = typer.Option(None, "--time-budget", help="Stop after e.g. 90s, 5m, 1h (checkpointing)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Sequences per micro-batch."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Tokens per sequence."),
    eval_interval: Optional[int] = typer.Option(None, "--eval-interval", help="Evaluate every N steps."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for data order, masking and init."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default objective-corpus-time)."),
    out: Optional[str] = typer.Option(None, "--out", help="Run root (default checkpoints/)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Spec TOML file; flags override it."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16."),
    on_nonfinite: Optional[str] = typer.Option(None, "--on-nonfinite", help="NaN/Inf loss: stop (default) or skip the step and halve the lr."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (default: auto, on for small/base on CUDA)."),
    lean_model: Optional[bool] = typer.Option(None, "--lean/--no-lean", help="Train from-scratch clm with the lean GPT-2 (default: on; same checkpoints)."),
    parallel: Optional[str] = typer.Option(None, "--parallel", help="With --gpus: ddp (default; a replica per GPU) or fsdp (sharded)."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="Processes (GPUs) per node: launches the run through torchrun with DDP."),
    nnodes: int = typer.Option(1, "--nnodes", help="Machines in a multi-node run (with --gpus and --rdzv-endpoint)."),
    node_rank: int = typer.Option(0, "--node-rank", help="This machine's index in a multi-node run (0 hosts the run directory)."),
    rdzv_endpoint: Optional[str] = typer.Option(None, "--rdzv-endpoint", help="HOST:PORT of node 0, where the nodes of a multi-node run meet."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue this run (name or path) from its last checkpoint."),
    json_events: bool = typer.Option(False, "--json", help="Print events as JSON lines instead of the Rich display."),
) -> None:
    """Train a model headless: pre-training (mlm, nsp, clm) or fine-tuning from --base.

    With no flags: a short default experiment (clm, tiny, on the built-in general corpus).
    """
    from workbench.console import JsonPrinter, RichPrinter
    from workbench.engine import RunControl, TrainingRun
    from workbench.engine.signals import install_stop_signals

    try:
        control = RunControl()
        listener = JsonPrinter() if json_events else RichPrinter()
        if resume:
            run = TrainingRun(RunSpec(out=out or "checkpoints"), listeners=[listener], control=control, resume=resume)
        else:
            spec = build_spec(
                config,
                dict(
                    corpus=corpus, objective=objective, base=base, size=size, tokenizer=tokenizer,
                    vocab_size=vocab_size, eval_corpus=eval_corpus, text_column=text_column, label_column=label_column,
                    max_steps=max_steps, epochs=epochs, time_budget=parse_duration(time_budget), lr=lr,
                    batch_size=batch_size, grad_accum=grad_accum, seq_len=seq_len, eval_interval=eval_interval,
                    seed=seed, name=name, out=out, device=device, precision=precision, on_nonfinite=on_nonfinite,
                    compile=None if compile_model is None else ("on" if compile_model else "off"),
                    lean_model=None if lean_model is None else ("on" if lean_model else "off"),
                    parallel=parallel,
                ),
            )
            run = TrainingRun(spec, listeners=[listener], control=control)
        if gpus is not None and (gpus > 1 or nnodes > 1):
            from workbench.engine.distributed import launch

            code = launch(None if resume else spec, resume=resume, out=out, gpus=gpus, nnodes=nnodes, node_rank=node_rank,
                          rdzv_endpoint=rdzv_endpoint, json_events=json_events)
            raise SystemExit(code)
        signals = install_stop_signals(control)
        try:
            result = run.run()
        finally:
            if signals.exit_code is None:
                signals.restore()
            else:  # exiting on a signal: a second one must still mean "exit now", not die uncaught
                signals.cancel_deadline()
    except WorkbenchError as error:
        fail(error)
    if signals.exit_code is not None:
        from workbench.commands.common import err_console, is_rank_zero

        if is_rank_zero():  # one line for the whole run, not one per GPU
            err_console.print(f"Stopped by {signals.name} at step {result.step}; checkpoint saved in {result.run_dir}. "
                              f"Continue with: workbench run --resume {result.run_dir}")
        raise SystemExit(signals.exit_code)
