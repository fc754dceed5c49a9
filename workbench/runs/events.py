"""Events a run emits. Listeners (the Rich printer, the TUI, ``metrics.jsonl``) get the
same objects; ``to_json`` is the line format of ``metrics.jsonl``."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import types
import typing
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
    time_budget_s: float | None = None
    """With ``total_steps`` 0: the run ends when this budget of training time is spent."""
    trainable_parameters: int | None = None
    """Parameters that train (fewer than ``parameters`` with method lora or frozen)."""
    method: str = "full"


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
    perplexity: float | None
    """``exp(eval_loss)`` for a language-model loss; None for any other (a classification loss has none)."""
    metrics: dict = field(default_factory=dict)
    split: str = "eval"
    examples: int = 0
    """Eval examples this loss (and ``metrics``) covers; 0 in runs from before it was recorded."""
    tokens: int = 0
    """Real (unpadded) tokens in those examples."""
    fraction: float = 1.0
    """``examples`` over the examples in the split: below 1 for a seeded sample."""
    coverage: str = ""
    """The same in words, e.g. "seeded sample: 240 of 1,694 blocks (14%)"."""


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


@dataclass
class Preparing(Event):
    """A stage of the set-up before the first step, and how far it is: ``fraction`` 0 at its
    start, 1 at its end, and in between at most a few times a second (``corpora.progress``);
    None for a stage that cannot say (a cache hit, several processes)."""

    kind: ClassVar[str] = "preparing"
    stage: str
    fraction: float | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (RunStarted, StepLogged, EvalDone, ProbesRecorded, CheckpointSaved, RunFinished, RunFailed, Message,
                Preparing)
}

Listener = Callable[[Event], None]


MAX_COUNT = 2**63
"""Steps, tokens and parameters at or above this are not a run's counts but damage."""

_CHECKS: dict[Any, tuple[Callable[[Any], bool], str]] = {
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_COUNT, "a count"),
    float: (lambda v: isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**1000),
            "a number"),
    str: (lambda v: isinstance(v, str), "text"),
    bool: (lambda v: isinstance(v, bool), "true or false"),
    dict: (lambda v: isinstance(v, dict), "an object"),
    list: (lambda v: isinstance(v, list), "a list"),
    type(None): (lambda v: v is None, "null"),
}
"""Field type -> (does a JSON value fit it, what it should have been)."""


def _options(kind: Any) -> tuple[Any, ...]:
    """``float | None`` -> (float, NoneType); ``list[str]`` -> (list,); ``int`` -> (int,)."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return tuple(o for k in typing.get_args(kind) for o in _options(k))
    return (typing.get_origin(kind) or kind,)


def value_problem(value: Any, kind: Any) -> str | None:
    """Why ``value`` does not fit the field type ``kind`` (None when it does)."""
    options = [_CHECKS.get(k, (lambda v, k=k: isinstance(v, k), getattr(k, "__name__", str(k)))) for k in _options(kind)]
    if any(fits(value) for fits, _ in options):
        return None
    return "is not " + " or ".join(name for _, name in options)


@functools.cache
def _field_types(cls: type[Event]) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type, required) of each field of an event class."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (f.name, hints[f.name], f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        for f in dataclasses.fields(cls)
    )


def event_problem(data: Any) -> str | None:
    """Why a ``metrics.jsonl`` line cannot be used as an event, or None when it can.

    The one check every reader goes through (the run listing, curves, following, the
    inspector), so a line with a missing or wrongly typed field is skipped and counted
    rather than handed to code that trusts it. A kind this version does not know is not
    a problem (a newer workbench may write it); readers ignore it.
    """
    if not isinstance(data, dict):
        return f"not a JSON object but {type(data).__name__}"
    kind = data.get("event")
    if not isinstance(kind, str):
        return "no event kind"
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        return None
    for name, field_type, required in _field_types(cls):
        if name not in data:
            if required:
                return f"{kind} event without {name}"
            continue
        problem = value_problem(data[name], field_type)
        if problem is not None:
            return f"{kind} event: {name} {problem}"
    return probe_records_problem(data["probes"]) if kind == ProbesRecorded.kind else None


_PROBE_FIELDS: dict[str, Any] = {"probe": str, "kind": str, "method": str, "approximate": bool, "top": list,
                                 "skipped": str | None}
"""One probe's answer, as a ``probes`` event and each ``probes.jsonl`` line hold it."""


def probe_records_problem(records: list) -> str | None:
    """Why a list of probe answers cannot be shown (None when it can): each is an object
    with a text ``probe`` and ``top`` entries of a text ``token`` and a finite ``prob``."""
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("probe"), str):
            return "a probe answer without its probe text"
        for name, kind in _PROBE_FIELDS.items():
            problem = value_problem(record[name], kind) if name in record else None
            if problem:
                return f"probe answer: {name} {problem}"
        if not all(_is_top_entry(entry) for entry in record.get("top", [])):
            return "probe answer: a top entry without a token and a finite prob"
    return None


def _is_top_entry(entry: Any) -> bool:
    """``{"token": text, "prob": finite number}``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        return False
    return value_problem(entry.get("prob"), float) is None and math.isfinite(entry["prob"])


def probe_line_problem(data: Any) -> str | None:
    """Why a ``probes.jsonl`` line cannot be used (None when it can): ``{"step": count,
    "probes": [answer, ...]}`` (see ``probe_records_problem``)."""
    if not isinstance(data, dict):
        return f"not a JSON object but {type(data).__name__}"
    for name, kind in (("step", int), ("probes", list)):
        problem = value_problem(data[name], kind) if name in data else "is missing"
        if problem:
            return f"{name} {problem}"
    return probe_records_problem(data["probes"])


def event_from_json(data: Any) -> Event | None:
    """Rebuild an event from a ``metrics.jsonl`` line; unknown kinds and lines that fail
    ``event_problem`` give ``None``."""
    if event_problem(data) is not None:
        return None
    cls = EVENT_TYPES.get(data["event"])
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
