"""Events a run emits. Listeners (the Rich printer, the TUI, ``metrics.jsonl``) get the
same objects; ``to_json`` is the line format of ``metrics.jsonl``."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar


@dataclass
class Event:
    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        data = {"event": self.kind}
        data.update(dataclasses.asdict(self))
        return data


@dataclass
class RunStarted(Event):
    kind: ClassVar[str] = "started"
    run_dir: str
    name: str
    objective: str
    corpus: str
    total_steps: int
    parameters: int
    device: str
    precision: str
    resumed_from_step: int = 0
    spec: dict = field(default_factory=dict)


@dataclass
class StepLogged(Event):
    """Train loss averaged over the steps since the last log, read once per interval."""

    kind: ClassVar[str] = "step"
    step: int
    total_steps: int
    loss: float
    lr: float
    tokens: int
    tokens_per_s: float
    elapsed_s: float
    eta_s: float
    grad_norm: float | None = None


@dataclass
class EvalDone(Event):
    kind: ClassVar[str] = "eval"
    step: int
    eval_loss: float
    perplexity: float
    metrics: dict = field(default_factory=dict)
    split: str = "eval"


@dataclass
class ProbesRecorded(Event):
    kind: ClassVar[str] = "probes"
    step: int
    probes: list = field(default_factory=list)


@dataclass
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint"
    step: int
    path: str
    best: bool = False


@dataclass
class RunFinished(Event):
    """The run ended on its own (``status`` finished) or was stopped (``stopped``)."""

    kind: ClassVar[str] = "finished"
    status: str
    step: int
    run_dir: str
    model_dir: str
    summary: dict = field(default_factory=dict)


@dataclass
class RunFailed(Event):
    kind: ClassVar[str] = "failed"
    message: str
    step: int = 0
    run_dir: str = ""


@dataclass
class Message(Event):
    """Something worth telling the user mid-run (tokenizer trained, data prepared...)."""

    kind: ClassVar[str] = "message"
    text: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (RunStarted, StepLogged, EvalDone, ProbesRecorded, CheckpointSaved, RunFinished, RunFailed, Message)
}

Listener = Callable[[Event], None]


def event_from_json(data: dict[str, Any]) -> Event | None:
    """Rebuild an event from a ``metrics.jsonl`` line; unknown kinds give ``None``."""
    cls = EVENT_TYPES.get(data.get("event", ""))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
