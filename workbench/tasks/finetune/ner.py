"""Named-entity recognition (token classification) on CoNLL or JSONL files.

Labels are aligned to sub-words as in HF's ``run_ner.py``: a word's first sub-word carries
its tag, the other sub-words and special tokens get -100 (ignored by the loss). Metrics are
entity-level (conlleval/seqeval), computed on whole words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
from transformers import DataCollatorForTokenClassification

from workbench.errors import BaseModelError
from workbench.tasks.base import Task
from workbench.tasks.finetune.common import FINETUNE_DEFAULTS, LabelledRows, held_out, label_kwargs, predict_rows, require_encoder
from workbench.tasks.finetune.conll import Sentence, ner_files, read_ner_file
from workbench.tasks.finetune.labels import check_known, label_maps
from workbench.tasks.finetune.metrics import entity_counts, entity_metrics

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

NER_DEFAULTS = replace(FINETUNE_DEFAULTS, lr=2e-4)
"""4x the fine-tuning lr: measured best for full, lora and frozen (benchmarks/defaults.py, MiniLM on
wnut17, 3 epochs; docs/results.md), entity F1 0.38 against 0.27 at 5e-5 for full (3 seeds)."""


@dataclass
class NERCorpus:
    """Train and eval sentences; ``eval_file`` is set when the eval split is its own file."""

    train: list[Sentence]
    eval: list[Sentence]
    location: str
    eval_source: str
    eval_file: str | None = None

    @property
    def name(self) -> str:
        return Path(self.location).name


@dataclass(frozen=True)
class TagSet:
    """What ``check_data`` found: the tag names, ``O`` first, then B-/I- per entity type."""

    labels: tuple[str, ...]


@dataclass
class TaggedRows(LabelledRows):
    """Token rows plus the eval sentences they came from (for word-level metrics)."""

    eval_sentences: list[Sentence] = field(default_factory=list)


def load_ner_corpus(spec: ResolvedSpec) -> NERCorpus:
    """The training file (or folder), with a dev file, ``--eval-corpus`` or a held-out split."""
    train_path, eval_path = ner_files(spec.data.corpus)
    if spec.data.eval_corpus:
        eval_path, _ = ner_files(spec.data.eval_corpus)
    sentences = read_ner_file(train_path)
    if eval_path is not None:
        return NERCorpus(sentences, read_ner_file(eval_path), str(train_path), str(eval_path), eval_file=str(eval_path))
    train, evaluation = held_out(sentences, spec.data.eval_fraction, spec.train.seed, spec.data.holdout)
    source = (f"the last {spec.data.eval_fraction:.0%} of {train_path.name}" if spec.data.holdout == "tail"
              else f"held-out {spec.data.eval_fraction:.0%} of {train_path.name} (seed {spec.train.seed})")
    return NERCorpus(train, evaluation, str(train_path), source)


def tag_names(corpus: NERCorpus) -> list[str]:
    """B- and I- for every entity type seen in training (a held-out split shares the file, so
    its sentences count too): an eval entity longer than any training one is not unknown."""
    seen = corpus.train if corpus.eval_file is not None else corpus.train + corpus.eval
    types = sorted({t[2:] for s in seen for t in s.tags if t != "O"})
    return ["O", *(f"{prefix}-{kind}" for kind in types for prefix in "BI")]


def word_tags(row: list[int], word_ids: list[int], words: int, id2label: dict[int, str]) -> list[str]:
    """One predicted tag per word, from its first sub-word; words cut off by --seq-len are ``O``."""
    tags = ["O"] * words
    previous = None
    for position, word in enumerate(word_ids):
        if word >= 0 and word != previous:
            tags[word] = id2label[row[position]]
        previous = word
    return tags


def config_labels(config: Any) -> dict[int, str]:
    return {int(k): v for k, v in config.id2label.items()}


class NERTask(Task):
    def __init__(self) -> None:
        super().__init__(
            name="ner",
            auto_class_name="AutoModelForTokenClassification",
            masked=True,
            pretraining=False,
            description="token classification needs a model with a token-classification head",
            scratch_defaults=NER_DEFAULTS,
            base_defaults=NER_DEFAULTS,
        )

    def mapping_name(self) -> str:
        return "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"

    def check_base(self, config: Any, where: str) -> None:
        require_encoder(config, where, "ner", "tags each word using the words after it too, which a left-to-right model cannot see")
        super().check_base(config, where)

    def load_corpus(self, spec: ResolvedSpec) -> NERCorpus:
        return load_ner_corpus(spec)

    def check_data(self, corpus: NERCorpus, spec: ResolvedSpec) -> TagSet:
        """The tag set from training data; an eval file may not use a tag training never saw."""
        labels = tag_names(corpus)
        if corpus.eval_file is not None:
            for sentence in corpus.eval:
                check_known(sentence.tags, labels, corpus.eval_file, "tag", sentence.lines)
        return TagSet(tuple(labels))

    def prepare(self, corpus: NERCorpus, tokenizer: Any, spec: ResolvedSpec, checked: TagSet | None = None) -> TaggedRows:
        checked = checked or self.check_data(corpus, spec)
        if not getattr(tokenizer, "is_fast", False):
            raise BaseModelError("ner needs a fast tokenizer (for word alignment)", fix="save the base with a tokenizer.json")
        _, label2id = label_maps(checked.labels)

        def encode(batch: dict[str, list]) -> dict[str, list]:
            out = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=spec.data.seq_len)
            labels, word_ids = [], []
            for row, tags in enumerate(batch["tags"]):
                ids = out.word_ids(row)
                previous = None
                aligned = []
                for word in ids:
                    aligned.append(-100 if word is None or word == previous else label2id[tags[word]])
                    previous = word
                labels.append(aligned)
                word_ids.append([-1 if w is None else w for w in ids])
            out["labels"] = labels
            out["word_ids"] = word_ids
            return out

        splits = {}
        for split, sentences in (("train", corpus.train), ("eval", corpus.eval)):
            ds = datasets.Dataset.from_dict({"tokens": [s.tokens for s in sentences], "tags": [s.tags for s in sentences]})
            splits[split] = ds.map(encode, batched=True, remove_columns=["tokens"], desc="Tokenizing")
        collator = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")
        model_keys = {"input_ids", "attention_mask", "token_type_ids", "labels"}

        def collate(rows: list[dict]) -> dict:
            return collator([{k: v for k, v in row.items() if k in model_keys} for row in rows])

        return TaggedRows(train=splits["train"], eval=splits["eval"], collate=collate, eval_sentences=list(corpus.eval),
                          meta={"labels": list(checked.labels), "ner_eval_source": corpus.eval_source})

    def run_meta(self, data: Any) -> dict[str, Any]:
        return dict(data.meta)

    def model_kwargs(self, checked: TagSet, tokenizer: Any = None) -> dict[str, Any]:
        return label_kwargs(checked.labels)

    def eval_step(self, model: Any, batch: Any, totals: dict[str, float]) -> Any:
        """Entity counts on first sub-words (the eval subset's words within --seq-len); the tag
        names are the model's own (``config.id2label``, set from ``model_kwargs``)."""
        outputs = model(**batch)
        id2label = config_labels(model.config)
        for pred_row, gold_row in zip(outputs.logits.argmax(-1).tolist(), batch["labels"].tolist()):
            gold = [id2label[g] for g in gold_row if g != -100]
            pred = [id2label[p] for p, g in zip(pred_row, gold_row) if g != -100]
            for correct, predicted, actual in entity_counts(gold, pred).values():
                totals["correct"] = totals.get("correct", 0.0) + correct
                totals["predicted"] = totals.get("predicted", 0.0) + predicted
                totals["gold"] = totals.get("gold", 0.0) + actual
        return outputs.loss

    def finish_metrics(self, totals: dict[str, float]) -> dict[str, float]:
        correct, predicted, gold = (totals.get(k, 0.0) for k in ("correct", "predicted", "gold"))
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        return {"entity_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}

    def final_report(self, model: Any, tokenizer: Any, data: TaggedRows, spec: ResolvedSpec, run_dir: Any) -> dict[str, Any]:
        """Entity P/R/F1 on every eval sentence; words cut off by --seq-len count as ``O``."""
        id2label = config_labels(model.config)
        word_ids_all = data.eval["word_ids"]
        sentences = data.eval_sentences
        predicted_tags: list[list[str]] = []

        def each(outputs: Any, batch: dict) -> None:
            for row in outputs.logits.argmax(-1).tolist():
                index = len(predicted_tags)
                predicted_tags.append(word_tags(row, word_ids_all[index], len(sentences[index].tokens), id2label))

        predict_rows(model, data, "eval", spec.train.batch_size, each)
        gold_tags = [s.tags for s in sentences]
        metrics = entity_metrics(gold_tags, predicted_tags)
        with (run_dir.path / "eval_predictions.jsonl").open("w", encoding="utf-8") as handle:
            for sentence, tags in zip(sentences, predicted_tags):
                handle.write(json.dumps({"tokens": sentence.tokens, "gold": sentence.tags, "pred": tags}) + "\n")
        return {
            "entity_precision": metrics["precision"],
            "entity_recall": metrics["recall"],
            "entity_f1": metrics["f1"],
            "per_type_f1": metrics["per_type_f1"],
            "eval_sentences": len(gold_tags),
        }
