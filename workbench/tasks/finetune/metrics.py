"""Task metrics: classification, entity-level NER (conlleval / seqeval) and SQuAD v1.1.

Written here rather than imported because ``seqeval`` and the SQuAD script are not runtime
dependencies; tests check these functions against ``seqeval`` and hand-computed cases.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Iterable, Sequence

# ---------------------------------------------------------------- classification


def classification_metrics(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 over all labels, and the confusion matrix (rows gold, cols predicted)."""
    n = len(labels)
    matrix = [[0] * n for _ in range(n)]
    for g, p in zip(gold, pred):
        matrix[g][p] += 1
    total = sum(map(sum, matrix))
    correct = sum(matrix[i][i] for i in range(n))
    f1s = []
    for i in range(n):
        predicted = sum(matrix[r][i] for r in range(n))
        actual = sum(matrix[i])
        precision = matrix[i][i] / predicted if predicted else 0.0
        recall = matrix[i][i] / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {
        "accuracy": correct / total if total else 0.0,
        "macro_f1": sum(f1s) / n if n else 0.0,
        "confusion_matrix": {"labels": list(labels), "matrix": matrix},
    }


# ---------------------------------------------------------------- entities (conlleval)


def _split_tag(tag: str) -> tuple[str, str]:
    """('B', 'PER') from 'B-PER'; like conlleval, a tag without a type gets type '_'."""
    tag = tag or "O"
    return tag[0], tag[1:].split("-", 1)[-1] or "_"


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        prev_tag in ("E", "S")
        or (prev_tag == "B" and tag in ("B", "S", "O"))
        or (prev_tag == "I" and tag in ("B", "S", "O"))
        or (prev_tag != "O" and prev_tag != "." and prev_type != type_)
    )


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        tag in ("B", "S")
        or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag != "O" and tag != "." and prev_type != type_)
    )


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) chunks, with conlleval's rules for ill-formed sequences
    (an ``I-`` after ``O`` starts a chunk, a type change ends one)."""
    chunks = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        t, kind = _split_tag(tag)
        if _end_of_chunk(prev_tag, t, prev_type, kind):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, t, prev_type, kind):
            begin = i
        prev_tag, prev_type = t, kind
    return chunks


def entity_counts(gold: Sequence[str], pred: Sequence[str]) -> dict[str, list[int]]:
    """Per type: [correct, predicted, gold] chunk counts for one sentence."""
    g, p = set(get_entities(gold)), set(get_entities(pred))
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for kind, *_ in g & p:
        counts[kind][0] += 1
    for kind, *_ in p:
        counts[kind][1] += 1
    for kind, *_ in g:
        counts[kind][2] += 1
    return counts


def _prf(correct: int, predicted: int, actual: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entity_metrics(gold: Iterable[Sequence[str]], pred: Iterable[Sequence[str]]) -> dict:
    """Micro precision/recall/F1 over entities, and F1 per entity type (seqeval's default mode)."""
    totals: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for g, p in zip(gold, pred):
        for kind, values in entity_counts(g, p).items():
            for i in range(3):
                totals[kind][i] += values[i]
    correct, predicted, actual = (sum(v[i] for v in totals.values()) for i in range(3))
    precision, recall, f1 = _prf(correct, predicted, actual)
    per_type = {kind: round(_prf(*totals[kind])[2], 6) for kind in sorted(totals)}
    return {"precision": precision, "recall": recall, "f1": f1, "per_type_f1": per_type}


# ---------------------------------------------------------------- SQuAD v1.1


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, articles (a, an, the) and extra whitespace (official script)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict:
    """Exact match and F1 in percent, each the max over the gold answers, as SQuAD v1.1's
    ``evaluate-v1.1.py``. An unanswerable question (no gold answers) counts ``""`` as gold."""
    em = f1 = 0.0
    for prediction, golds in zip(predictions, answers):
        golds = list(golds) or [""]
        em += max(exact_match(prediction, g) for g in golds)
        f1 += max(token_f1(prediction, g) if normalize_answer(g) or normalize_answer(prediction) else 1.0 for g in golds)
    n = max(1, len(predictions))
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}
