"""The objective registry: what an objective is, in one table.

Each line names an objective, whether it pre-trains or fine-tunes, a one-line summary (for
``--help`` and the TUI), and the ``module:Class`` of its task. Task modules are imported
only by ``get_task``, so listing or validating objectives (the CLI's ``--help``, the TUI's
choices) imports neither torch nor transformers. Adding an objective is one task module
plus one ``register`` line (see ``tests/test_registry.py``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import SpecError

if TYPE_CHECKING:
    from workbench.tasks.base import Task


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
                   "workbench.tasks.finetune.qa:ExtractiveQATask", decoder_task="workbench.tasks.finetune.qa:GenerativeQATask", metrics=("exact_match", "f1")))
register(Objective("generation", "finetune", "text generation (domain adaptation of a decoder)",
                   "workbench.tasks.finetune.generation:GenerationTask",
                   metrics=("domain_eval_loss", "domain_perplexity")))


def objective_names(kind: str | None = None) -> tuple[str, ...]:
    """Registered objectives in table order, optionally only ``pretrain`` or ``finetune``."""
    return tuple(name for name, o in OBJECTIVES.items() if kind is None or o.kind == kind)


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise SpecError(f"unknown objective {name!r}", fix=f"use one of: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def get_task(name: str, base_config: Any = None) -> Task:
    """A fresh task for objective ``name``; ``base_config`` picks the decoder variant."""
    objective = get_objective(name)
    target = objective.task
    if objective.decoder_task and base_config is not None:
        from workbench.models import is_decoder

        if is_decoder(base_config):
            target = objective.decoder_task
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()
