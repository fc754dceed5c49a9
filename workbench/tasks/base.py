"""What every objective provides to the engine, and the two data shapes it uses.

A task knows its model class, its defaults, how to turn a corpus into batches, and what
extra metrics an eval reports. The engine knows none of this: it asks the task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

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
    """Base class: every method the engine calls is declared here, with its default.

    The engine's order of calls: ``load_corpus`` -> ``check_data`` (fail before anything is
    written; returns the facts ``prepare`` needs) -> ``check_base`` / ``build_model`` ->
    ``prepare`` -> ``training_module`` -> per step ``loss`` -> per eval ``eval_step`` and
    ``finish_metrics`` -> ``final_report``.
    """

    name: str = ""
    auto_class_name: str = ""
    masked: bool = True
    pretraining: bool = True
    description: str = ""
    scratch_defaults: TaskDefaults = field(default_factory=lambda: TaskDefaults(1e-3, 32, 128, max_steps=600))
    base_defaults: TaskDefaults = field(default_factory=lambda: TaskDefaults(5e-5, 16, 128, epochs=3))
    needs_text_column: bool = True
    """Whether the corpus must have a text column (a labelled table may have ``sentence``...)."""
    forgetting_objective: str | None = None
    """From a base run: the LM objective (``mlm``/``clm``) whose loss on the base's own eval
    split is tracked at every eval to show forgetting; None for no forgetting check."""

    @property
    def auto_class(self) -> Any:
        import transformers

        return getattr(transformers, self.auto_class_name)

    # ------------------------------------------------------------------ data
    def load_corpus(self, spec: Any) -> Any:
        """The data this task trains on, from ``spec.corpus``; default: a text corpus."""
        from workbench.corpora import load_corpus

        return load_corpus(spec.corpus, text_column=spec.text_column, eval_corpus=spec.eval_corpus,
                           eval_fraction=spec.eval_fraction, seed=spec.seed, require_text=self.needs_text_column)

    def check_data(self, corpus: Any, spec: Any) -> Any:
        """Validate labels, tags or answer spans before anything is written.

        Returns what ``prepare`` and ``model_kwargs`` need (label names...); default None.
        """
        return None

    def prepare(self, corpus: Any, tokenizer: Any, spec: Any, checked: Any = None) -> TaskData:
        raise NotImplementedError

    def run_meta(self, data: TaskData) -> dict[str, Any]:
        """Facts about the prepared data recorded in ``run.toml`` (label names...)."""
        return {}

    # ------------------------------------------------------------------ model
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
        raise BaseModelError(f"{self.name} needs a pre-trained base", fix="pass --base")

    def model_kwargs(self, checked: Any, tokenizer: Any = None) -> dict[str, Any]:
        """Extra ``from_pretrained`` kwargs: label maps for classification heads (from
        ``checked``) and the base tokenizer's pad id where a head or ``generate`` needs it."""
        return {}

    def training_module(self, model: Any, spec: Any) -> Any:
        """The module the loop trains (default ``model``; clm may use its lean twin)."""
        if spec.lean_model == "on":
            from workbench.errors import SpecError

            raise SpecError(f'lean_model = "on", but the lean GPT-2 trains clm on packed blocks, not {self.name}',
                            fix='use --no-lean (lean_model = "off") or "auto"')
        return model

    # ------------------------------------------------------------------ steps and evals
    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        """The training loss of one micro-batch; override for custom losses or two models."""
        return model(**batch).loss

    def eval_step(self, model: Any, batch: Batch, totals: dict[str, float]) -> torch.Tensor | None:
        """One eval batch: add metric sums to ``totals`` and return its loss (or None)."""
        outputs = model(**batch)
        self.eval_metrics(outputs, batch, totals)
        return outputs.loss

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
