"""BERT pre-training: masked LM and next-sentence prediction heads trained together.

Pairs come from the corpus: sentence B is the true next sentence half the time and a
random sentence from another document otherwise (label 0 = is next, 1 = random, as in
``BertForPreTraining``).
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING, Any

import datasets
import torch
from transformers import BertForPreTraining

from workbench.corpora import progress
from workbench.corpora.progress import advance
from workbench.errors import BaseModelError, CorpusError
from workbench.models import bert_config, is_decoder
from workbench.tasks.base import RowData, Task, TaskDefaults
from workbench.tasks.mlm import masked_positions_module, masking_collator
from workbench.tasks.packing import default_num_proc

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")


def split_sentences(document: str) -> list[str]:
    """Lines first, then sentence punctuation; good enough for pair building."""
    sentences: list[str] = []
    for line in document.splitlines():
        line = line.strip()
        if line:
            sentences.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return sentences


NSP_MODEL_TYPES = ("bert", "megatron-bert")
"""Encoders whose pre-training class has the next-sentence head ``prepare``'s labels train."""

NEGATIVE_TRIES = 8
"""Random documents tried for a negative sentence before the pair stays a positive one."""


def pair_documents(ds: datasets.Dataset, text_column: str, seed: int) -> datasets.Dataset:
    """Consecutive sentence pairs, half replaced by a sentence from another document.

    A batched ``map`` over the documents: the corpus stays memory-mapped Arrow, and a
    negative reads one random other document by index, so a corpus larger than memory
    never has to be held whole. A document's pairs depend only on (seed, its index), so the
    result is the same in one process or several, and is cached by ``datasets``.
    """
    texts = ds.select_columns([text_column])
    n = len(texts)

    def other_sentence(rng: random.Random, index: int) -> str | None:
        for _ in range(NEGATIVE_TRIES):
            other = rng.randrange(n - 1)
            other = other + 1 if other >= index else other
            sentences = split_sentences(texts[other][text_column])
            if sentences:
                return rng.choice(sentences)
        return None

    def pairs(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        first: list[str] = []
        second: list[str] = []
        labels: list[int] = []
        for text, index in zip(batch[text_column], indices):
            sentences = split_sentences(text)
            rng = random.Random(seed * 1_000_003 + index)
            for i in range(len(sentences) - 1):
                negative = other_sentence(rng, index) if rng.random() >= 0.5 else None
                first.append(sentences[i])
                second.append(negative if negative is not None else sentences[i + 1])
                labels.append(0 if negative is None else 1)
        advance(len(indices))  # a no-op in map's worker processes
        return {"sentence_a": first, "sentence_b": second, "next_sentence_label": labels}

    fingerprint = getattr(ds, "_fingerprint", None)
    return texts.map(
        pairs, batched=True, batch_size=1000, with_indices=True, remove_columns=[text_column],
        num_proc=default_num_proc(n), desc="Building sentence pairs",
        new_fingerprint=f"nsp-pairs-v1-{fingerprint}-{seed}" if fingerprint else None,
    )


class NextSentenceTask(Task):
    def __init__(self) -> None:
        super().__init__(
            name="nsp",
            auto_class_name="AutoModelForPreTraining",
            masked=True,
            description="BERT pre-training (MLM + NSP) needs a BERT-family encoder",
            scratch_defaults=TaskDefaults(lr=2e-3, batch_size=64, seq_len=64, max_steps=800),
            base_defaults=TaskDefaults(lr=1e-4, batch_size=16, seq_len=128, epochs=1),
        )

    def mapping_name(self) -> str:
        return "MODEL_FOR_PRETRAINING_MAPPING_NAMES"

    def check_base(self, config: Any, where: str) -> None:
        if is_decoder(config):
            raise BaseModelError(f"a {config.model_type} model is a decoder and has no next-sentence head", where=where,
                                 fix="use --objective clm for decoders, or a BERT base for nsp")
        if config.model_type not in NSP_MODEL_TYPES:
            raise BaseModelError(f"a {config.model_type} model has no next-sentence head", where=where,
                                 fix="use a BERT base for nsp, or --objective mlm for other encoders")

    def build_model(self, spec: ResolvedSpec, tokenizer: Any) -> Any:
        return BertForPreTraining(bert_config(spec.model.shape, len(tokenizer), tokenizer))

    def training_module(self, model: Any, spec: ResolvedSpec) -> Any:
        return masked_positions_module(model, spec)

    def prepare(self, corpus: Any, tokenizer: Any, spec: ResolvedSpec, checked: Any = None) -> RowData:
        collator = masking_collator(tokenizer)
        splits = {}
        for split, ds, seed in (("train", corpus.train, spec.train.seed), ("eval", corpus.eval, spec.train.seed + 1)):
            with progress.stage("building pairs", len(ds)):
                table = pair_documents(ds, corpus.text_column, seed) if len(ds) >= 2 else None
            if table is None or len(table) == 0:
                raise CorpusError(
                    f"the {split} split has no sentence pairs (next-sentence prediction needs documents of 2+ sentences, and 2+ documents)",
                    where=corpus.source.location,
                    fix="separate documents with blank lines and give each several sentences",
                )

            def encode(batch: dict[str, list]) -> dict[str, list]:
                enc = tokenizer(batch["sentence_a"], batch["sentence_b"], truncation="longest_first", max_length=spec.data.seq_len)
                enc["next_sentence_label"] = batch["next_sentence_label"]
                advance(len(batch["sentence_a"]))
                return enc

            with progress.stage("tokenizing pairs", len(table)):
                splits[split] = table.map(encode, batched=True, remove_columns=table.column_names, desc="Tokenizing pairs")
        return RowData(train=splits["train"], eval=splits["eval"], collate=collator)

    def eval_metrics(self, outputs: Any, batch: dict[str, torch.Tensor], totals: dict[str, float]) -> None:
        predicted = outputs.seq_relationship_logits.argmax(-1)
        labels = batch["next_sentence_label"].to(predicted.device)
        totals["nsp_correct"] = totals.get("nsp_correct", 0.0) + float((predicted == labels).sum())
        totals["nsp_total"] = totals.get("nsp_total", 0.0) + float(labels.numel())

    def finish_metrics(self, totals: dict[str, float]) -> dict[str, float]:
        if totals.get("nsp_total"):
            return {"nsp_accuracy": totals["nsp_correct"] / totals["nsp_total"]}
        return {}
