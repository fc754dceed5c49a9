"""What every objective provides to the engine, and the two data shapes it uses.

A task knows its model class, its defaults, how to turn a corpus into batches, and what
extra metrics an eval reports. The engine knows none of this: it asks the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from workbench.corpora import Corpus
from workbench.errors import BaseModelError

Batch = dict[str, torch.Tensor]


class TaskData:
    """Indexable train/eval examples that turn into model-ready CPU batches."""

    def num_examples(self, split: str) -> int:
        raise NotImplementedError

    def batch(self, split: str, indices: list[int]) -> tuple[Batch, int]:
        """Return (model kwargs on CPU, number of real tokens in the batch)."""
        raise NotImplementedError


@dataclass
class BlockData(TaskData):
    """Fixed-length token blocks held as one tensor per split (packed CLM/MLM).

    Indexing a tensor is the cheapest batch there is, so the engine's data path costs no
    more than a hand-written loop's. ``transform`` adds labels (shifted copy, masking).
    Large corpora hold ``packing.ArrowBlocks`` instead: memory-mapped, indexed the same way.
    """

    train: torch.Tensor
    eval: torch.Tensor
    transform: Callable[[torch.Tensor], Batch]

    def num_examples(self, split: str) -> int:
        return int((self.train if split == "train" else self.eval).shape[0])

    def batch(self, split: str, indices: list[int]) -> tuple[Batch, int]:
        blocks = (self.train if split == "train" else self.eval)[indices]
        return self.transform(blocks), blocks.numel()


@dataclass
class RowData(TaskData):
    """Variable-length rows in ``datasets`` tables, padded per batch by ``collate``."""

    train: Any
    eval: Any
    collate: Callable[[list[dict[str, Any]]], Batch]

    def num_examples(self, split: str) -> int:
        return len(self.train if split == "train" else self.eval)

    def batch(self, split: str, indices: list[int]) -> tuple[Batch, int]:
        table = self.train if split == "train" else self.eval
        columns = table[indices]
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
        batch = self.collate(rows)
        tokens = int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
        return batch, tokens


@dataclass
class TaskDefaults:
    lr: float
    batch_size: int
    seq_len: int
    max_steps: int | None = None
    epochs: float | None = None
    warmup_ratio: float = 0.05


@dataclass
class Task:
    """Base class: subclasses fill in the objective-specific parts."""

    name: str = ""
    auto_class_name: str = ""
    masked: bool = True
    pretraining: bool = True
    description: str = ""
    scratch_defaults: TaskDefaults = field(default_factory=lambda: TaskDefaults(1e-3, 32, 128, max_steps=600))
    base_defaults: TaskDefaults = field(default_factory=lambda: TaskDefaults(5e-5, 16, 128, epochs=3))

    @property
    def auto_class(self) -> Any:
        import transformers

        return getattr(transformers, self.auto_class_name)

    def check_base(self, config: Any, where: str) -> None:
        """Fail if the base's architecture has no head for this objective."""
        from transformers.models.auto import modeling_auto

        mapping = getattr(modeling_auto, self.mapping_name(), {})
        if config.model_type not in mapping:
            raise BaseModelError(
                f"a {config.model_type} model cannot do {self.name} ({self.description})",
                where=where,
                fix=self.base_fix(),
            )

    def mapping_name(self) -> str:
        raise NotImplementedError

    def base_fix(self) -> str:
        return "pick a base whose architecture fits this objective"

    def build_model(self, size: str, tokenizer: Any, seq_len: int) -> Any:
        raise NotImplementedError

    def model_kwargs(self, data_info: dict[str, Any]) -> dict[str, Any]:
        """Extra ``from_pretrained`` kwargs (label maps for classification heads)."""
        return {}

    def prepare(self, corpus: Corpus, tokenizer: Any, spec: Any) -> TaskData:
        raise NotImplementedError

    def eval_metrics(self, outputs: Any, batch: Batch, totals: dict[str, float]) -> None:
        """Accumulate extra eval metrics (sums) from one eval batch; default none."""

    def finish_metrics(self, totals: dict[str, float]) -> dict[str, float]:
        return {}

    def final_report(self, model: Any, tokenizer: Any, data: TaskData, spec: Any, run_dir: Any) -> dict[str, Any]:
        """Task metrics on the whole eval split after training (accuracy, F1, samples...).

        Returned values go into ``summary.json`` under ``metrics``; files may be written
        into ``run_dir.path``. Default: nothing beyond the eval loss.
        """
        return {}
