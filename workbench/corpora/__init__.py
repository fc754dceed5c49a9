"""Corpora: resolve a name, load train/eval splits as ``datasets.Dataset``, preview, stats.

A corpus is a built-in name (``general``, ``domain``), a local path (file or folder), or
``hf:NAME[:CONFIG]``. Every loaded corpus has a text column; labelled corpora keep their
other columns for the fine-tuning tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.corpora import cache
from workbench.corpora.sources import CorpusSource, builtin_dir, list_names, resolve
from workbench.errors import CorpusError

if TYPE_CHECKING:  # loading a corpus imports datasets; naming one (CLI, TUI) must not
    import datasets

TEXT_COLUMN_NAMES = ("text", "content", "document", "sentence", "body", "review", "article", "passage", "story")

__all__ = ["Corpus", "CorpusSource", "load_corpus", "resolve", "list_names", "builtin_dir", "detect_text_column"]


@dataclass
class Corpus:
    """Loaded splits of one corpus. ``eval_source`` says where the eval split came from;
    ``eval_location`` is where to fix its rows: its file or hub split, or ``""`` when the eval
    rows are a held-out part of the training file (``eval_held_out``)."""

    source: CorpusSource
    train: datasets.Dataset
    eval: datasets.Dataset
    text_column: str
    eval_source: str
    eval_location: str = ""

    @property
    def eval_held_out(self) -> bool:
        return not self.eval_location

    @property
    def name(self) -> str:
        return self.source.name

    def texts(self, split: str = "train") -> list[str]:
        ds = self.train if split == "train" else self.eval
        return list(ds[self.text_column])

    def sample_texts(self, max_chars: int = 200_000_000) -> list[str]:
        """The first documents of the train split up to ``max_chars`` (a tokenizer-training
        sample): a corpus of tens of GB is read in batches and never whole."""
        out: list[str] = []
        total = 0
        for batch in self.train.iter(batch_size=10_000):
            for text in batch[self.text_column]:
                out.append(text)
                total += len(text)
                if total >= max_chars:
                    return out
        return out


def detect_text_column(ds: datasets.Dataset, requested: str | None, where: str) -> str:
    """The column holding the documents: the one asked for, a common name, or the only string one."""
    columns = list(ds.column_names)
    string_columns = [c for c in columns if getattr(ds.features[c], "dtype", None) in ("string", "large_string")]
    if requested is not None:
        if requested not in columns:
            raise CorpusError(
                f"unknown column {requested!r}; the columns are {', '.join(columns)}",
                where=where,
                fix="pass one of them with --text-column",
            )
        if requested not in string_columns:
            dtype = getattr(ds.features[requested], "dtype", type(ds.features[requested]).__name__)
            raise CorpusError(
                f"column {requested!r} holds {dtype}, not text",
                where=where,
                fix=f"pass a text column with --text-column ({', '.join(string_columns) or 'none found'})",
            )
        return requested
    for name in TEXT_COLUMN_NAMES:
        for column in columns:
            if column.lower() == name:
                if column not in string_columns:
                    dtype = getattr(ds.features[column], "dtype", "non-text")
                    raise CorpusError(
                        f"column {column!r} holds {dtype}, not text",
                        where=where,
                        fix="fix the data, or pick another column with --text-column",
                    )
                return column
    if len(string_columns) == 1:
        return string_columns[0]
    if not string_columns:
        raise CorpusError(
            f"no text column among {', '.join(columns)}",
            where=where,
            fix="add a text column, or pass --text-column",
        )
    raise CorpusError(
        f"several text columns ({', '.join(string_columns)}) and none is called 'text'",
        where=where,
        fix="pick one with --text-column",
    )


def _drop_blank(ds: datasets.Dataset, column: str) -> datasets.Dataset:
    """Drop empty/whitespace documents with a batched, cached ``filter`` (no full read into RAM)."""

    def non_blank(batch: dict[str, list]) -> list[bool]:
        return [t is not None and bool(str(t).strip()) for t in batch[column]]

    return cache.healing(ds, lambda: ds.filter(non_blank, batched=True, batch_size=10_000, desc="Dropping blank documents"))


def _held_out(ds: datasets.Dataset, fraction: float, seed: int, holdout: str = "random",
              column: str | None = None) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Random documents (seeded), or with ``holdout="tail"`` the end of the corpus in file
    order: the last documents holding ``fraction`` of its characters (nanoGPT's
    shakespeare-char split, train on the first 90% of the text and validate on the rest)."""
    if len(ds) < 2:
        return ds, ds
    if holdout == "tail":
        cut = _tail_cut(ds, fraction, column)
        return ds.select(range(cut)), ds.select(range(cut, len(ds)))
    split = cache.healing(ds, lambda: ds.train_test_split(test_size=max(1, round(len(ds) * fraction)), seed=seed, shuffle=True))
    return split["train"], split["test"]


def _tail_cut(ds: datasets.Dataset, fraction: float, column: str | None) -> int:
    """The first document of the tail holding ``fraction`` of the characters (by documents
    when there is no text column); at least one document on each side."""
    import numpy as np  # numpy: loaded on first use
    import pyarrow.compute as pc  # pyarrow: loaded on first use

    if column is None or column not in ds.column_names:
        lengths = np.ones(len(ds))
    else:
        lengths = pc.utf8_length(pc.cast(ds.data.column(column), "string")).to_numpy(zero_copy_only=False).astype(float)
    from_end = np.cumsum(np.nan_to_num(lengths)[::-1])
    documents = int(np.searchsorted(from_end, fraction * from_end[-1])) + 1  # tail documents holding >= fraction
    return min(len(ds) - 1, max(1, len(ds) - documents))


def _load_local(source: CorpusSource) -> tuple[datasets.Dataset, datasets.Dataset | None, list[Path]]:
    """Train rows, and eval rows with their files where the folder has some."""
    from workbench.corpora import files  # loads datasets: only when used

    path = source.path
    assert path is not None
    if path.is_dir():
        train_files, eval_files = files.split_directory(path)
        train = files.load_files(train_files)
        if eval_files:
            return train, files.load_files(eval_files), eval_files
        return train, None, []
    return files.load_file(path), None, []


def load_corpus(
    name: str,
    *,
    text_column: str | None = None,
    eval_corpus: str | None = None,
    eval_fraction: float = 0.05,
    seed: int = 42,
    require_text: bool = True,
    holdout: str = "random",
    row_column: str | None = None,
) -> Corpus:
    """Load a corpus with an eval split: its own validation split or file where there is
    one, otherwise a deterministic held-out fraction (seeded).

    ``row_column``: a column by that name numbers each split's rows as read (0-based, over
    the split's files in order), added before blank rows are dropped and the held-out part
    is split off, so that a row can be traced back to its file (sentiment's predictions)."""
    from workbench.corpora import hub  # loads datasets: only when used

    source = resolve(name)
    if source.kind == "hub":
        train, evaluation, eval_label = hub.load_hub(source.hub_name or "", source.hub_config)
        eval_label = f"{eval_label} split" if eval_label else ""
        eval_location = f"{source.location} ({eval_label})" if eval_label else ""
    else:
        train, evaluation, eval_files = _load_local(source)
        eval_label = f"validation file ({', '.join(p.name for p in eval_files)})" if eval_files else ""
        eval_location = ", ".join(str(p) for p in eval_files)
    if eval_corpus:
        eval_source = resolve(eval_corpus)
        if eval_source.kind == "hub":
            evaluation, _, _ = hub.load_hub(eval_source.hub_name or "", eval_source.hub_config)
        else:
            evaluation, _, _ = _load_local(eval_source)
        eval_label, eval_location = f"eval corpus {eval_corpus}", eval_source.location
    where = source.location
    column = detect_text_column(train, text_column, where) if require_text else (text_column or "text")
    if row_column:
        train = train.add_column(row_column, list(range(len(train))))
        if evaluation is not None:
            evaluation = evaluation.add_column(row_column, list(range(len(evaluation))))
    if require_text:
        train = _drop_blank(train, column)
        if len(train) == 0:
            raise CorpusError("corpus has no text (every document is empty or whitespace)", where=where, fix="pass a file with text in it")
    if evaluation is not None and require_text:
        if column not in evaluation.column_names:
            raise CorpusError(
                f"eval split has no column {column!r} (it has {', '.join(c for c in evaluation.column_names if c != row_column)})",
                where=eval_location or where,
                fix="give the eval file the same columns as the training file",
            )
        evaluation = _drop_blank(evaluation, column)
        if len(evaluation) == 0:
            evaluation = None
    if evaluation is None:
        train, evaluation = _held_out(train, eval_fraction, seed, holdout, column)
        how = "the last" if holdout == "tail" else "held-out"
        eval_label = f"{how} {eval_fraction:.0%} of {_display_name(source)}" + ("" if holdout == "tail" else f" (seed {seed})")
        eval_location = ""
    return Corpus(source=source, train=train, eval=evaluation, text_column=column, eval_source=eval_label, eval_location=eval_location)


def _display_name(source: CorpusSource) -> str:
    """The training data as a user would name it: a file's name, a folder's, a hub id."""
    return source.path.name if source.path is not None else source.location
