"""The objective registry: what an objective is, in one table.

Each line names an objective, whether it pre-trains or fine-tunes, a one-line summary (for
``--help`` and the TUI), and the ``module:Class`` of its task. This module sits at the bottom
of the import layers (it imports only ``errors``), so the spec (``config.py``) can check an
objective's name without importing any task, and the tasks can name the spec's types.
``workbench.tasks.get_task`` imports a task module on first use. Adding an objective is one
task module plus one ``register`` line (see ``tests/test_registry.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.errors import SpecError


@dataclass(frozen=True)
class Objective:
    name: str
    kind: str
    """``pretrain`` (from scratch or continued from a base) or ``finetune`` (needs a base)."""
    summary: str
    task: str
    """``module:Class`` of the task, imported on first use."""
    decoder_task: str | None = None
    """Another ``module:Class`` used when the base is a decoder (qa: generative answers)."""
    metrics: tuple[str, ...] = ()
    """The task metrics its runs report (in evals or the summary), besides ``eval_loss``:
    what ``workbench sweep --metric`` may score."""

    @property
    def needs_base(self) -> bool:
        return self.kind == "finetune"


OBJECTIVES: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
    OBJECTIVES[objective.name] = objective
    return objective


register(Objective("mlm", "pretrain", "masked LM (BERT)", "workbench.tasks.mlm:MaskedLMTask"))
register(Objective("nsp", "pretrain", "masked LM + next-sentence prediction (BERT)", "workbench.tasks.nsp:NextSentenceTask",
                   metrics=("nsp_accuracy",)))
register(Objective("clm", "pretrain", "causal LM, next-token prediction (GPT)", "workbench.tasks.clm:CausalLMTask"))
register(Objective("sentiment", "finetune", "text classification", "workbench.tasks.finetune.sentiment:SentimentTask",
                   metrics=("accuracy", "macro_f1")))
register(Objective("ner", "finetune", "named-entity recognition", "workbench.tasks.finetune.ner:NERTask",
                   metrics=("entity_f1", "entity_precision", "entity_recall")))
register(Objective("qa", "finetune", "question answering (spans, or generated with a decoder)",
                   "workbench.tasks.finetune.qa:ExtractiveQATask", decoder_task="workbench.tasks.finetune.qa:GenerativeQATask",
                   metrics=("exact_match", "f1")))
register(Objective("generation", "finetune", "text generation (domain adaptation of a decoder)",
                   "workbench.tasks.finetune.generation:GenerationTask", metrics=("domain_eval_loss", "domain_perplexity")))


def objective_names(kind: str | None = None) -> tuple[str, ...]:
    """Registered objectives in table order, optionally only ``pretrain`` or ``finetune``."""
    return tuple(name for name, o in OBJECTIVES.items() if kind is None or o.kind == kind)


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise SpecError(f"unknown objective {name!r}", fix=f"use one of: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


PERPLEXITY_CAP = 50.0
"""Losses above this are read as ``exp(50)``: a diverged run's perplexity stays a (huge) number."""


def perplexity(loss: float | None) -> float:
    """``exp(loss)`` of a mean token cross-entropy (nats), the one way every report turns an LM
    loss into a perplexity; NaN for a missing or non-finite loss."""
    if loss is None or not math.isfinite(loss):
        return float("nan")
    return float(math.exp(min(loss, PERPLEXITY_CAP)))
