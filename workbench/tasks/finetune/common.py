"""Pieces the fine-tuning tasks share: row data with run facts, splits, base kinds."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from workbench.errors import BaseModelError
from workbench.models import is_decoder
from workbench.tasks.base import RowData, TaskDefaults
from workbench.tasks.finetune.labels import label_maps

T = TypeVar("T")

FINETUNE_DEFAULTS = TaskDefaults(lr=5e-5, batch_size=16, seq_len=128, epochs=3, warmup_ratio=0.1)
"""Fine-tuning: a small learning rate and whole epochs, not a step count (as HF's examples)."""


@dataclass
class LabelledRows(RowData):
    """Rows plus ``meta``: facts for run.toml (label names, eval source), via ``run_meta``."""

    meta: dict[str, Any] = field(default_factory=dict)


def require_encoder(config: Any, where: str, objective: str, why: str) -> None:
    if is_decoder(config):
        raise BaseModelError(
            f"a {config.model_type} model is a decoder; {objective} {why}",
            where=where,
            fix="use an encoder base (BERT family, e.g. a run made with `workbench run --objective mlm`)",
        )


def label_kwargs(names: Sequence[str]) -> dict[str, Any]:
    """``from_pretrained`` kwargs that size a classification head and name its classes."""
    id2label, label2id = label_maps(names)
    return {"num_labels": len(names), "id2label": id2label, "label2id": label2id}


def held_out(items: Sequence[T], fraction: float, seed: int, holdout: str = "random") -> tuple[list[T], list[T]]:
    """A seeded random split, or (``holdout="tail"``) the last items; at least one item on
    each side when there are two."""
    order = list(range(len(items)))
    if holdout == "tail":
        order.reverse()
    else:
        random.Random(seed).shuffle(order)
    n_eval = min(len(items) - 1, max(1, round(len(items) * fraction))) if len(items) > 1 else 0
    eval_ids = set(order[:n_eval])
    train = [x for i, x in enumerate(items) if i not in eval_ids]
    evaluation = [x for i, x in enumerate(items) if i in eval_ids] or list(items)
    return train, evaluation


def batches(n: int, size: int) -> Iterator[list[int]]:
    for start in range(0, n, size):
        yield list(range(start, min(n, start + size)))


def model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


def predict_rows(model: Any, data: RowData, split: str, batch_size: int, each: Callable[[Any, dict], None]) -> None:
    """Run ``model`` over a whole split in order, calling ``each(outputs, batch)``."""
    device = model_device(model)
    for indices in batches(data.num_examples(split), batch_size):
        batch, _ = data.batch(split, indices)
        batch = {k: v.to(device) for k, v in batch.items()}
        each(model(**batch), batch)
