"""The points of one run's loss curves, filled from events in any thread, read as copies.

Plain Python (no Textual): the training thread appends under a lock, and the UI thread
takes ``snapshot()`` copies before plotting, so it never plots a list that is growing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workbench.runs.events import EvalDone, Event, Preparing, RunFailed, RunFinished, RunStarted, StepLogged, event_from_json
from workbench.runs.events import Message as RunNote  # the run's "message" event, not a Textual message

SAVING = "saving checkpoint…"
"""The status of a run asked to stop, while it finishes its step and saves its checkpoint."""


@dataclass
class CurveSnapshot:
    """An immutable-by-convention copy of the curves and the latest readouts."""

    name: str = ""
    status: str = "idle"
    train_steps: list[int] = field(default_factory=list)
    train_tokens: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_tokens: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    step: int = 0
    total_steps: int = 0
    lr: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    message: str = ""
    budget_s: float | None = None
    """A run that ends with its time budget: ``total_steps`` is then an estimate."""
    elapsed_s: float = 0.0
    stage: str = ""
    """Before the run starts: the engine's latest message (training the tokenizer, ...)."""


class Curves:
    """Thread-safe accumulator of train/eval loss points for one run."""

    def __init__(self, name: str = "") -> None:
        self._lock = threading.Lock()
        self._data = CurveSnapshot(name=name)

    def add(self, event: Event) -> None:
        with self._lock:
            d = self._data
            if isinstance(event, RunStarted):
                d.name, d.total_steps = event.name, event.total_steps
                d.status = SAVING if d.status == "stopping" else "running"  # a stop asked for while it prepared
                d.budget_s = event.time_budget_s if not event.total_steps else None
                d.step = max(d.step, event.resumed_from_step)
                d.stage = ""
            elif isinstance(event, RunNote):
                if d.status in ("idle", "starting", "waiting"):
                    d.stage = event.text
            elif isinstance(event, Preparing):
                if d.status in ("idle", "starting", "waiting"):
                    d.stage = preparing_text(event)
            elif isinstance(event, StepLogged):
                if math.isfinite(event.loss):
                    d.train_steps.append(event.step)
                    d.train_tokens.append(event.tokens)
                    d.train_loss.append(event.loss)
                d.step, d.total_steps = event.step, event.total_steps
                d.lr, d.tokens_per_s, d.eta_s, d.elapsed_s = event.lr, event.tokens_per_s, event.eta_s, event.elapsed_s
            elif isinstance(event, EvalDone) and event.split == "eval" and math.isfinite(event.eval_loss):
                d.eval_steps.append(event.step)
                d.eval_tokens.append(d.train_tokens[-1] if d.train_tokens and event.step else 0)
                d.eval_loss.append(event.eval_loss)
            elif isinstance(event, RunFinished):
                d.status, d.step, d.eta_s = event.status, event.step, 0.0
            elif isinstance(event, RunFailed):
                d.status, d.message = "failed", event.message

    def set_status(self, status: str) -> None:
        with self._lock:
            self._data.status = status

    def mark_stopping(self) -> None:
        """A stop was asked for: a running run's status says it saves its checkpoint (until
        its ``RunFinished``); one still preparing says it stops."""
        with self._lock:
            d = self._data
            if d.status == "running":
                d.status = SAVING
            elif d.status in ("idle", "starting", "waiting"):
                d.status = "stopping"

    def snapshot(self) -> CurveSnapshot:
        with self._lock:
            d = self._data
            return CurveSnapshot(
                name=d.name, status=d.status,
                train_steps=list(d.train_steps), train_tokens=list(d.train_tokens), train_loss=list(d.train_loss),
                eval_steps=list(d.eval_steps), eval_tokens=list(d.eval_tokens), eval_loss=list(d.eval_loss),
                step=d.step, total_steps=d.total_steps, lr=d.lr, tokens_per_s=d.tokens_per_s, eta_s=d.eta_s,
                message=d.message, budget_s=d.budget_s, elapsed_s=d.elapsed_s, stage=d.stage,
            )

    @classmethod
    def from_events(cls, events: Iterable[dict[str, Any] | Event], name: str = "") -> Curves:
        """Curves of a finished (or running) run, from its ``metrics.jsonl`` lines."""
        curves = cls(name)
        for item in events:
            event = event_from_json(item) if isinstance(item, dict) else item
            if event is not None:
                curves.add(event)
        return curves


def preparing_text(event: Preparing) -> str:
    """``tokenizing 42%``; a stage that cannot say how far it is: its name."""
    if event.fraction is None or not math.isfinite(event.fraction):
        return event.stage
    return f"{event.stage} {min(100, max(0, int(100 * event.fraction)))}%"


def smooth(values: list[float], weight: float = 0.6) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing)."""
    out, last, norm = [], 0.0, 0.0
    for value in values:
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def short_label(name: str, others: Iterable[str], width: int = 16) -> str:
    """``name`` in at most ``width`` characters, still told apart from ``others`` (the other
    runs' names): the whole name if it fits, else its start or its end (where run names keep
    their time stamp), else its start and end around an ellipsis."""
    if len(name) <= width:
        return name
    rivals = [other for other in others if other != name]
    head, tail = name[: width - 1], name[-(width - 1):]
    if not any(other.startswith(head) for other in rivals):
        return head + "…"
    if not any(other.endswith(tail) for other in rivals):
        return "…" + tail
    half = (width - 1) // 2
    return name[:half] + "…" + name[-(width - 1 - half):]
