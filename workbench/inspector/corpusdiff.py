"""Passages to diff (a file, a corpus document) and the corpus-level view: documents ranked
by the mean change per token, so a user sees which kinds of text a fine-tune helped and
which it hurt. Plain data, no UI.

The corpus mean is over tokens, not documents (each token weighs the same), so over a
held-out split it equals the base model's loss minus the tuned model's on the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.corpora import load_corpus
from workbench.errors import WorkbenchError
from workbench.inspector.loading import LoadedModel
from workbench.inspector.tokendiff import Progress, diff_passage

SPLITS = ("eval", "train")


def read_passage_file(path: str) -> str:
    """A passage from a text file, refused in one line when missing, a folder or not UTF-8."""
    file = Path(path)
    if not file.exists():
        raise WorkbenchError("no such passage file", where=path, fix="give the path of a text file to --passage")
    if not file.is_file():
        raise WorkbenchError("the passage is not a file", where=path, fix="give the path of a text file to --passage")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise WorkbenchError("the passage file is not UTF-8 text", where=path, fix="convert it to UTF-8") from None
    if not text.strip():
        raise WorkbenchError("the passage file is empty", where=path, fix="give a file with some text in it")
    return text


def corpus_documents(name: str, split: str = "eval", limit: int | None = None) -> list[str]:
    """The documents of a corpus split (built-in name, path or hf:NAME), in order."""
    if split not in SPLITS:
        raise WorkbenchError(f"unknown split {split!r}", fix="use --split eval or --split train")
    corpus = load_corpus(name)
    data = corpus.eval if split == "eval" else corpus.train
    count = len(data) if limit is None else min(limit, len(data))
    return list(data.select(range(count))[corpus.text_column])


def corpus_document(name: str, index: int, split: str = "eval") -> str:
    documents = corpus_documents(name, split)
    if not 0 <= index < len(documents):
        raise WorkbenchError(f"document {index} is out of range: the {split} split of {name} has {len(documents)} documents",
                             where=name, fix=f"pass --doc between 0 and {len(documents) - 1}")
    return documents[index]


@dataclass
class DocumentChange:
    index: int
    text: str
    tokens: int
    total_change: float
    """Sum over its scored tokens of (tuned − base) log-probability, nats."""

    @property
    def mean_change(self) -> float:
        return self.total_change / self.tokens if self.tokens else 0.0


@dataclass
class CorpusDiff:
    corpus: str
    split: str
    method: str
    documents: list[DocumentChange]
    windowed: int
    """Documents longer than one window (scored in overlapping windows)."""
    label_a: str = "base"
    label_b: str = "tuned"

    @property
    def tokens(self) -> int:
        return sum(d.tokens for d in self.documents)

    @property
    def mean_change(self) -> float | None:
        """Over every scored token of every document (base loss − tuned loss), nats."""
        return sum(d.total_change for d in self.documents) / self.tokens if self.tokens else None

    def ranked(self) -> list[DocumentChange]:
        """Most helped first, most hurt last."""
        return sorted(self.documents, key=lambda d: -d.mean_change)

    @property
    def summary(self) -> str:
        mean = self.mean_change
        figure = "no token scored" if mean is None else f"mean change {mean:+.4f} nats per token ({self.label_b} − {self.label_a})"
        windows = f"; {self.windowed} longer than one window, scored in overlapping windows" if self.windowed else ""
        return (f"{figure}, over {self.tokens} tokens of {len(self.documents)} documents of the {self.split} split of "
                f"{self.corpus} ({self.method}){windows}")

    def to_json(self) -> dict[str, Any]:
        return {"corpus": self.corpus, "split": self.split, "method": self.method, "unit": "nats",
                "labels": {"a": self.label_a, "b": self.label_b}, "tokens": self.tokens, "mean_change": self.mean_change,
                "documents": [{"index": d.index, "tokens": d.tokens, "mean_change": d.mean_change,
                               "total_change": d.total_change, "text": d.text} for d in self.ranked()]}


def diff_corpus(a: LoadedModel, b: LoadedModel, corpus: str, *, split: str = "eval", docs: int = 50,
                labels: tuple[str, str] = ("base", "tuned"), progress: Progress | None = None,
                cancelled: Callable[[], bool] | None = None) -> CorpusDiff:
    """Score the first ``docs`` documents of a corpus split under both models."""
    texts = [t for t in corpus_documents(corpus, split, docs)]
    documents, method, windowed = [], "", 0
    for index, text in enumerate(texts):
        if not text.strip():
            continue
        diff = diff_passage(a, b, text, labels=labels, top=0, cancelled=cancelled)
        method = diff.method
        windowed += diff.windows > 1
        scored = diff.scored
        documents.append(DocumentChange(index, text, len(scored), sum(t.change for t in scored)))  # type: ignore[misc]
        if progress is not None:
            progress(index + 1, len(texts))
    return CorpusDiff(corpus, split, method, documents, windowed, *labels)
