"""What every objective provides to the engine, and the two data shapes it uses.

A task knows its model class, its defaults, how to turn a corpus into batches, and what
extra metrics an eval reports. The engine knows none of this: it asks the task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from workbench.corpora import load_corpus
from workbench.errors import BaseModelError, SpecError

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

Batch = dict[str, torch.Tensor]


class TaskData:
    """Indexable train/eval examples that turn into model-ready CPU batches."""

    def num_examples(self, split: str) -> int:
        raise NotImplementedError

    def batch(self, split: str, indices: list[int]) -> tuple[Batch, int]:
        """Return (model kwargs on CPU, number of real tokens in the batch)."""
        raise NotImplementedError

    def window_starts(self) -> int | None:
        """With random windows, how many start offsets training draws from; None: it
        indexes whole examples."""
        return None


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
    sampling: str = "blocks"
    """``random``: training indices are token offsets, and each row is the ``seq_len``
    tokens from there (nanoGPT's windows: every offset, not one per block); eval stays on
    the aligned blocks, so it covers the split exactly once."""

    def num_examples(self, split: str) -> int:
        return int((self.train if split == "train" else self.eval).shape[0])

    def window_starts(self) -> int | None:
        if self.sampling != "random":
            return None
        blocks, length = self.train.shape
        return (blocks - 1) * length + 1  # every window that lies inside the packed text

    def batch(self, split: str, indices: list[int]) -> tuple[Batch, int]:
        if split == "train" and self.sampling == "random":
            rows = windows(self.train, indices)
        else:
            rows = (self.train if split == "train" else self.eval)[indices]
        return self.transform(rows), rows.numel()


def windows(blocks: Any, offsets: list[int]) -> torch.Tensor:
    """Rows of ``seq_len`` tokens starting at token ``offsets`` of the packed text, read from
    the (one or two) blocks each spans: a tensor or memory-mapped ``ArrowBlocks`` alike."""
    length = blocks.shape[1]
    starts = torch.tensor(offsets, dtype=torch.long)
    first = starts // length
    if isinstance(blocks, torch.Tensor):
        flat = blocks.view(-1)
        return flat[starts[:, None] + torch.arange(length)]
    last = torch.clamp(first + 1, max=blocks.shape[0] - 1)
    pairs = torch.cat([blocks[first.tolist()], blocks[last.tolist()]], dim=1)
    return pairs.gather(1, (starts % length)[:, None] + torch.arange(length))


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
    windowed: bool = False
    """Trains on windows of packed text, so ``sampling`` (random offsets or aligned blocks) applies."""
    description: str = ""
    scratch_defaults: TaskDefaults = field(default_factory=lambda: TaskDefaults(1e-3, 32, 128, max_steps=600))
    base_defaults: TaskDefaults = field(default_factory=lambda: TaskDefaults(5e-5, 16, 128, epochs=3))
    needs_text_column: bool = True
    """Whether the corpus must have a text column (a labelled table may have ``sentence``...)."""
    lm_loss: bool = False
    """The loss is a per-token language-model cross-entropy, so ``exp(loss)`` is a perplexity
    (clm and mlm; not a classification, NER or QA loss, nor nsp's sum of two losses)."""
    forgetting_objective: str | None = None
    """From a base run: the LM objective (``mlm``/``clm``) whose loss on the base's own eval
    split is tracked at every eval to show forgetting; None for no forgetting check."""

    @property
    def auto_class(self) -> Any:
        import transformers  # transformers: loaded on first use

        return getattr(transformers, self.auto_class_name)

    # ------------------------------------------------------------------ data
    def load_corpus(self, spec: ResolvedSpec) -> Any:
        """The data this task trains on, from ``spec.data.corpus``; default: a text corpus."""
        return load_corpus(spec.data.corpus, text_column=spec.data.text_column, eval_corpus=spec.data.eval_corpus,
                           eval_fraction=spec.data.eval_fraction, seed=spec.train.seed, require_text=self.needs_text_column,
                           holdout=spec.data.holdout)

    def check_data(self, corpus: Any, spec: ResolvedSpec) -> Any:
        """Validate labels, tags or answer spans before anything is written.

        Returns what ``prepare`` and ``model_kwargs`` need (label names...); default None.
        """
        return None

    def prepare(self, corpus: Any, tokenizer: Any, spec: ResolvedSpec, checked: Any = None) -> TaskData:
        raise NotImplementedError

    def run_meta(self, data: TaskData) -> dict[str, Any]:
        """Facts about the prepared data recorded in ``run.toml`` (label names...)."""
        return {}

    # ------------------------------------------------------------------ model
    def check_base(self, config: Any, where: str) -> None:
        """Fail if the base's architecture has no head for this objective."""
        from transformers.models.auto import modeling_auto  # transformers: loaded on first use

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

    def build_model(self, spec: ResolvedSpec, tokenizer: Any) -> Any:
        """A freshly initialised model of the spec's resolved shape (``n_layer``, ``d_model``...)."""
        raise BaseModelError(f"{self.name} needs a pre-trained base", fix="pass --base")

    def model_kwargs(self, checked: Any, tokenizer: Any = None) -> dict[str, Any]:
        """Extra ``from_pretrained`` kwargs: label maps for classification heads (from
        ``checked``) and the base tokenizer's pad id where a head or ``generate`` needs it."""
        return {}

    def training_module(self, model: Any, spec: ResolvedSpec) -> Any:
        """The module the loop trains (default ``model``; clm may use its lean twin)."""
        if spec.runtime.lean_model == "on":
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

    def final_report(self, model: Any, tokenizer: Any, data: TaskData, spec: ResolvedSpec, run_dir: Any) -> dict[str, Any]:
        """Task metrics on the whole eval split after training (accuracy, F1, samples...).

        Returned values go into ``summary.json`` under ``metrics``; files may be written
        into ``run_dir.path``. Default: nothing beyond the eval loss.
        """
        return {}


def lean_twin(model: Any, spec: ResolvedSpec, twin: Any) -> Any:
    """``twin.sharing(model)`` (a module on ``model``'s own parameters that does less per
    step), or ``model`` itself when the twin cannot mirror it: quietly for ``lean_model =
    "auto"``, as a one-line error for ``"on"``."""
    problem = twin.supports(model)
    if problem is None:
        return twin.sharing(model)
    if spec.runtime.lean_model == "on":
        raise SpecError(f'lean_model = "on", but {problem}', fix='use --no-lean (lean_model = "off") or "auto"')
    return model
