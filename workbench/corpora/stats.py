"""Preview and statistics of a corpus, as plain data for the CLI table and the TUI pane."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

from workbench.corpora import Corpus, list_names, load_corpus, resolve
from workbench.errors import CorpusError

CHARS_PER_TOKEN = 4.0
"""Rule of thumb for English with a sub-word tokenizer; labelled 'estimated' wherever shown."""


@dataclass
class CorpusStats:
    name: str
    kind: str
    location: str
    size_bytes: int
    documents: int
    eval_documents: int
    characters: int
    words: int
    estimated_tokens: int
    eval_source: str
    text_column: str
    columns: list[str] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    sampled_documents: int = 0
    """Documents the character, word and label counts were read from: all of them, or for a
    very large corpus the first ``SAMPLE_CHARS`` worth, scaled up (``estimated`` is True)."""

    @property
    def estimated(self) -> bool:
        return self.sampled_documents < self.documents


def _size_on_disk(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


LABEL_COLUMN_NAMES = ("label", "labels", "sentiment", "polarity", "class", "category", "target", "rating", "y")
"""Common names of a label column, in order of preference (shared with the fine-tuning tasks)."""


SAMPLE_CHARS = 100_000_000
"""Characters read for the counts; beyond them (corpora of GBs) the counts are scaled up from
the documents read, so a preview never reads a huge corpus whole or holds it in memory."""


def stats_of(corpus: Corpus, sample_chars: int = SAMPLE_CHARS) -> CorpusStats:
    label_column = next((c for c in corpus.train.column_names
                         if c.lower() in LABEL_COLUMN_NAMES and c != corpus.text_column), None)
    columns = [corpus.text_column] + ([label_column] if label_column else [])
    characters = words = sampled = 0
    labels: collections.Counter[str] = collections.Counter()
    for batch in corpus.train.select_columns(columns).iter(batch_size=10_000):
        for text in batch[corpus.text_column]:
            characters += len(text)
            words += len(text.split())
        if label_column:
            labels.update(str(v) for v in batch[label_column])
        sampled += len(batch[corpus.text_column])
        if characters >= sample_chars:
            break
    documents = len(corpus.train)
    scale = documents / sampled if sampled else 1.0
    if scale != 1.0:
        characters, words = int(characters * scale), int(words * scale)
        labels = collections.Counter({k: int(v * scale) for k, v in labels.items()})
    return CorpusStats(
        name=corpus.name,
        kind=corpus.source.kind,
        location=corpus.source.location,
        size_bytes=_size_on_disk(corpus.source.path),
        documents=documents,
        sampled_documents=sampled,
        eval_documents=len(corpus.eval),
        characters=characters,
        words=words,
        estimated_tokens=int(characters / CHARS_PER_TOKEN),
        eval_source=corpus.eval_source,
        text_column=corpus.text_column,
        columns=list(corpus.train.column_names),
        label_counts=dict(labels.most_common(20)),
    )


def preview(corpus: Corpus, count: int = 5, width: int = 300) -> list[str]:
    """The first few documents, shortened to ``width`` characters."""
    texts = corpus.train[corpus.text_column][:count]
    out = []
    for text in texts:
        flat = " ".join(str(text).split())
        out.append(flat if len(flat) <= width else flat[: width - 1] + "…")
    return out


def list_corpora() -> list[CorpusStats]:
    """Stats for every corpus under ``corpora/`` (built-ins first). Unloadable entries are skipped."""
    rows = []
    for name in list_names():
        try:
            rows.append(stats_of(load_corpus(name)))
        except CorpusError:
            continue
    rows.sort(key=lambda r: (r.kind != "builtin", r.name))
    return rows


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


__all__ = ["CorpusStats", "stats_of", "preview", "list_corpora", "human_bytes", "resolve"]
