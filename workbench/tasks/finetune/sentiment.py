"""Sentiment (sequence classification) on CSV/TSV/JSONL/Parquet with text and label columns.

Works with encoders (``[CLS]`` head) and decoders (GPT-2's last-token head, which needs
``config.pad_token_id`` to find the last real token).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from transformers import DataCollatorWithPadding

from workbench.errors import CorpusError
from workbench.tasks.base import Task
from workbench.tasks.finetune.common import FINETUNE_DEFAULTS, LabelledRows, label_kwargs, predict_rows
from workbench.tasks.finetune.labels import check_known, detect_label_column, held_out_label_names, label_maps, label_names
from workbench.tasks.finetune.metrics import classification_metrics


@dataclass(frozen=True)
class LabelSet:
    """What ``check_data`` found: the label column and its classes (training file's order)."""

    column: str
    names: tuple[str, ...]


class SentimentTask(Task):
    def __init__(self) -> None:
        super().__init__(
            name="sentiment",
            auto_class_name="AutoModelForSequenceClassification",
            masked=True,
            pretraining=False,
            description="text classification needs a model with a sequence-classification head",
            scratch_defaults=FINETUNE_DEFAULTS,
            base_defaults=FINETUNE_DEFAULTS,
        )

    def mapping_name(self) -> str:
        return "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"

    def base_fix(self) -> str:
        return "use a BERT-family or GPT-2-family base"

    def check_data(self, corpus: Any, spec: Any) -> LabelSet:
        """Label column, classes and eval labels, checked before the run dir exists. Each
        error names the split it is in: the training file, the eval file, or the held-out
        part of the training file (whose fix is in the training file, not an eval file)."""
        where = corpus.source.location
        column = detect_label_column(corpus.train.column_names, spec.label_column, corpus.text_column, where)
        if corpus.eval_held_out:
            names = held_out_label_names(corpus.train[column], corpus.eval[column], where, column, corpus.eval_source)
            return LabelSet(column=column, names=tuple(names))
        names = label_names(corpus.train[column], where, column)
        if column not in corpus.eval.column_names:
            raise CorpusError(
                f"the eval split has no label column {column!r}",
                where=corpus.eval_location,
                fix="give the eval file the same columns as the training file",
            )
        check_known(corpus.eval[column], names, corpus.eval_location, "label")
        return LabelSet(column=column, names=tuple(names))

    def prepare(self, corpus: Any, tokenizer: Any, spec: Any, checked: LabelSet | None = None) -> LabelledRows:
        checked = checked or self.check_data(corpus, spec)
        _, label2id = label_maps(checked.names)
        text, column = corpus.text_column, checked.column

        def encode(batch: dict[str, list]) -> dict[str, list]:
            out = tokenizer(batch[text], truncation=True, max_length=spec.seq_len)
            out["labels"] = [label2id[str(v).strip()] for v in batch[column]]
            return out

        keep = {"input_ids", "attention_mask", "token_type_ids", "labels"}
        splits = {}
        # Shuffled (seeded) eval: the periodic eval reads only its first batches, and label-
        # sorted files would make those all one class.
        for split, ds in (("train", corpus.train), ("eval", corpus.eval.shuffle(seed=spec.seed))):
            encoded = ds.map(encode, batched=True, desc="Tokenizing")
            splits[split] = encoded.remove_columns([c for c in encoded.column_names if c not in keep])
        collator = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        return LabelledRows(train=splits["train"], eval=splits["eval"], collate=lambda rows: collator(rows),
                            meta={"labels": list(checked.names), "label_column": column})

    def run_meta(self, data: Any) -> dict[str, Any]:
        return dict(data.meta)

    def model_kwargs(self, checked: LabelSet, tokenizer: Any = None) -> dict[str, Any]:
        """Label maps, and the tokenizer's pad id: a decoder's head finds the last real token by it."""
        kwargs = label_kwargs(checked.names)
        if tokenizer is not None and tokenizer.pad_token_id is not None:
            kwargs["pad_token_id"] = tokenizer.pad_token_id
        return kwargs

    def eval_metrics(self, outputs: Any, batch: Any, totals: dict[str, float]) -> None:
        predictions = outputs.logits.argmax(-1)
        totals["correct"] = totals.get("correct", 0.0) + float((predictions == batch["labels"]).sum())
        totals["count"] = totals.get("count", 0.0) + float(batch["labels"].numel())

    def finish_metrics(self, totals: dict[str, float]) -> dict[str, float]:
        return {"accuracy": totals["correct"] / totals["count"]} if totals.get("count") else {}

    def final_report(self, model: Any, tokenizer: Any, data: Any, spec: Any, run_dir: Any) -> dict[str, Any]:
        gold: list[int] = []
        pred: list[int] = []

        def each(outputs: Any, batch: dict) -> None:
            gold.extend(batch["labels"].tolist())
            pred.extend(outputs.logits.argmax(-1).tolist())

        predict_rows(model, data, "eval", spec.batch_size or 16, each)
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        metrics = classification_metrics(gold, pred, labels)
        (run_dir.path / "eval_predictions.jsonl").write_text(
            "".join(json.dumps({"gold": labels[g], "pred": labels[p]}) + "\n" for g, p in zip(gold, pred)), encoding="utf-8"
        )
        metrics["eval_examples"] = len(gold)
        return metrics
