"""BERT pre-training: masked LM and next-sentence prediction heads trained together.

Pairs come from the corpus: sentence B is the true next sentence half the time and a
random sentence from another document otherwise (label 0 = is next, 1 = random, as in
``BertForPreTraining``).
"""

from __future__ import annotations

import random
import re
from typing import Any

import datasets
import torch
from transformers import BertForPreTraining

from workbench.errors import CorpusError
from workbench.models import bert_config
from workbench.tasks.base import RowData, Task, TaskDefaults
from workbench.tasks.mlm import masking_collator

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")


def split_sentences(document: str) -> list[str]:
    """Lines first, then sentence punctuation; good enough for pair building."""
    sentences: list[str] = []
    for line in document.splitlines():
        line = line.strip()
        if line:
            sentences.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return sentences


def build_pairs(documents: list[str], seed: int) -> dict[str, list]:
    """Consecutive sentence pairs, half replaced by a sentence from another document."""
    rng = random.Random(seed)
    docs = [split_sentences(d) for d in documents]
    docs = [d for d in docs if d]
    first, second, labels = [], [], []
    if len(docs) < 2:
        return {"sentence_a": first, "sentence_b": second, "next_sentence_label": labels}
    for index, sentences in enumerate(docs):
        for i in range(len(sentences) - 1):
            first.append(sentences[i])
            if rng.random() < 0.5:
                second.append(sentences[i + 1])
                labels.append(0)
            else:
                other = rng.randrange(len(docs) - 1)
                other = other + 1 if other >= index else other
                second.append(rng.choice(docs[other]))
                labels.append(1)
    return {"sentence_a": first, "sentence_b": second, "next_sentence_label": labels}


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
        from workbench.errors import BaseModelError

        if config.model_type not in ("bert", "megatron-bert"):
            raise BaseModelError(
                f"a {config.model_type} model has no next-sentence head",
                where=where,
                fix="use a BERT base for nsp, --objective mlm for other encoders, or clm for decoders",
            )

    def build_model(self, size: str, tokenizer: Any, seq_len: int) -> Any:
        return BertForPreTraining(bert_config(size, len(tokenizer), seq_len, tokenizer))

    def prepare(self, corpus: Any, tokenizer: Any, spec: Any) -> RowData:
        collator = masking_collator(tokenizer)
        splits = {}
        for split, ds, seed in (("train", corpus.train, spec.seed), ("eval", corpus.eval, spec.seed + 1)):
            pairs = build_pairs(list(ds[corpus.text_column]), seed)
            if not pairs["sentence_a"]:
                raise CorpusError(
                    f"the {split} split has no sentence pairs (next-sentence prediction needs documents of 2+ sentences, and 2+ documents)",
                    where=corpus.source.location,
                    fix="separate documents with blank lines and give each several sentences",
                )
            table = datasets.Dataset.from_dict(pairs)

            def encode(batch: dict[str, list]) -> dict[str, list]:
                enc = tokenizer(batch["sentence_a"], batch["sentence_b"], truncation="longest_first", max_length=spec.seq_len)
                enc["next_sentence_label"] = batch["next_sentence_label"]
                return enc

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
