"""Headless output: a Rich live display of a run on a terminal, plain lines when stdout is
not one (a log file, CI), or JSON lines for scripts.

All are plain event listeners, so the CLI shows exactly what the engine emits.
"""

from __future__ import annotations

import io
import json
import math
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from workbench.runs.events import (
    EvalDone,
    Event,
    Message,
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


def fmt_eta(value: float | None) -> str:
    """The engine's ETA as ``0:01:10`` ("-" before there is one, or with no end in sight)."""
    if value is None or not math.isfinite(value):
        return "-"
    seconds = max(0, int(round(value)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def trained_share(event: RunStarted) -> str:
    """`` (method lora: 0.30M trainable, 1.31%)`` when not every parameter trains; else empty."""
    trainable = event.trainable_parameters
    if trainable is None or event.method == "full" or not event.parameters:
        return ""
    return f" (method {event.method}: {trainable / 1e6:.2f}M trainable, {100 * trainable / event.parameters:.2f}%)"


class JsonPrinter:
    """One JSON object per event on stdout (``--json``)."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps(event.to_json(), default=str) + "\n")
        self.stream.flush()


class _EventPrinter:
    """What the Rich and the plain printer share: the run's header, eval lines, the end summary."""

    def __init__(self, console: Console):
        self.console = console
        self.budget: float | None = None
        self.total_steps = 0

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def say(self, text: Any, markup: bool = True) -> None:
        self.console.print(text, markup=markup)

    def on_message(self, event: Message) -> None:
        self.say(Text(event.text, style="dim"))

    def on_started(self, event: RunStarted) -> None:
        self.say(
            f"[bold]{escape(event.name)}[/]: {escape(event.objective)} on {escape(event.corpus)}, "
            f"{event.parameters / 1e6:.2f}M parameters{trained_share(event)}, {event.device} {event.precision}"
            + (f", resumed at step {event.resumed_from_step}" if event.resumed_from_step else "")
        )
        spec = event.spec or {}
        self.budget = event.time_budget_s if not event.total_steps else None
        self.total_steps = event.total_steps
        if self.budget:
            length = f"until {fmt_seconds(self.budget)} of training (time budget)"
        else:
            length = f"{event.total_steps} steps" if spec.get("max_steps") else f"{spec.get('epochs', '-')} epochs ({event.total_steps} steps)"
        origin = f"from {spec['base']}" if spec.get("base") else "from scratch"
        self.say(Text(f"{origin}: lr {spec.get('lr', '-')}, {length}, batch {spec.get('batch_size', '-')}", style="dim"))
        self.say(Text(f"run dir {event.run_dir}", style="dim"))

    def where(self, event: StepLogged) -> str:
        """``step 20/600``, or with a time budget ``step 20 (~400 est.)``."""
        if self.budget:
            return f"step {event.step}" + (f" (~{event.total_steps} est.)" if event.total_steps else "")
        return f"step {event.step}/{event.total_steps}"

    def budget_left(self, elapsed_s: float) -> str:
        return f"{fmt_seconds(max(0.0, (self.budget or 0.0) - elapsed_s))} left"

    def on_eval(self, event: EvalDone) -> None:
        if event.split == "base_eval":
            self.say(f"[dim]base eval (forgetting) step {event.step}: loss {fmt_loss(event.eval_loss)}{fmt_ppl(event.perplexity)}[/]")
        if event.split != "eval":
            return
        extra = "  ".join(f"{k} {v:.3f}" for k, v in event.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        self.say(
            f"[magenta]eval[/] step {event.step}: loss {fmt_loss(event.eval_loss)}{fmt_coverage(event)}{fmt_ppl(event.perplexity)}"
            + (f"  {extra}" if extra else "")
        )

    def on_finished(self, event: RunFinished) -> None:
        self.say(summary_table(event))


class RichPrinter(_EventPrinter):
    """Progress bar with the engine's ETA, step, loss, eval loss and tokens/s; a summary at the end.

    The ETA is the engine's (``StepLogged.eta_s``: steps, epochs or the time budget left), not
    Rich's own estimate from its samples; the last frame is the run's last step (``finished``
    and ``failed`` carry it), not the last logged one.
    """

    def __init__(self, console: Console | None = None):
        super().__init__(console or Console(stderr=False))
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[where]}"),
            TextColumn("loss [cyan]{task.fields[loss]}"),
            TextColumn("eval [magenta]{task.fields[eval_loss]}"),
            TextColumn("{task.fields[rate]} tok/s"),
            TextColumn("ETA {task.fields[eta]}"),
            console=self.console,
            transient=False,
        )
        self.task_id: Any = None
        self.eval_loss = "-"

    def on_started(self, event: RunStarted) -> None:
        super().on_started(event)
        self.progress.start()
        self.task_id = self.progress.add_task(
            event.objective, total=self.budget or event.total_steps, completed=0 if self.budget else event.resumed_from_step,
            loss="-", eval_loss=self.eval_loss, rate="-", where=f"step {event.resumed_from_step}", eta="-",
        )

    def on_step(self, event: StepLogged) -> None:
        if self.task_id is None:
            return
        self.total_steps = event.total_steps
        if self.budget:  # the bar is the budget spent; the steps are an estimate
            done: dict[str, Any] = {"completed": min(event.elapsed_s, self.budget)}
            where = self.where(event)  # the ETA column says the budget left
        else:
            done, where = {"completed": event.step, "total": event.total_steps}, self.where(event)
        self.progress.update(self.task_id, loss=fmt_loss(event.loss), rate=fmt_rate(event.tokens_per_s),
                             eval_loss=self.eval_loss, where=where, eta=fmt_eta(event.eta_s), **done)

    def on_eval(self, event: EvalDone) -> None:
        if event.split == "eval":
            self.eval_loss = fmt_loss(event.eval_loss)
            if self.task_id is not None:
                self.progress.update(self.task_id, eval_loss=self.eval_loss)
        super().on_eval(event)

    def last_frame(self, step: int, finished: bool) -> None:
        """The bar at the step the run ended on (a stop lands between logs), then stopped."""
        if self.task_id is not None:
            if self.budget:
                where = f"step {step}"
                done = {"completed": self.budget} if finished else {}
            else:
                total = max(self.total_steps, step)
                where, done = f"step {step}/{total}", {"completed": step, "total": total}
            self.progress.update(self.task_id, where=where, eta=fmt_eta(0) if finished else "-", **done)
        self.progress.stop()

    def on_failed(self, event: RunFailed) -> None:
        self.last_frame(event.step, finished=False)

    def on_finished(self, event: RunFinished) -> None:
        self.last_frame(event.step, finished=event.status == "finished")
        super().on_finished(event)


class PlainPrinter(_EventPrinter):
    """One flushed line per log interval and per eval, for stdout that is not a terminal
    (``nohup ... > log``, CI): no live display, no colours; the same summary at the end."""

    def __init__(self, stream: Any = None, width: int | None = None):
        # Rich only renders (into a string); the lines are written here, so that a closed pipe
        # loses the lines rather than ending the run (Rich exits the process on one)
        super().__init__(Console(file=io.StringIO(), force_terminal=False, no_color=True, highlight=False, soft_wrap=True,
                                 width=width))
        self.stream = stream
        self.closed = False

    def say(self, text: Any, markup: bool = True) -> None:
        if self.closed:
            return
        with self.console.capture() as captured:
            self.console.print(text, markup=markup)
        stream = self.stream or sys.stdout
        try:
            stream.write(captured.get())
            stream.flush()
        except OSError:  # a pipe closed early (`| head`), a full disk: the run goes on, metrics.jsonl has it all
            self.closed = True

    def on_step(self, event: StepLogged) -> None:
        self.total_steps = event.total_steps
        left = self.budget_left(event.elapsed_s) if self.budget else f"ETA {fmt_eta(event.eta_s)}"
        self.say(f"{self.where(event)}  loss {fmt_loss(event.loss)}  lr {event.lr:.1e}  "
                 f"{fmt_rate(event.tokens_per_s)} tok/s  {left}", markup=False)


def fmt_ppl(value: Any) -> str:
    """``  ppl 12.34`` for a language-model loss; nothing for any other (its event has no perplexity)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return ""
    return f"  ppl {value:.2f}"


def summary_table(event: RunFinished) -> Table:
    """The end of a run: steps, eval loss (and, for a language-model loss, perplexity) before -> after,
    throughput, the task's metrics, where it is."""
    s = event.summary
    table = Table(title=f"Run {event.status}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("steps", str(s.get("steps")))
    table.add_row("eval loss", f"{fmt_loss(s.get('eval_loss_before'))} -> {fmt_loss(s.get('eval_loss_after'))}")
    if s.get("perplexity_after") is not None:  # None: not a language-model loss
        table.add_row("perplexity", f"{_fmt_ppl(s.get('perplexity_before'))} -> {_fmt_ppl(s.get('perplexity_after'))}")
    if s.get("tokens_per_s"):
        table.add_row("throughput", f"{fmt_rate(s['tokens_per_s'])} tokens/s over {s.get('train_time_s')} s")
    for key, value in (s.get("metrics") or {}).items():
        table.add_row(key, _fmt_metric(value))
    table.add_row("saved to", Text(event.model_dir))
    table.add_row("inspect", Text(s.get("inspect_command", "")))
    return table


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
