"""Sentiment (sequence classification) on CSV/TSV/JSONL/Parquet with text and label columns.

Works with encoders (``[CLS]`` head) and decoders (GPT-2's last-token head, which needs
``config.pad_token_id`` to find the last real token).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import DataCollatorWithPadding

from workbench.corpora import load_corpus
from workbench.errors import CorpusError
from workbench.tasks.base import Task
from workbench.tasks.finetune.common import FINETUNE_DEFAULTS, LabelledRows, label_kwargs, predict_rows
from workbench.tasks.finetune.labels import check_known, detect_label_column, held_out_label_names, label_maps, label_names
from workbench.tasks.finetune.metrics import classification_metrics

if TYPE_CHECKING:
    from workbench.config import ResolvedSpec

ROW = "_row"
"""The column that numbers each row as read from its file(s), before blank rows are dropped
and the held-out part is split off (``load_corpus``'s ``row_column``)."""


@dataclass(frozen=True)
class LabelSet:
    """What ``check_data`` found: the label column and its classes (training file's order)."""

    column: str
    names: tuple[str, ...]


@dataclass
class SentimentRows(LabelledRows):
    """Encoded rows, plus where each eval row came from (in eval order): its number in its
    files (``ROW``), its text, and the files, in the order they were read (none for the hub)."""

    eval_rows: list[int] = field(default_factory=list)
    eval_texts: list[str] = field(default_factory=list)
    eval_files: list[Path] = field(default_factory=list)
    text_column: str = "text"


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

    def load_corpus(self, spec: ResolvedSpec) -> Any:
        """The text corpus, each row numbered in its file (``ROW``) for the predictions file."""
        return load_corpus(spec.data.corpus, text_column=spec.data.text_column, eval_corpus=spec.data.eval_corpus,
                           eval_fraction=spec.data.eval_fraction, seed=spec.train.seed, require_text=self.needs_text_column,
                           holdout=spec.data.holdout, row_column=ROW)

    def check_data(self, corpus: Any, spec: ResolvedSpec) -> LabelSet:
        """Label column, classes and eval labels, checked before the run dir exists. Each
        error names the split it is in: the training file, the eval file, or the held-out
        part of the training file (whose fix is in the training file, not an eval file)."""
        where = corpus.source.location
        columns = [c for c in corpus.train.column_names if c != ROW]
        column = detect_label_column(columns, spec.data.label_column, corpus.text_column, where)
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

    def prepare(self, corpus: Any, tokenizer: Any, spec: ResolvedSpec, checked: LabelSet | None = None) -> SentimentRows:
        checked = checked or self.check_data(corpus, spec)
        _, label2id = label_maps(checked.names)
        text, column = corpus.text_column, checked.column

        def encode(batch: dict[str, list]) -> dict[str, list]:
            out = tokenizer(batch[text], truncation=True, max_length=spec.data.seq_len)
            out["labels"] = [label2id[str(v).strip()] for v in batch[column]]
            return out

        keep = {"input_ids", "attention_mask", "token_type_ids", "labels"}
        splits = {}
        # Shuffled (seeded) eval: the periodic eval reads only its first batches, and label-
        # sorted files would make those all one class.
        evaluation = corpus.eval.shuffle(seed=spec.train.seed)
        for split, ds in (("train", corpus.train), ("eval", evaluation)):
            encoded = ds.map(encode, batched=True, desc="Tokenizing")
            splits[split] = encoded.remove_columns([c for c in encoded.column_names if c not in keep])
        collator = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        return SentimentRows(train=splits["train"], eval=splits["eval"], collate=lambda rows: collator(rows),
                             meta={"labels": list(checked.names), "label_column": column},
                             eval_rows=list(evaluation[ROW]) if ROW in evaluation.column_names else [],
                             eval_texts=[str(t) for t in evaluation[text]], eval_files=eval_files(corpus, spec),
                             text_column=text)

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

    def final_report(self, model: Any, tokenizer: Any, data: Any, spec: ResolvedSpec, run_dir: Any) -> dict[str, Any]:
        gold: list[int] = []
        pred: list[int] = []

        def each(outputs: Any, batch: dict) -> None:
            gold.extend(batch["labels"].tolist())
            pred.extend(outputs.logits.argmax(-1).tolist())

        predict_rows(model, data, "eval", spec.train.batch_size, each)
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        metrics = classification_metrics(gold, pred, labels)
        records = [{"text": text, "gold": labels[g], "pred": labels[p]} for text, g, p in zip(data.eval_texts, gold, pred)]
        (run_dir.path / "eval_predictions.jsonl").write_text(
            "".join(json.dumps(record) + "\n" for record in in_file_order(records, data)), encoding="utf-8")
        metrics["eval_examples"] = len(gold)
        return metrics


def in_file_order(records: list[dict[str, Any]], data: SentimentRows) -> list[dict[str, Any]]:
    """Each prediction led by where its row is, sorted in file order: ``line`` (1-based, a
    CSV's header is line 1) in a CSV, TSV or JSONL file, with ``file`` when the rows came from
    several; else ``row``, the row's 0-based index in its file (JSON, Parquet, the hub's split)."""
    if len(data.eval_rows) != len(records):  # a corpus loaded without row numbers
        return records
    wanted = dict(zip(data.eval_rows, data.eval_texts))
    places = source_lines(data.eval_files, data.text_column, wanted) if data.eval_files else None
    located = []
    for row, record in sorted(zip(data.eval_rows, records), key=lambda pair: pair[0]):
        if places is None:
            located.append({"row": row, **record})
        else:
            name, line = places[row]
            located.append({**({"file": name} if len(data.eval_files) > 1 else {}), "line": line, **record})
    return located


def eval_files(corpus: Any, spec: ResolvedSpec) -> list[Path]:
    """The local files the eval rows were read from, in the order ``load_corpus`` read them."""
    from workbench.corpora import files, resolve  # loads datasets: only when used

    source = resolve(spec.data.eval_corpus) if spec.data.eval_corpus and not corpus.eval_held_out else corpus.source
    path = source.path
    if source.kind == "hub" or path is None:
        return []
    if path.is_file():
        return [path]
    train_files, validation_files = files.split_directory(path)
    return validation_files if not corpus.eval_held_out and not spec.data.eval_corpus else train_files


def source_lines(paths: list[Path], column: str, wanted: dict[int, str]) -> dict[int, tuple[str, int]] | None:
    """(file name, 1-based line) of each wanted row (its number over ``paths``' records in
    order, mapped to the text it must have in ``column``); None when a file has no lines (JSON,
    Parquet) or a record's text differs from the row's (the file changed, or was read differently)."""
    found: dict[int, tuple[str, int]] = {}
    offset = 0
    try:
        for path in paths:
            count = 0
            for count, (line, record) in enumerate(file_records(path), start=1):
                row = offset + count - 1
                if row in wanted:
                    if str(record.get(column)) != wanted[row]:
                        return None
                    found[row] = (path.name, line)
            offset += count
    except (OSError, ValueError, AttributeError, csv.Error):
        return None
    return found if len(found) == len(wanted) else None


def file_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(first line, fields) of each record of a CSV, TSV or JSONL file, as the loader reads
    them: blank lines skipped, a quoted field may span lines. ValueError for other files."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, json.loads(line)
        return
    if suffix not in (".csv", ".tsv"):
        raise ValueError(f"{suffix} files have no line per record")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ",")
        header, read = None, 0
        for fields in reader:
            first, read = read + 1, reader.line_num
            if not fields:
                continue
            if header is None:
                header = fields
                continue
            yield first, dict(zip(header, fields))
