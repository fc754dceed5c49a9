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


def _blank(value: Any) -> bool:
    return value is None or str(value).strip() == ""


def check_known(values: Sequence[Any], known: Sequence[str], where: str, what: str, lines: Sequence[int] | None = None) -> None:
    """Fail on the first value (label or tag) of an eval file that the training file never used."""
    allowed = set(known)
    for index, value in enumerate(values):
        place = f"{where}:{lines[index]}" if lines else f"{where} (row {index + 1})"
        if _blank(value):
            raise CorpusError(f"empty {what} in the eval file", where=place, fix=f"give every row of the eval file a {what}")
        if str(value).strip() not in allowed:
            raise CorpusError(
                f"unknown {what} {str(value).strip()!r}, not in the training file's set ({', '.join(known)})",
                where=place,
                fix=f"use the same {what}s in the eval file as in the training file",
            )


def held_out_label_names(train: Sequence[Any], held: Sequence[Any], where: str, column: str, held_name: str) -> list[str]:
    """Classes when the eval rows are ``held_name`` (e.g. "held-out 5% of reviews.csv (seed 42)")
    of the same file: empty labels and a single class are the whole file's problem, so they
    are counted over all its rows; a class whose every row fell in the held-out part is named
    as such, with the fixes for that case (there is no eval file to correct)."""
    names = label_names([*train, *held], where, column)
    in_train = {str(v).strip() for v in train}
    only_held = [name for name in names if name not in in_train]
    if only_held:
        rows = sum(1 for v in held if str(v).strip() == only_held[0])
        raise CorpusError(
            f"unknown label {only_held[0]!r}, not in the rows left for training: all {rows} of its rows are in the {held_name}",
            where=where,
            fix=f"add more {only_held[0]!r} rows to the file, or pass a separate eval file with --eval-corpus "
                "(a different --seed or a smaller --eval-fraction also splits the rows differently)",
        )
    return names


def label_maps(names: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    id2label = dict(enumerate(names))
    return id2label, {name: i for i, name in id2label.items()}
