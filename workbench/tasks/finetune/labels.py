"""Label columns and label sets for classification: detection, ids, and input checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.corpora.stats import LABEL_COLUMN_NAMES
from workbench.errors import CorpusError


def detect_label_column(columns: Sequence[str], requested: str | None, text_column: str, where: str) -> str:
    """The column asked for, or the first common label name; else a one-line error."""
    if requested is not None:
        if requested not in columns:
            raise CorpusError(
                f"no label column {requested!r}; the columns are {', '.join(columns)}",
                where=where,
                fix="pass one of them with --label-column",
            )
        return requested
    lowered = {c.lower(): c for c in columns if c != text_column}
    for name in LABEL_COLUMN_NAMES:
        if name in lowered:
            return lowered[name]
    raise CorpusError(
        f"no label column (looked for {', '.join(LABEL_COLUMN_NAMES[:5])}...); the columns are {', '.join(columns)}",
        where=where,
        fix="name the label column 'label' or pass --label-column",
    )


def _sort_key(value: str) -> tuple[int, Any]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def label_names(values: Sequence[Any], where: str, column: str) -> list[str]:
    """Distinct labels as strings, numbers in numeric order; at least two classes."""
    present = sorted({str(v).strip() for v in values if v is not None and str(v).strip() != ""}, key=_sort_key)
    missing = sum(1 for v in values if v is None or str(v).strip() == "")
    if missing:
        raise CorpusError(
            f"{missing} rows have an empty {column!r}",
            where=where,
            fix="give every row a label, or drop the unlabelled rows",
        )
    if len(present) < 2:
        raise CorpusError(
            f"column {column!r} has only one class ({present[0] if present else 'none'}); classification needs at least two",
            where=where,
            fix="add examples of the other classes, or check --label-column",
        )
    return present


def check_known(values: Sequence[Any], known: Sequence[str], where: str, what: str, lines: Sequence[int] | None = None) -> None:
    """Fail on the first value (label or tag) that the training file never used."""
    allowed = set(known)
    for index, value in enumerate(values):
        if str(value).strip() not in allowed:
            place = f"{where}:{lines[index]}" if lines else f"{where} (row {index + 1})"
            raise CorpusError(
                f"unknown {what} {str(value).strip()!r}, not in the training file's set ({', '.join(known)})",
                where=place,
                fix=f"use the same {what}s in the eval file as in the training file",
            )


def label_maps(names: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    id2label = dict(enumerate(names))
    return id2label, {name: i for i, name in id2label.items()}
