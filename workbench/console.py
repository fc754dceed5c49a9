"""Headless output: a Rich live display of a run, or JSON lines for scripts.

Both are plain event listeners, so the CLI shows exactly what the engine emits.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from workbench.engine.events import (
    CheckpointSaved,
    EvalDone,
    Event,
    Message,
    ProbesRecorded,
    RunFailed,
    RunFinished,
    RunStarted,
    StepLogged,
)


def fmt_loss(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4f}"


def fmt_coverage(event: EvalDone) -> str:
    """A loss's scope, "(whole split)" or "(sample 14%)": a sample's loss must not pass for the validation loss."""
    if not event.coverage:
        return ""  # a run from before coverage was recorded
    if event.fraction >= 1:
        return " [dim](whole split)[/]"
    share = f"{event.fraction:.0%}" if event.fraction >= 0.01 else "<1%"
    return f" [dim](sample {'>99%' if share == '100%' else share})[/]"


def fmt_seconds(value: float) -> str:
    """90 -> '1m30s', 20 -> '20s', 5400 -> '1h30m'."""
    seconds = int(round(value))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def fmt_rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


class JsonPrinter:
    """One JSON object per event on stdout (``--json``)."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps(event.to_json(), default=str) + "\n")
        self.stream.flush()


class RichPrinter:
    """Progress bar with ETA, step, loss, eval loss and tokens/s; a summary at the end."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=False)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[where]}"),
            TextColumn("loss [cyan]{task.fields[loss]}"),
            TextColumn("eval [magenta]{task.fields[eval_loss]}"),
            TextColumn("{task.fields[rate]} tok/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task_id: Any = None
        self.eval_loss = "-"
        self.budget: float | None = None

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def on_message(self, event: Message) -> None:
        self.console.print(f"[dim]{event.text}[/]")

    def on_started(self, event: RunStarted) -> None:
        self.console.print(
            f"[bold]{event.name}[/]: {event.objective} on {event.corpus}, "
            f"{event.parameters / 1e6:.2f}M parameters, {event.device} {event.precision}"
            + (f", resumed at step {event.resumed_from_step}" if event.resumed_from_step else "")
        )
        spec = event.spec or {}
        self.budget = event.time_budget_s if not event.total_steps else None
        if self.budget:
            length = f"until {fmt_seconds(self.budget)} of training (time budget)"
        else:
            length = f"{event.total_steps} steps" if spec.get("max_steps") else f"{spec.get('epochs', '-')} epochs ({event.total_steps} steps)"
        origin = f"from {spec['base']}" if spec.get("base") else "from scratch"
        self.console.print(f"[dim]{origin}: lr {spec.get('lr', '-')}, {length}, batch {spec.get('batch_size', '-')}[/]")
        self.console.print(f"[dim]run dir {event.run_dir}[/]")
        self.progress.start()
        self.task_id = self.progress.add_task(
            event.objective, total=self.budget or event.total_steps, completed=0 if self.budget else event.resumed_from_step,
            loss="-", eval_loss=self.eval_loss, rate="-", where=f"step {event.resumed_from_step}",
        )

    def on_step(self, event: StepLogged) -> None:
        if self.task_id is None:
            return
        if self.budget:  # the bar is the budget spent; the steps are an estimate
            done: dict[str, Any] = {"completed": min(event.elapsed_s, self.budget)}
            estimate = f" (~{event.total_steps} est.)" if event.total_steps else ""
            where = f"step {event.step}{estimate}, {fmt_seconds(max(0.0, self.budget - event.elapsed_s))} left"
        else:
            done, where = {"completed": event.step, "total": event.total_steps}, f"step {event.step}/{event.total_steps}"
        self.progress.update(self.task_id, loss=fmt_loss(event.loss), rate=fmt_rate(event.tokens_per_s),
                             eval_loss=self.eval_loss, where=where, **done)

    def on_eval(self, event: EvalDone) -> None:
        if event.split == "base_eval":
            self.progress.console.print(f"[dim]base eval (forgetting) step {event.step}: loss {fmt_loss(event.eval_loss)}  ppl {event.perplexity:.2f}[/]")
        if event.split != "eval":
            return
        self.eval_loss = fmt_loss(event.eval_loss)
        if self.task_id is not None:
            self.progress.update(self.task_id, eval_loss=self.eval_loss)
        extra = "  ".join(f"{k} {v:.3f}" for k, v in event.metrics.items() if isinstance(v, (int, float)))
        self.progress.console.print(
            f"[magenta]eval[/] step {event.step}: loss {fmt_loss(event.eval_loss)}{fmt_coverage(event)}  ppl {event.perplexity:.2f}"
            + (f"  {extra}" if extra else "")
        )

    def on_probes(self, event: ProbesRecorded) -> None:
        pass

    def on_checkpoint(self, event: CheckpointSaved) -> None:
        pass

    def on_failed(self, event: RunFailed) -> None:
        self.progress.stop()

    def on_finished(self, event: RunFinished) -> None:
        self.progress.stop()
        s = event.summary
        table = Table(title=f"Run {event.status}", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        table.add_row("steps", str(s.get("steps")))
        table.add_row("eval loss", f"{fmt_loss(s.get('eval_loss_before'))} -> {fmt_loss(s.get('eval_loss_after'))}")
        table.add_row("perplexity", f"{_fmt_ppl(s.get('perplexity_before'))} -> {_fmt_ppl(s.get('perplexity_after'))}")
        if s.get("tokens_per_s"):
            table.add_row("throughput", f"{fmt_rate(s['tokens_per_s'])} tokens/s over {s.get('train_time_s')} s")
        for key, value in (s.get("metrics") or {}).items():
            table.add_row(key, _fmt_metric(value))
        table.add_row("saved to", event.model_dir)
        table.add_row("inspect", s.get("inspect_command", ""))
        self.console.print(table)


def _fmt_metric(value: Any) -> Any:
    """Floats to 4 places; a confusion matrix as a small table; dicts as ``key value`` pairs."""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict) and "matrix" in value and "labels" in value:
        grid = Table(show_header=True, box=None, padding=(0, 1))
        grid.add_column("gold \\ pred", style="dim")
        for label in value["labels"]:
            grid.add_column(str(label), justify="right")
        for label, row in zip(value["labels"], value["matrix"]):
            grid.add_row(str(label), *(str(n) for n in row))
        return grid
    if isinstance(value, dict):
        return "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
    return str(value)


def _fmt_ppl(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.2f}"
